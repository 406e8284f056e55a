"""Celery settings, from the environment. Imports nothing of the project but ``app.common``
(names and the environment reader, which import nothing of the project either).

Session hosts are workers with the solo pool and concurrency 1, each session has its own
queue ``session.<id>`` (created on demand), and each host has a control queue
``host.<nodename>``. Everything else runs on the declared queues below.
"""
import os

from kombu import Exchange, Queue

from app.common.broker import transport_for
from app.common.env import Env, backup_schedule, cron_schedule
from app.common.names import DECLARED_QUEUES, TASK_ROUTES, Queues, Tasks
from app.common.result_store import BACKEND as RESULT_STORE

_env = Env(os.environ)

broker_url = _env.text("REDIS_URL", "redis://127.0.0.1:6379/0")
result_backend = _env.text("CELERY_RESULT_BACKEND", broker_url)
# Celery's Redis result store, whose waits keep to their timeout (app.common.result_store).
override_backends = {"redis": RESULT_STORE, "rediss": RESULT_STORE}
broker_connection_retry_on_startup = True
broker_connection_max_retries = None  # keep trying while Redis is down
# kombu's Redis transport with a fix: a worker survives Redis dying under a task in flight.
broker_transport = transport_for(broker_url)

task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]
result_accept_content = ["json"]
result_expires = _env.integer("CELERY_RESULT_EXPIRES", 3600)
timezone = "UTC"
enable_utc = True

# A task is acknowledged only once it has run, and comes back if its worker dies.
task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1
task_track_started = True

# Redis redelivers an unacked task after the visibility timeout; it must stay above the
# longest task (an engine call is bounded by ENGINE_CALL_TIMEOUT, 30 s by default), or a
# slow task runs twice. The restore sweep runs every interval x throttle seconds.
broker_transport_options = {
    "visibility_timeout": _env.integer("BROKER_VISIBILITY_TIMEOUT", 60),
    "unacked_restore_interval": _env.integer("BROKER_RESTORE_INTERVAL", 5),
    "unacked_restore_throttle": _env.integer("BROKER_RESTORE_THROTTLE", 1),
}
result_backend_transport_options = {"retry_policy": {"timeout": 5.0}}

task_default_queue = Queues.DEFAULT
task_default_exchange = Queues.DEFAULT
task_default_routing_key = Queues.DEFAULT
task_create_missing_queues = True  # session.<id> and host.<name> queues come and go
task_queues = tuple(Queue(name, Exchange(name), routing_key=name) for name in DECLARED_QUEUES)
task_routes = {pattern: {"queue": queue} for pattern, queue in TASK_ROUTES.items()}

# Flower and the operators' view: events on, queued tasks visible as pending.
worker_send_task_events = True
task_send_sent_event = True
worker_hijack_root_logger = False


beat_schedule = {
    "session-health-probe": {
        "task": Tasks.PROBE_SESSIONS,
        "schedule": float(_env.integer("SESSION_PROBE_INTERVAL", 10)),
    },
    "message-send-sweep": {
        "task": Tasks.SWEEP_MESSAGES,
        "schedule": float(_env.integer("SEND_SWEEP_INTERVAL", 30)),
    },
    "webhook-outbox-sweep": {
        "task": Tasks.WEBHOOK_SWEEP,
        "schedule": float(_env.integer("WEBHOOK_SWEEP_INTERVAL", 5)),
    },
    "prune-expired-rows": {
        "task": Tasks.PRUNE,
        "schedule": 3600.0,
    },
    # -- media (issue 12)
    "media-fetch-sweep": {"task": Tasks.MEDIA_SWEEP, "schedule": 60.0},
    "media-retention": {"task": Tasks.MEDIA_PRUNE, "schedule": 3600.0},
    # -- bulk sends (issue 13.5) ---
    "batch-sweep": {
        "task": Tasks.SWEEP_BATCHES,
        "schedule": 30.0,
    },
}

# Encrypted backups with retention, at BACKUP_SCHEDULE (cron, UTC; "off" disables them).
_backup_schedule = backup_schedule(_env)
if _backup_schedule is not None:
    beat_schedule["scheduled-backup"] = {
        "task": Tasks.SCHEDULED_BACKUP,
        "schedule": cron_schedule(_backup_schedule),
    }
