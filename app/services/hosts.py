"""Session hosts and leases: who drives which session, and who has room for one more.

A lease is (holder, fencing token, expiry) on the session row. Every claim bumps the
token; renewals and releases only touch a row whose holder and token are still ours, so a
host that lost its lease can never write over its successor.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, func, or_, select, update

from app.config import Config
from app.extensions import db
from app.models import RUNNING, Host, Session, utcnow
from app.models.base import affected_rows
from app.services.key_cache import SESSIONS_KEEP


@dataclass(frozen=True)
class HostLoad:
    name: str
    capacity: int
    held: int

    @property
    def free(self) -> int:
        return self.capacity - self.held


def _lease_live(now: datetime) -> ColumnElement[bool]:
    return and_(Session.lease_holder.is_not(None), Session.lease_expires_at > now)


def live_hosts(config: Config, now: datetime | None = None) -> list[HostLoad]:
    """Hosts whose heartbeat is fresh, with the live leases each holds."""
    now = now or utcnow()
    cutoff = now - timedelta(seconds=config.session_lease_ttl)
    held = (select(Session.lease_holder, func.count().label("n"))
            .where(_lease_live(now)).group_by(Session.lease_holder).subquery())
    rows = db.session.execute(
        select(Host.name, Host.capacity, func.coalesce(held.c.n, 0))
        .outerjoin(held, held.c.lease_holder == Host.name)
        .where(Host.last_heartbeat > cutoff)
    ).all()
    return [HostLoad(name, capacity, count) for name, capacity, count in rows]


def pick_host(config: Config, exclude: set[str] | None = None) -> HostLoad | None:
    """The live host with the most free slots, or None."""
    candidates = [h for h in live_hosts(config) if h.free > 0 and h.name not in (exclude or set())]
    if not candidates:
        return None
    return max(candidates, key=lambda h: (h.free, h.name))


def holder_alive(session: Session, config: Config) -> bool:
    now = utcnow()
    if not session.lease_holder or not session.lease_expires_at or session.lease_expires_at <= now:
        return False
    host = db.session.get(Host, session.lease_holder)
    return host is not None and host.last_heartbeat > now - timedelta(seconds=config.session_lease_ttl)


def orphaned_sessions(now: datetime | None = None) -> list[Session]:
    """Sessions that should run but that no live lease covers."""
    now = now or utcnow()
    return list(db.session.scalars(
        select(Session).where(Session.desired_state == RUNNING,
                              or_(Session.lease_holder.is_(None), Session.lease_expires_at <= now))
        .order_by(Session.updated_at)))


# -- the host side -----------------------------------------------------------
def heartbeat(name: str, capacity: int, held: int, version: str) -> None:
    now = utcnow()
    host = db.session.get(Host, name)
    if host is None:
        db.session.add(Host(name=name, capacity=capacity, held=held, started_at=now,
                            last_heartbeat=now, version=version))
    else:
        host.capacity, host.held, host.last_heartbeat, host.version = capacity, held, now, version
    db.session.commit()


def forget_host(name: str) -> None:
    host = db.session.get(Host, name)
    if host is not None:
        db.session.delete(host)
        db.session.commit()


#: Leases change nothing the API's session cache keeps (app/services/session_cache.py).
_KEEP = {SESSIONS_KEEP: True}


def claim(session_id: str, holder: str, ttl: int) -> int | None:
    """Take the lease of a session that should run; return the new fencing token.

    Succeeds when nobody holds it, the lease has expired, or we held it before (a host
    restarted under the same node name: Celery node names are unique while alive).
    """
    now = utcnow()
    result = db.session.execute(
        update(Session)
        .where(Session.id == session_id, Session.desired_state == RUNNING,
               or_(Session.lease_holder.is_(None), Session.lease_expires_at <= now,
                   Session.lease_holder == holder))
        .values(lease_holder=holder, lease_token=Session.lease_token + 1,
                lease_expires_at=now + timedelta(seconds=ttl))
        .execution_options(synchronize_session=False, **_KEEP))
    db.session.commit()
    if affected_rows(result) != 1:
        return None
    return db.session.scalar(select(Session.lease_token).where(Session.id == session_id))


def renew(leases: dict[str, int], holder: str, ttl: int) -> set[str]:
    """Extend our leases; return the session ids whose lease is no longer ours."""
    lost: set[str] = set()
    expires = utcnow() + timedelta(seconds=ttl)
    for session_id, token in leases.items():
        result = db.session.execute(
            update(Session)
            .where(Session.id == session_id, Session.lease_holder == holder,
                   Session.lease_token == token)
            .values(lease_expires_at=expires)
            .execution_options(synchronize_session=False, **_KEEP))
        if affected_rows(result) != 1:
            lost.add(session_id)
    db.session.commit()
    return lost


def release(session_id: str, holder: str, token: int) -> None:
    """Expire our lease now. The holder's name stays, so the same node restarting
    takes the session straight back, while any other host may claim it at once."""
    db.session.execute(
        update(Session)
        .where(Session.id == session_id, Session.lease_holder == holder,
               Session.lease_token == token)
        .values(lease_expires_at=utcnow())
        .execution_options(synchronize_session=False, **_KEEP))
    db.session.commit()


def still_ours(session_id: str, holder: str, token: int) -> bool:
    return db.session.scalar(
        select(func.count()).select_from(Session)
        .where(Session.id == session_id, Session.lease_holder == holder,
               Session.lease_token == token, Session.lease_expires_at > utcnow())) == 1


def sessions_held_by(holder: str) -> list[str]:
    return list(db.session.scalars(
        select(Session.id).where(Session.lease_holder == holder, Session.desired_state == RUNNING)))
