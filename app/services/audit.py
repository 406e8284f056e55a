"""The audit log: one call where keys, sessions, webhooks and backups change.

``record`` adds the entry to the current transaction, so it is committed with the change it
describes (or not at all). The actor is the API key of the request being served, when there
is one (a beat-run backup has none). Entries older than AUDIT_RETENTION_DAYS are pruned by
the maintenance beat task.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from flask import g, has_request_context, request
from sqlalchemy import delete, func, select
from sqlalchemy.exc import SQLAlchemyError

from app.config import settings
from app.extensions import db
from app.models import AuditEntry, utcnow

log = logging.getLogger(__name__)


def record(action: str, target_type: str | None = None, target_id: str | None = None,
           **detail: Any) -> None:
    """Add an audit entry to the current transaction (the caller commits)."""
    entry = AuditEntry(action=action, target_type=target_type,
                       target_id=None if target_id is None else str(target_id)[:64],
                       detail=detail or None, created_at=utcnow())
    if has_request_context():
        key = getattr(g, "api_key", None)
        if key is not None:
            entry.actor_key_id, entry.actor_prefix = key.id, key.key_prefix
        entry.ip = (request.remote_addr or "")[:64] or None
    db.session.add(entry)


def record_now(action: str, **detail: Any) -> None:
    """Record and commit at once (a refused request has no change of its own to commit)."""
    try:
        record(action, **detail)
        db.session.commit()
    except SQLAlchemyError as error:  # the audit log must never turn a 401 into a 500
        db.session.rollback()
        log.warning("could not record %s in the audit log: %s", action, type(error).__name__)


def search(action: str | None, since: datetime | None, until: datetime | None,
           limit: int, offset: int) -> tuple[list[AuditEntry], int]:
    """Newest first; ``action`` matches exactly, or a whole family when it ends with '.'
    or '*' (``session.`` / ``session.*``)."""
    query = select(AuditEntry)
    if action:
        if action.endswith(("*", ".")):
            query = query.where(AuditEntry.action.startswith(action.rstrip("*"), autoescape=True))
        else:
            query = query.where(AuditEntry.action == action)
    if since is not None:
        query = query.where(AuditEntry.created_at >= since)
    if until is not None:
        query = query.where(AuditEntry.created_at <= until)
    total = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = db.session.scalars(query.order_by(AuditEntry.id.desc()).limit(limit).offset(offset))
    return list(rows), total


def prune(now: datetime | None = None) -> int:
    """Delete entries older than AUDIT_RETENTION_DAYS; returns how many."""
    days = settings().audit_retention_days
    cutoff = (now or utcnow()) - timedelta(days=days)
    result = db.session.execute(delete(AuditEntry).where(AuditEntry.created_at < cutoff))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
