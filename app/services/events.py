"""Applying what an engine reports to the database: statuses, QR codes, messages, acks.

Called by the session host between tasks. Each event is applied in its own transaction
and is idempotent: an incoming message seen twice is stored once.
"""
from __future__ import annotations

import logging
import secrets
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import Message, Session, utcnow
from app.models.message import ACK_RANK
from app.schemas.messages import MessageSchema
from app.services import webhooks
from engines.base import EngineEvent, EngineState, EventKind

log = logging.getLogger(__name__)

STATE_STATUS = {
    EngineState.STARTING: "initializing",
    EngineState.QR: "qr_ready",
    EngineState.AUTHENTICATING: "authenticating",
    EngineState.READY: "ready",
    EngineState.DISCONNECTED: "disconnected",
    EngineState.LOGGED_OUT: "disconnected",
    EngineState.FAILED: "failed",
}


def commit_and_publish(targets: list[str]) -> None:
    """Commit the change together with its outbox rows, then nudge the delivery workers."""
    db.session.commit()
    if targets:
        webhooks.kick(targets)


def set_status(session_id: str, status: str, **values: Any) -> None:
    """Change the session's status and report it (session.status) in the same transaction."""
    previous = db.session.scalar(select(Session.status).where(Session.id == session_id))
    db.session.execute(update(Session).where(Session.id == session_id)
                       .values(status=status, updated_at=utcnow(), **values)
                       .execution_options(synchronize_session=False))
    targets: list[str] = []
    if previous is not None and previous != status:
        data = {"status": status, "previousStatus": previous}
        if values.get("last_error"):
            data["reason"] = values["last_error"]
        targets = webhooks.emit(session_id, "session.status", data)
        if status == "disconnected":
            targets += webhooks.emit(session_id, "session.disconnected",
                                     {"reason": values.get("last_error")})
    commit_and_publish(targets)


def apply(session_id: str, event: EngineEvent) -> None:
    handler = _HANDLERS.get(event.kind)
    if handler is None:
        log.debug("ignoring %s event of %s", event.kind, session_id)
        return
    try:
        handler(session_id, event.data)
    except Exception:
        db.session.rollback()
        raise


def _state(session_id: str, data: dict[str, Any]) -> None:
    state = EngineState(data["state"])
    status = STATE_STATUS.get(state)
    if status is None:
        return
    values: dict[str, Any] = {}
    if state is not EngineState.QR:
        values["qr_code"] = None
    if state is EngineState.LOGGED_OUT:
        values.update(phone=None, push_name=None, connected_at=None)
    if state in (EngineState.DISCONNECTED, EngineState.FAILED) and data.get("reason"):
        values["last_error"] = str(data["reason"])[:2000]
    set_status(session_id, status, **values)


def _qr(session_id: str, data: dict[str, Any]) -> None:
    db.session.execute(update(Session).where(Session.id == session_id)
                       .values(qr_code=data["qr"], qr_updated_at=utcnow())
                       .execution_options(synchronize_session=False))
    commit_and_publish(webhooks.emit(session_id, "session.qr", {"qr": data["qr"]}))
    set_status(session_id, "qr_ready")


def _authenticated(session_id: str, data: dict[str, Any]) -> None:
    db.session.execute(update(Session).where(Session.id == session_id).values(qr_code=None)
                       .execution_options(synchronize_session=False))
    commit_and_publish(webhooks.emit(session_id, "session.authenticated", {}))
    set_status(session_id, "authenticating")


def _ready(session_id: str, data: dict[str, Any]) -> None:
    now = utcnow()
    set_status(session_id, "ready", qr_code=None, phone=data.get("phone"),
               push_name=data.get("pushName"), connected_at=now, last_active=now,
               last_error=None, reconnect_attempts=0)


def _message(session_id: str, data: dict[str, Any]) -> None:
    wa_id = data["id"]
    exists = db.session.scalar(select(Message.seq).where(Message.session_id == session_id,
                                                         Message.wa_message_id == wa_id))
    if exists is not None:
        return
    from_me = bool(data.get("fromMe"))
    message = Message(
        id="IN" + secrets.token_hex(11).upper(), session_id=session_id, wa_message_id=wa_id,
        chat_id=data["chatId"], sender=data.get("from"), recipient=data.get("to"),
        from_me=from_me, type=data.get("type") or "text", body=data.get("body"),
        caption=data.get("caption"), media=data.get("media"),
        quoted_message_id=data.get("quotedMessageId"),
        status="sent" if from_me else "delivered", timestamp=int(data.get("timestamp") or 0),
    )
    db.session.add(message)
    db.session.execute(update(Session).where(Session.id == session_id)
                       .values(last_active=utcnow()).execution_options(synchronize_session=False))
    try:
        db.session.flush()
        commit_and_publish(webhooks.emit(session_id, "message.received",
                                         MessageSchema().dump(message)))
    except IntegrityError:
        db.session.rollback()  # stored by an earlier drain of the same event


def _ack(session_id: str, data: dict[str, Any]) -> None:
    ack = data["ack"]
    message = db.session.scalar(select(Message).where(Message.session_id == session_id,
                                                      Message.wa_message_id == data["messageId"]))
    if message is None or ACK_RANK.get(ack, -1) <= ACK_RANK.get(message.status, -1):
        return  # acks only move forward
    message.status = ack
    commit_and_publish(webhooks.emit(session_id, "message.ack", {
        "id": message.id, "messageId": message.wa_message_id, "chatId": message.chat_id,
        "ack": ack}))


def _revoked(session_id: str, data: dict[str, Any]) -> None:
    commit_and_publish(webhooks.emit(session_id, "message.revoked", {
        "messageId": data.get("messageId"), "chatId": data.get("chatId")}))


def _reaction(session_id: str, data: dict[str, Any]) -> None:
    commit_and_publish(webhooks.emit(session_id, "message.reaction", {
        "messageId": data.get("messageId"), "chatId": data.get("chatId"),
        "from": data.get("from"), "emoji": data.get("emoji")}))


_HANDLERS = {
    EventKind.STATE: _state,
    EventKind.QR: _qr,
    EventKind.AUTHENTICATED: _authenticated,
    EventKind.READY: _ready,
    EventKind.MESSAGE: _message,
    EventKind.ACK: _ack,
    EventKind.REVOKED: _revoked,
    EventKind.REACTION: _reaction,
}
