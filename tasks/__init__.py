"""Celery entry points: ``celery -A tasks worker`` or ``openwa host|worker|beat``.

Importing this package binds the task modules and the session-host bootsteps to the one
Celery app; it opens no connection and builds no Flask app (workers do that at start).
"""
from app.extensions import celery_app
from tasks import (  # noqa: F401  (tasks)
    backups,
    batches,
    host,
    maintenance,
    media,
    message_actions,
    sessions,
    telemetry,
    webhooks,
)

host.install()
celery = celery_app

__all__ = ["celery", "celery_app"]
