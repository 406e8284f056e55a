"""Tasks that run on session hosts: life cycle on ``host.<name>``, commands on ``session.<id>``.

Every task takes ids, loads its rows and can run twice without harm. Replies are
``{"ok": True, "result": ...}`` or ``{"ok": False, "code": ..., "error": ...}`` so the API
maps engine errors to HTTP statuses without unpickling exceptions.
"""
from __future__ import annotations

import logging
import time
from typing import Any, NamedTuple

from celery.exceptions import Reject
from sqlalchemy import bindparam, select

from app import logs, metrics
from app.extensions import db
from app.models import RUNNING, Message, Session
from app.services.messages import FINAL_SENT, mark_failed, mark_sending, mark_sent, settle_older
from engines import EngineError, EngineNotReady, EngineState, EngineUnsupported
from tasks.base import openwa_task
from tasks.host import runtime

log = logging.getLogger(__name__)

QUERY_METHODS = {"contacts", "chats", "groups", "check_number", "request_pairing_code",
                 "simulate_scan", "simulate_disconnect"}


def ok(result: Any = None) -> dict[str, Any]:
    return {"ok": True, "result": result}


def fail(code: str, error: str) -> dict[str, Any]:
    return {"ok": False, "code": code, "error": error}


def _engine_error(error: EngineError) -> dict[str, Any]:
    if isinstance(error, EngineUnsupported):
        return fail("ENGINE_UNSUPPORTED", str(error))
    if isinstance(error, EngineNotReady):
        return fail("SESSION_NOT_READY", str(error) or "Session is not ready")
    return fail("ENGINE_ERROR", str(error) or type(error).__name__)


@openwa_task("tasks.sessions.start_session")
def start_session(session_id: str) -> dict[str, Any]:
    logs.session_id.set(session_id)
    session = db.session.get(Session, session_id)
    if session is None or session.desired_state != RUNNING:
        return ok("not-wanted")
    return ok(runtime().start_session(session_id))


@openwa_task("tasks.sessions.stop_session")
def stop_session(session_id: str) -> dict[str, Any]:
    logs.session_id.set(session_id)
    session = db.session.get(Session, session_id)
    if session is not None and session.desired_state == RUNNING:
        return ok("restarted-since")  # a start came after this stop: keep running
    runtime().stop_session(session_id)
    return ok("stopped")


@openwa_task("tasks.sessions.logout_session")
def logout_session(session_id: str) -> dict[str, Any]:
    logs.session_id.set(session_id)
    host = runtime()
    if session_id not in host.held:
        return ok("not-held")
    host.stop_session(session_id, logout=True)
    return ok("logged-out")


# Built once: building a statement costs more CPU than running it (make bench).
_LOAD = select(Message).where(Message.id == bindparam("message_id"))


@openwa_task("tasks.sessions.send_message")
def send_message(message_id: str) -> dict[str, Any]:
    message = db.session.execute(_LOAD, {"message_id": message_id}).scalar_one_or_none()
    if message is None:
        log.info("message %s is gone; nothing to send", message_id)
        return fail("NOT_FOUND", f"Message '{message_id}' not found")
    logs.session_id.set(message.session_id)
    if message.status in FINAL_SENT:
        return ok({"messageId": message.wa_message_id, "timestamp": message.timestamp})
    if message.status == "failed":
        return fail("ENGINE_ERROR", message.error or "Send failed")
    held = runtime().held.get(message.session_id)
    if held is None:
        # Only in a race with a stop or a handover: put it back for the holder.
        raise Reject(f"session {message.session_id} is not held here", requeue=True)
    # Read what the send needs now: a commit expires the row, and reloading it costs a query.
    out = Outgoing(message.id, message.session_id, message.chat_id, message.type, message.body,
                   message.quoted_message_id, message.mentions)
    seq = message.seq
    engine = held.engine
    started = time.perf_counter()
    try:
        if engine.state is not EngineState.READY:
            raise EngineNotReady("Session is not ready")
        # Order per session: older sends a killed host or API worker left unsettled first.
        settle_older(engine, out.session_id, seq, held.settled_seq)
        held.settled_seq = max(held.settled_seq, seq)
        if message.status == "sending":
            # A redelivery after a crash: ask the engine before sending again.
            try:
                sent = engine.find_sent(out.chat_id, out.id)
            except EngineUnsupported:
                sent = None
            if sent is not None:
                return _mark_sent(out, sent.message_id, sent.timestamp)
        mark_sending(out.id)
        sent = engine.send_text(out.chat_id, out.body or "", message_id=out.id,
                                quoted_message_id=out.quoted_message_id, mentions=out.mentions)
    except EngineError as error:
        reason = str(error) or type(error).__name__
        mark_failed(out.id, out.session_id, out.chat_id, reason)
        metrics.messages_sent_total.labels(out.session_id, out.type, "failed").inc()
        log.warning("send of %s failed after %.3f s: %s", message_id,
                    time.perf_counter() - started, reason)
        return _engine_error(error)
    metrics.message_send_duration_seconds.labels(out.session_id, out.type).observe(
        time.perf_counter() - started)
    metrics.messages_sent_total.labels(out.session_id, out.type, "sent").inc()
    return _mark_sent(out, sent.message_id, sent.timestamp)


class Outgoing(NamedTuple):
    id: str
    session_id: str
    chat_id: str
    type: str
    body: str | None
    quoted_message_id: str | None
    mentions: list[str] | None


def _mark_sent(out: Outgoing, wa_id: str, timestamp: int) -> dict[str, Any]:
    mark_sent(out.id, out.session_id, out.chat_id, out.type, out.body, wa_id, timestamp)
    return ok({"messageId": wa_id, "timestamp": timestamp})


@openwa_task("tasks.sessions.engine_query")
def engine_query(session_id: str, method: str, args: list[Any]) -> dict[str, Any]:
    logs.session_id.set(session_id)
    if method not in QUERY_METHODS:
        return fail("ENGINE_UNSUPPORTED", f"unknown engine call {method!r}")
    host = runtime()
    held = host.held.get(session_id)
    if held is None:
        raise Reject(f"session {session_id} is not held here", requeue=True)
    function = getattr(held.engine, method, None)
    if function is None:
        return fail("ENGINE_UNSUPPORTED", f"{held.engine.name} engine cannot {method}")
    try:
        result = function(*args)
    except EngineError as error:
        return _engine_error(error)
    finally:
        host.drain(session_id)
    if hasattr(result, "exists"):  # NumberStatus
        result = {"exists": result.exists, "whatsappId": result.whatsapp_id}
    return ok(result)
