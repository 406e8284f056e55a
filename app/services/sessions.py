"""Session life cycle as the API sees it: records intent, then asks a host to act.

The API never drives an engine. It persists the desired state (so any restart brings
back exactly the sessions that should run) and sends commands by task name to the
session host that holds the session, or to one with room for it.
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

from sqlalchemy import bindparam
from sqlalchemy import delete as sql_delete
from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError

from app.common.names import Tasks, host_queue
from app.config import Config, settings
from app.errors import ApiError, BadRequest, Conflict, NotFound
from app.extensions import db
from app.models import (
    RUNNING,
    STOPPED,
    IdempotencyKey,
    Message,
    Session,
    SessionStatus,
    utcnow,
)
from app.models.base import affected_rows
from app.services import audit, dispatch, hosts, media
from app.services.events import set_status_if

log = logging.getLogger(__name__)

START_TASK = Tasks.START_SESSION
STOP_TASK = Tasks.STOP_SESSION
LOGOUT_TASK = Tasks.LOGOUT_SESSION


# Built once: every request on a session runs it.
_BY_ID_OR_NAME = select(Session).where(or_(Session.id == bindparam("sid"), Session.name == bindparam("sid")))


def find(sid: str) -> Session | None:
    return db.session.scalar(_BY_ID_OR_NAME, {"sid": sid})


def get(sid: str) -> Session:
    session = find(sid)
    if session is None:
        raise NotFound(f"Session '{sid}' not found")
    return session


def list_sessions(allowed: list[str] | None, status: str | None) -> list[Session]:
    query = select(Session).order_by(Session.created_at)
    if allowed:
        query = query.where(or_(Session.id.in_(allowed), Session.name.in_(allowed)))
    if status:
        query = query.where(Session.status == status)
    return list(db.session.scalars(query))


def create(name: str) -> Session:
    if find(name) is not None:
        raise Conflict(f"Session '{name}' already exists")
    cap = settings().max_created_sessions
    if (db.session.scalar(select(func.count()).select_from(Session)) or 0) >= cap:
        raise Conflict(f"MAX_CREATED_SESSIONS ({cap}) sessions exist; delete one first",
                       code="MAX_CREATED_SESSIONS")
    session = Session(name=name)
    db.session.add(session)
    try:
        db.session.flush()  # the id, for the audit entry committed with it
        audit.record("session.created", "session", session.id, name=name)
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise Conflict(f"Session '{name}' already exists") from None
    return session


def profile_dir(session: Session) -> Path:
    return settings().session_data_path / session.id


def _dispatch_start(session: Session) -> None:
    host = hosts.pick_host(settings())
    if host is None:
        # No host has room now: the health probe assigns it as soon as one has.
        log.info("no session host with free capacity for %s; the probe will assign it", session.id)
        return
    dispatch.send(START_TASK, [session.id], host_queue(host.name))


def start(session: Session) -> Session:
    """Mark the session as wanted running and hand it to a host.

    The conditional update makes a double start a 400, never two engines.
    """
    cfg = settings()
    running = db.session.scalar(select(func.count()).select_from(Session)
                                .where(Session.desired_state == RUNNING)) or 0
    if running >= cfg.max_sessions and session.desired_state != RUNNING:
        raise ApiError(f"MAX_SESSIONS ({cfg.max_sessions}) sessions are already running",
                       status=429, code="MAX_SESSIONS_REACHED")
    result = db.session.execute(
        update(Session).where(Session.id == session.id, Session.desired_state == STOPPED)
        .values(desired_state=RUNNING, status=SessionStatus.INITIALIZING, last_error=None,
                reconnect_attempts=0, updated_at=utcnow())
        .execution_options(synchronize_session=False))
    if result.rowcount == 1:  # type: ignore[attr-defined]
        audit.record("session.started", "session", session.id, name=session.name)
    db.session.commit()
    if affected_rows(result) != 1:
        raise BadRequest(f"Session '{session.name}' is already running", code="SESSION_RUNNING")
    # Two starts racing for the last slot both passed the count: the later one yields.
    running = db.session.scalar(select(func.count()).select_from(Session)
                                .where(Session.desired_state == RUNNING)) or 0
    if running > cfg.max_sessions:
        keep = SessionStatus.CREATED if session.status == SessionStatus.CREATED else session.status
        _set_stopped(session.id, status=keep)
        raise ApiError(f"MAX_SESSIONS ({cfg.max_sessions}) sessions are already running",
                       status=429, code="MAX_SESSIONS_REACHED")
    db.session.refresh(session)
    _dispatch_start(session)
    return session


def _set_stopped(session_id: str, status: str = SessionStatus.DISCONNECTED) -> None:
    db.session.execute(update(Session).where(Session.id == session_id)
                       .values(desired_state=STOPPED, status=status, qr_code=None,
                               updated_at=utcnow())
                       .execution_options(synchronize_session=False))
    db.session.commit()


def _command_holder(session: Session, task: str, timeout: float) -> bool:
    """Run ``task`` on the host holding the session and wait; False if none holds it."""
    if not session.lease_holder or not hosts.holder_alive(session, settings()):
        return False
    dispatch.call(task, [session.id], host_queue(session.lease_holder), timeout)
    return True


def stop(session: Session) -> Session:
    """Stop the engine and keep its credentials; it stays stopped until started."""
    was_running = session.desired_state == RUNNING
    db.session.execute(update(Session).where(Session.id == session.id)
                       .values(desired_state=STOPPED).execution_options(synchronize_session=False))
    audit.record("session.stopped", "session", session.id, name=session.name)
    db.session.commit()
    db.session.refresh(session)
    if was_running and not _command_holder(session, STOP_TASK, settings().engine_call_timeout):
        _set_stopped(session.id)
    elif not was_running and session.status not in (SessionStatus.CREATED, SessionStatus.DISCONNECTED,
                                                    SessionStatus.FAILED):
        _set_stopped(session.id)
    db.session.refresh(session)
    return session


def restart(session: Session) -> Session:
    stop(session)
    return start(session)


def _wipe_profile(session: Session) -> None:
    shutil.rmtree(profile_dir(session), ignore_errors=True)


def logout(session: Session) -> Session:
    """Unlink the device and wipe the profile: the next start needs a QR."""
    db.session.execute(update(Session).where(Session.id == session.id)
                       .values(desired_state=STOPPED).execution_options(synchronize_session=False))
    audit.record("session.logged_out", "session", session.id, name=session.name)
    db.session.commit()
    db.session.refresh(session)
    if not _command_holder(session, LOGOUT_TASK, settings().engine_call_timeout):
        _wipe_profile(session)
    db.session.execute(update(Session).where(Session.id == session.id)
                       .values(status=SessionStatus.DISCONNECTED, phone=None, push_name=None, qr_code=None,
                               connected_at=None, updated_at=utcnow())
                       .execution_options(synchronize_session=False))
    db.session.commit()
    db.session.refresh(session)
    return session


def delete(session: Session) -> None:
    """Stop the engine first, then remove rows, profile and queued commands."""
    if session.desired_state == RUNNING or session.lease_holder:
        stop(session)
    session_id, queue = session.id, session.queue
    _wipe_profile(session)
    files = media.session_files(session_id)  # -- media (issue 12)
    db.session.execute(sql_delete(IdempotencyKey).where(IdempotencyKey.session_id == session_id))
    db.session.execute(sql_delete(Message).where(Message.session_id == session_id))
    db.session.execute(sql_delete(Session).where(Session.id == session_id))
    audit.record("session.deleted", "session", session_id, name=session.name)
    db.session.commit()
    media.forget_session(settings(), files)  # -- media (issue 12): what only it used
    dispatch.purge_queue(queue)


def pending_qr(session: Session) -> str:
    if session.status != SessionStatus.QR_READY or not session.qr_code:
        raise Conflict(f"Session '{session.name}' has no QR code pending (status {session.status})",
                       code="QR_NOT_AVAILABLE")
    return session.qr_code


# Statuses that say a host drives the session's engine now.
HELD_STATUSES = (SessionStatus.READY, SessionStatus.AUTHENTICATING, SessionStatus.QR_READY)
UNHELD_REASON = "no live session host holds the session; handing it to another host"


def report_unheld() -> int:
    """Sessions that still say ``ready`` (or show a QR) although no live lease covers them
    (their host died) become ``disconnected``, reported as session.status: the status must
    not claim a connection nobody drives. The host that takes the session over reports
    ``initializing`` and then ``ready`` again. Returns how many changed."""
    now = utcnow()
    unheld = or_(Session.lease_holder.is_(None), Session.lease_expires_at <= now)
    changed = 0
    for session in hosts.orphaned_sessions(now):
        if session.status in HELD_STATUSES and set_status_if(
                session.id, SessionStatus.DISCONNECTED, unheld, Session.status == session.status,
                qr_code=None, last_error=UNHELD_REASON):
            log.info("session %s was %s with no live host; now disconnected", session.id,
                     session.status)
            changed += 1
    return changed


def assign_orphans(cfg: Config, only: list[str] | None = None) -> int:
    """Send a start for each session that should run but that no live lease covers."""
    free = {h.name: h.free for h in hosts.live_hosts(cfg) if h.free > 0}
    assigned = 0
    for session in hosts.orphaned_sessions():
        if only is not None and session.id not in only:
            continue
        if not free:
            break
        name = max(free, key=lambda n: (free[n], n))
        dispatch.send(START_TASK, [session.id], host_queue(name))
        free[name] -= 1
        if free[name] <= 0:
            del free[name]
        assigned += 1
    return assigned
