"""Celery settings, from the environment. Imports nothing from the project.

Session hosts are workers with the solo pool and concurrency 1, each session has its own
queue ``session.<id>`` (created on demand), and each host has a control queue
``host.<nodename>``. Everything else runs on the declared queues below.
"""
import os

from celery.schedules import crontab
from kombu import Exchange, Queue

from common.names import DECLARED_QUEUES, TASK_ROUTES, Queues, Tasks


def _int(name, default):
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


broker_url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
result_backend = os.environ.get("CELERY_RESULT_BACKEND") or broker_url
broker_connection_retry_on_startup = True
broker_connection_max_retries = None  # keep trying while Redis is down

task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]
result_accept_content = ["json"]
result_expires = _int("CELERY_RESULT_EXPIRES", 3600)
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
    "visibility_timeout": _int("BROKER_VISIBILITY_TIMEOUT", 60),
    "unacked_restore_interval": _int("BROKER_RESTORE_INTERVAL", 5),
    "unacked_restore_throttle": _int("BROKER_RESTORE_THROTTLE", 1),
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


def _cron(expression):
    """``"m h dom mon dow"`` as a crontab: the translation of ``app.config.cron_schedule``
    (app/config.py validates BACKUP_SCHEDULE with a clear error before any process starts)."""
    minute, hour, day_of_month, month_of_year, day_of_week = expression.split()
    return crontab(minute=minute, hour=hour, day_of_month=day_of_month,
                   month_of_year=month_of_year, day_of_week=day_of_week)


beat_schedule = {
    "session-health-probe": {
        "task": Tasks.PROBE_SESSIONS,
        "schedule": float(_int("SESSION_PROBE_INTERVAL", 10)),
    },
    "message-send-sweep": {
        "task": Tasks.SWEEP_MESSAGES,
        "schedule": float(_int("SEND_SWEEP_INTERVAL", 30)),
    },
    "webhook-outbox-sweep": {
        "task": Tasks.WEBHOOK_SWEEP,
        "schedule": float(_int("WEBHOOK_SWEEP_INTERVAL", 5)),
    },
    "prune-expired-rows": {
        "task": Tasks.PRUNE,
        "schedule": 3600.0,
    },
}

# Encrypted backups with retention, at BACKUP_SCHEDULE (cron, UTC; "off" disables them).
_backup_schedule = os.environ.get("BACKUP_SCHEDULE", "").strip() or "0 2 * * *"
if _backup_schedule.lower() not in ("off", "none", "disabled", "false"):
    beat_schedule["scheduled-backup"] = {
        "task": Tasks.SCHEDULED_BACKUP,
        "schedule": _cron(_backup_schedule),
    }
