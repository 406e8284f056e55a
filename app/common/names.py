"""One home for the names processes agree on: Celery task names, queue names and the
per-session / per-host queue formats. Plain strings, no imports."""
from __future__ import annotations


class Tasks:
    """Dotted names of every task; the API sends them by name (it never imports ``tasks``)."""

    START_SESSION = "tasks.sessions.start_session"
    STOP_SESSION = "tasks.sessions.stop_session"
    LOGOUT_SESSION = "tasks.sessions.logout_session"
    SEND_MESSAGE = "tasks.sessions.send_message"
    ENGINE_QUERY = "tasks.sessions.engine_query"
    WEBHOOK_DELIVER = "tasks.webhooks.deliver"
    WEBHOOK_SWEEP = "tasks.webhooks.sweep"
    PROBE_SESSIONS = "tasks.maintenance.probe_sessions"
    SWEEP_MESSAGES = "tasks.maintenance.sweep_messages"
    PRUNE = "tasks.maintenance.prune"
    SCHEDULED_BACKUP = "tasks.backups.scheduled_backup"
    MANUAL_BACKUP = "tasks.backups.manual_backup"
    # -- chats, contacts, groups (issue 13.2/3): writes, on the session's queue --
    ENGINE_COMMAND = "tasks.sessions.engine_command"
    # -- media (issue 12): on the `media` queue (tasks.media.*)
    MEDIA_PREPARE = "tasks.media.prepare"
    MEDIA_SWEEP = "tasks.media.sweep"
    MEDIA_PRUNE = "tasks.media.prune"
    # -- bulk sends (issue 13.5) ---
    RUN_BATCH = "tasks.batches.run_batch"
    SWEEP_BATCHES = "tasks.batches.sweep"
    # -- message actions (issue 13.1): on the session's own queue, like a send
    MESSAGE_ACTION = "tasks.sessions.message_action"


class Queues:
    """The declared queues; per-session and per-host queues come and go (below)."""

    DEFAULT = "default"
    WEBHOOKS = "webhooks"
    MEDIA = "media"
    BACKUPS = "backups"
    # -- bulk sends (issue 13.5) ---
    BATCHES = "batches"


DECLARED_QUEUES: tuple[str, ...] = (Queues.DEFAULT, Queues.WEBHOOKS, Queues.MEDIA, Queues.BACKUPS)
# -- bulk sends (issue 13.5) ---
DECLARED_QUEUES += (Queues.BATCHES,)

#: Task-name patterns and the declared queue each goes to (celeryconfig's ``task_routes``).
#: Session tasks have no route: the API names the ``session.<id>`` or ``host.<name>`` queue.
TASK_ROUTES = {
    "tasks.webhooks.*": Queues.WEBHOOKS,
    "tasks.media.*": Queues.MEDIA,
    "tasks.backups.*": Queues.BACKUPS,
    "tasks.maintenance.*": Queues.DEFAULT,
    # -- bulk sends (issue 13.5) ---
    "tasks.batches.*": Queues.BATCHES,
}

SESSION_QUEUE_PREFIX = "session."
HOST_QUEUE_PREFIX = "host."


def session_queue(session_id: str) -> str:
    """The queue of one session's commands (sends, engine calls), consumed by its host."""
    return f"{SESSION_QUEUE_PREFIX}{session_id}"


def host_queue(host_name: str) -> str:
    """A session host's control queue (start, stop, logout)."""
    return f"{HOST_QUEUE_PREFIX}{host_name}"
