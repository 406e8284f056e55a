"""Periodic work run by beat on the default queue."""
from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import delete

from app.common.names import Tasks
from app.config import settings
from app.extensions import db
from app.models import Host, IdempotencyKey, utcnow
from app.models.base import affected_rows
from app.services import audit, message_actions, messages, sessions
from tasks.base import openwa_task

log = logging.getLogger(__name__)


@openwa_task(Tasks.PROBE_SESSIONS)
def probe_sessions() -> dict[str, Any]:
    """Report sessions no live host holds as such, and hand each to a host with room."""
    unheld = sessions.report_unheld()
    assigned = sessions.assign_orphans(settings())
    return {"unheld": unheld, "assigned": assigned}


@openwa_task(Tasks.SWEEP_MESSAGES)
def sweep_messages() -> dict[str, Any]:
    """Re-enqueue committed sends whose broker message was lost."""
    return {"requeued": messages.resend_stale(settings()),
            "actionsRequeued": message_actions.resend_stale(settings())}  # issue 13.1


@openwa_task(Tasks.PRUNE)
def prune() -> dict[str, int]:
    """Forget idempotency keys after a day, hosts silent for a day, old audit entries."""
    cutoff = utcnow() - timedelta(days=1)
    keys = db.session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < cutoff))
    gone = db.session.execute(delete(Host).where(Host.last_heartbeat < cutoff))
    audited = audit.prune()  # older than AUDIT_RETENTION_DAYS
    actions = message_actions.prune()  # settled message actions (issue 13.1)
    db.session.commit()
    return {"idempotencyKeys": affected_rows(keys), "hosts": affected_rows(gone),
            "auditEntries": audited, "messageActions": actions}
