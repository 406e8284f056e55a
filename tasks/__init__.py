"""Celery entry points: ``celery -A tasks worker`` or ``openwa host|worker|beat``.

Importing this package binds the task modules and the session-host bootsteps to the one
Celery app; it opens no connection and builds no Flask app (workers do that at start).
"""
from app.extensions import celery_app
from tasks import message_actions  # noqa: F401,E402  (tasks: message actions, issue 13.1)
from tasks import backups, host, maintenance, sessions, telemetry, webhooks  # noqa: F401  (tasks)

host.install()
celery = celery_app

__all__ = ["celery", "celery_app"]
