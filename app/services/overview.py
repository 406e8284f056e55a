"""What the dashboard's overview and infrastructure pages read: counts, hosts, queues."""
from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from typing import Any

from sqlalchemy import func, or_, select

from app.common.names import host_queue
from app.config import Config
from app.extensions import celery_app, db
from app.models import STATUSES, Backup, Host, Message, Session, utcnow
from app.services import hosts

ACTIVE = ("initializing", "qr_ready", "authenticating", "ready")
WORKER_QUEUES = ("default", "webhooks", "media", "backups", "batches")  # batches: bulk sends (13.5)


def _scoped(query: Any, allowed: list[str] | None, id_column: Any) -> Any:
    if allowed:
        ids = select(Session.id).where(or_(Session.id.in_(allowed), Session.name.in_(allowed)))
        query = query.where(id_column.in_(ids))
    return query


def overview(allowed: list[str] | None, now: datetime | None = None) -> dict[str, Any]:
    """Session counts by status and the message volume of the last 7 UTC days."""
    now = now or utcnow()
    rows = db.session.execute(_scoped(select(Session.status, func.count()).group_by(Session.status),
                                      allowed, Session.id)).all()
    by_status = {status: 0 for status in STATUSES}
    by_status.update({status: count for status, count in rows})
    today = datetime.combine(now.astimezone(timezone.utc).date(), time(), tzinfo=timezone.utc)
    days = []
    for back in range(6, -1, -1):
        start = today - timedelta(days=back)
        counts = dict(db.session.execute(_scoped(
            select(Message.from_me, func.count()).where(
                Message.created_at >= start, Message.created_at < start + timedelta(days=1))
            .group_by(Message.from_me), allowed, Message.session_id)).all())
        incoming, outgoing = counts.get(False, 0), counts.get(True, 0)
        days.append({"date": start.date().isoformat(), "incoming": incoming, "outgoing": outgoing,
                     "total": incoming + outgoing})
    return {"total": sum(by_status.values()),
            "active": sum(by_status.get(s, 0) for s in ACTIVE),
            "ready": by_status.get("ready", 0), "disconnected": by_status.get("disconnected", 0),
            "byStatus": by_status, "messagesToday": days[-1]["total"], "messagesByDay": days}


def queue_depths(host_names: list[str]) -> dict[str, int | None]:
    """Messages waiting in each worker queue and each live host's queue (None: unknown)."""
    names = list(WORKER_QUEUES) + [host_queue(name) for name in host_names]
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
            client = conn.default_channel.client
            return {name: int(client.llen(name)) for name in names}
    except Exception:  # broker down: the broker check says so; depths are unknown
        return {name: None for name in names}


def infra(config: Config, checks: dict[str, dict[str, Any]]) -> dict[str, Any]:
    now = utcnow()
    live = {h.name: h for h in hosts.live_hosts(config, now)}
    host_rows = []
    for host in db.session.scalars(select(Host).order_by(Host.name)):
        load = live.get(host.name)
        host_rows.append({"name": host.name, "live": load is not None, "capacity": host.capacity,
                          "sessionsHeld": load.held if load else 0, "version": host.version,
                          "startedAt": host.started_at.isoformat(),
                          "lastHeartbeat": host.last_heartbeat.isoformat()})
    leases = [{"sessionId": s.id, "name": s.name, "status": s.status, "holder": s.lease_holder,
               "token": s.lease_token,
               "expiresAt": s.lease_expires_at.isoformat() if s.lease_expires_at else None,
               "live": bool(s.lease_expires_at and s.lease_expires_at > now)}
              for s in db.session.scalars(select(Session).where(Session.lease_holder.is_not(None))
                                          .order_by(Session.name))]
    last = db.session.scalar(select(Backup).order_by(Backup.started_at.desc()).limit(1))
    return {"hosts": host_rows, "leases": leases, "queues": queue_depths(sorted(live)),
            "lastBackup": last, **checks}
