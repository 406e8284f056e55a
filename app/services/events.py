"""Applying what an engine reports to the database: statuses, QR codes, messages, acks.

Called by the session host between tasks. What one poll of an engine returned is applied
in one transaction (one commit for a burst of acks and messages, not one each); if that
fails, each event is retried in its own transaction so one bad event cannot hold back the
others. Every handler is idempotent: an incoming message seen twice is stored once, an ack
never moves a message backwards.
"""
from __future__ import annotations

import logging
import secrets
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import DisconnectionError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as SATimeoutError

from app.extensions import db
from app.models import Message, MessageStatus, Session, SessionStatus, utcnow
from app.models.message import ACK_RANK
from app.schemas.messages import MediaSchema, MessageSchema
from app.services import key_cache, message_events, webhooks
from engines.base import EngineEvent, EngineState, EventKind

log = logging.getLogger(__name__)

STATE_STATUS = {
    EngineState.STARTING: SessionStatus.INITIALIZING,
    EngineState.QR: SessionStatus.QR_READY,
    EngineState.AUTHENTICATING: SessionStatus.AUTHENTICATING,
    EngineState.READY: SessionStatus.READY,
    EngineState.DISCONNECTED: SessionStatus.DISCONNECTED,
    EngineState.LOGGED_OUT: SessionStatus.DISCONNECTED,
    EngineState.FAILED: SessionStatus.FAILED,
}


def commit_and_publish(targets: list[str]) -> None:
    """Commit the change together with its outbox rows, then nudge the delivery workers."""
    db.session.commit()
    if targets:
        webhooks.kick(targets)


def set_status(session_id: str, status: str, **values: Any) -> None:
    """Change the session's status and report it (session.status) in the same transaction."""
    commit_and_publish(_stage_status(session_id, status, **values))


def set_status_if(session_id: str, status: str, *conditions: Any, **values: Any) -> bool:
    """``set_status`` only while the row still matches ``conditions``, checked in the UPDATE
    itself (a change another process made meanwhile wins); True if the status was set."""
    where = (Session.id == session_id, *conditions)
    previous = db.session.scalar(select(Session.status).where(*where))
    changed = db.session.execute(update(Session).where(*where)
                                 .values(status=status, updated_at=utcnow(), **values)
                                 .execution_options(synchronize_session=False))
    if previous is None or changed.rowcount != 1:  # type: ignore[attr-defined]
        db.session.rollback()
        return False
    commit_and_publish(_status_events(session_id, previous, status, values))
    return True


def _stage_status(session_id: str, status: str, **values: Any) -> list[str]:
    """Add the status change and its events to the current transaction; the outbox targets."""
    previous = db.session.scalar(select(Session.status).where(Session.id == session_id))
    db.session.execute(update(Session).where(Session.id == session_id)
                       .values(status=status, updated_at=utcnow(), **values)
                       .execution_options(synchronize_session=False))
    return _status_events(session_id, previous, status, values)


def _status_events(session_id: str, previous: str | None, status: str,
                   values: dict[str, Any]) -> list[str]:
    """session.status (and session.disconnected) for a change from ``previous``."""
    targets: list[str] = []
    if previous is not None and previous != status:
        data = {"status": status, "previousStatus": previous}
        if values.get("last_error"):
            data["reason"] = values["last_error"]
        targets = webhooks.emit(session_id, "session.status", data)
        if status == SessionStatus.DISCONNECTED:
            targets += webhooks.emit(session_id, "session.disconnected",
                                     {"reason": values.get("last_error")})
    return targets


# The database is unreachable or restarting: worth trying again later, unlike an event the
# database refuses (malformed, too long), which would refuse every later try as well.
TRANSIENT = (OperationalError, InterfaceError, DisconnectionError, SATimeoutError)


class EventsNotApplied(Exception):
    """The database failed part-way: ``remaining`` (in order) were not applied."""

    def __init__(self, remaining: list[EngineEvent]) -> None:
        super().__init__(f"{len(remaining)} engine events not applied")
        self.remaining = remaining


def apply(session_id: str, event: EngineEvent) -> None:
    """Apply one event in its own transaction."""
    apply_all(session_id, [event])


def apply_all(session_id: str, events: list[EngineEvent]) -> None:
    """Apply ``events`` in order, in one transaction; if that fails, one transaction each.

    A duplicate is skipped (it was stored before). A database failure raises
    ``EventsNotApplied`` (from the error) with the events still to apply, so the caller can
    keep them for its next try instead of losing them; an event the database refuses for
    good is logged and skipped.
    """
    if not events:
        return
    try:
        targets = _stage_all(session_id, events)
        db.session.commit()
    except Exception:  # noqa: BLE001 - retried one by one below, where it is handled
        db.session.rollback()
    else:
        webhooks.kick(targets)
        return
    for i, event in enumerate(events):
        try:
            targets = _stage_all(session_id, [event])
            db.session.commit()
            webhooks.kick(targets)
        except IntegrityError:
            db.session.rollback()  # stored by an earlier drain of the same event
        except TRANSIENT as error:
            db.session.rollback()
            raise EventsNotApplied(events[i:]) from error
        except Exception:  # a malformed event must not hold back the ones after it
            db.session.rollback()
            log.exception("skipped a %s event of %s that cannot be applied", event.kind, session_id)


def _stage_all(session_id: str, events: list[EngineEvent]) -> list[str]:
    targets: list[str] = []
    i = 0
    while i < len(events):
        kind = events[i].kind
        if kind in _RUNS:
            # A busy session produces acks and messages in bursts: a few statements a run.
            j = i
            while j < len(events) and events[j].kind is kind:
                j += 1
            targets += _RUNS[kind](session_id, [event.data for event in events[i:j]])
            i = j
            continue
        handler = _HANDLERS.get(kind)
        if handler is None:
            log.debug("ignoring %s event of %s", kind, session_id)
        else:
            targets += handler(session_id, events[i].data)
        i += 1
    db.session.flush()  # a duplicate surfaces here, before the commit
    return targets


def _state(session_id: str, data: dict[str, Any]) -> list[str]:
    state = EngineState(data["state"])
    status = STATE_STATUS.get(state)
    if status is None:
        return []
    values: dict[str, Any] = {}
    if state is not EngineState.QR:
        values["qr_code"] = None
    if state is EngineState.LOGGED_OUT:
        values.update(phone=None, push_name=None, connected_at=None)
    if state in (EngineState.DISCONNECTED, EngineState.FAILED) and data.get("reason"):
        values["last_error"] = str(data["reason"])[:2000]
    return _stage_status(session_id, status, **values)


def _qr(session_id: str, data: dict[str, Any]) -> list[str]:
    db.session.execute(update(Session).where(Session.id == session_id)
                       .values(qr_code=data["qr"], qr_updated_at=utcnow())
                       .execution_options(synchronize_session=False))
    targets = webhooks.emit(session_id, "session.qr", {"qr": data["qr"]})
    return targets + _stage_status(session_id, SessionStatus.QR_READY)


def _authenticated(session_id: str, data: dict[str, Any]) -> list[str]:
    db.session.execute(update(Session).where(Session.id == session_id).values(qr_code=None)
                       .execution_options(synchronize_session=False))
    targets = webhooks.emit(session_id, "session.authenticated", {})
    return targets + _stage_status(session_id, SessionStatus.AUTHENTICATING)


def _ready(session_id: str, data: dict[str, Any]) -> list[str]:
    now = utcnow()
    return _stage_status(session_id, SessionStatus.READY, qr_code=None, phone=data.get("phone"),
                         push_name=data.get("pushName"), connected_at=now, last_active=now,
                         last_error=None, reconnect_attempts=0)


ID_CHUNK = 500  # WhatsApp ids per IN (...) list
_KNOWN = select(Message.wa_message_id).where(
    Message.session_id == bindparam("in_session"),
    Message.wa_message_id.in_(bindparam("wa_ids", expanding=True)))
_TOUCH = (update(Session).where(Session.id == bindparam("in_session"))
          .values(last_active=bindparam("active_at"))
          .execution_options(synchronize_session=False, **{key_cache.SESSIONS_KEEP: True}))


def _messages(session_id: str, messages: list[dict[str, Any]]) -> list[str]:
    """Store a run of incoming (or sent-from-the-phone) messages: one look-up of the ids
    already stored, one insert, one touch of the session, whatever the run's length."""
    wa_ids = list(dict.fromkeys(data["id"] for data in messages))
    known: set[str] = set()
    for start in range(0, len(wa_ids), ID_CHUNK):
        known.update(db.session.scalars(_KNOWN, {"in_session": session_id,
                                                 "wa_ids": wa_ids[start:start + ID_CHUNK]}))
    new: list[Message] = []
    for data in messages:
        if data["id"] in known:
            continue  # stored by an earlier drain of the same event
        known.add(data["id"])
        from_me = bool(data.get("fromMe"))
        row_id = "IN" + secrets.token_hex(11).upper()
        # -- media (issue 12): the engine's file, stored; the row keeps its stored fields
        if data.get("media"):
            data = {**data, "media": _store_media(session_id, row_id, data["media"])}
        new.append(Message(
            id=row_id, session_id=session_id, wa_message_id=data["id"],
            chat_id=data["chatId"], sender=data.get("from"), recipient=data.get("to"),
            from_me=from_me, type=data.get("type") or "text", body=data.get("body"),
            caption=data.get("caption"), media=data.get("media"),
            quoted_message_id=data.get("quotedMessageId"),
            content=data.get("content"),  # message actions (issue 13.1): location, poll...
            status=MessageStatus.SENT if from_me else MessageStatus.DELIVERED,
            timestamp=int(data.get("timestamp") or 0),
        ))
    if not new:
        return []
    db.session.add_all(new)
    _attach_media(new)  # -- media (issue 12)
    db.session.execute(_TOUCH, {"in_session": session_id, "active_at": utcnow()})
    db.session.flush()  # defaults (seq, createdAt) for the events
    schema = MessageSchema()
    targets: list[str] = []
    for message in new:
        targets += webhooks.emit(session_id, "message.received", schema.dump(message))
    return targets


# One statement per ack level, built once: it moves a message to the level only from below.
_ACK_TO = {
    ack: update(Message)
    .where(Message.session_id == bindparam("in_session"),
           Message.wa_message_id.in_(bindparam("wa_ids", expanding=True)),
           Message.status.in_([status for status, r in ACK_RANK.items() if r < rank]))
    .values(status=ack).returning(Message.id, Message.wa_message_id, Message.chat_id)
    .execution_options(synchronize_session=False)
    for ack, rank in ACK_RANK.items() if rank > 0
}


def _acks(session_id: str, acks: list[dict[str, Any]]) -> list[str]:
    """Apply acks in one UPDATE per ack level (lowest level first, so a message's
    ``delivered`` is reported before its ``read``). Acks only move forward: an older or
    repeated ack matches no row and reports nothing."""
    by_level: dict[str, list[str]] = {}
    for data in acks:
        if data.get("ack") in _ACK_TO and data.get("messageId"):
            wa_ids = by_level.setdefault(data["ack"], [])
            if data["messageId"] not in wa_ids:
                wa_ids.append(data["messageId"])
    targets = _sent_by_ack(session_id, by_level)
    for ack in sorted(by_level, key=ACK_RANK.__getitem__):
        wa_ids = by_level[ack]
        for start in range(0, len(wa_ids), ID_CHUNK):
            chunk = wa_ids[start:start + ID_CHUNK]
            rows = {row.wa_message_id: row for row in db.session.execute(
                _ACK_TO[ack], {"in_session": session_id, "wa_ids": chunk})}
            for wa_id in chunk:  # in the order the engine reported them
                row = rows.get(wa_id)
                if row is not None:
                    targets += webhooks.emit(session_id, "message.ack", {
                        "id": row.id, "messageId": wa_id, "chatId": row.chat_id, "ack": ack})
    return targets


_MEDIA = MediaSchema()


def sent_media(media: dict[str, Any] | None, caption: str | None) -> dict[str, Any]:
    """What ``message.sent`` adds for a media send (issue 12): its ``caption`` and the
    ``media`` object the history shows (``{mimetype, filename, size, url}``; the stored
    file's key stays private). Nothing for a message without media."""
    if not media:
        return {}
    return {"caption": caption, "media": _MEDIA.dump(media)}


# `session_id + ""`: only the unique index on `id` can serve it. With the plain column a
# planner without statistics (a young table, or PostgreSQL without autovacuum) took the
# session's index and read every message of the session for each batch of acks: a cost
# that grew with the history, on the session host's main thread (scale, issue 18).
_UNSETTLED_ACKED = select(
    Message.id, Message.chat_id, Message.type, Message.body, Message.timestamp, Message.caption,
    Message.media).where(
    Message.session_id + "" == bindparam("in_session"),
    Message.id.in_(bindparam("ids", expanding=True)),
    Message.from_me.is_(True), Message.status.in_((MessageStatus.PENDING, MessageStatus.SENDING)))


def _sent_by_ack(session_id: str, by_level: dict[str, list[str]]) -> list[str]:
    """An ack proves a send went out: a send still ``pending``/``sending`` here (its host
    died before recording it, and the network handed the acks to the host that took the
    session over) is recorded as sent first (message.sent), so its acks apply and are not
    lost. Our sends carry our id: WhatsApp ids ``true_<chat>_<our id>``."""
    ours: dict[str, str] = {}
    for wa_ids in by_level.values():
        for wa_id in wa_ids:
            if wa_id.startswith("true_"):
                ours.setdefault(wa_id.rsplit("_", 1)[1], wa_id)
    targets: list[str] = []
    if not ours:
        return targets
    ids = list(ours)
    for start in range(0, len(ids), ID_CHUNK):
        chunk = {"in_session": session_id, "ids": ids[start:start + ID_CHUNK]}
        for row in db.session.execute(_UNSETTLED_ACKED, chunk):
            wa_id = ours[row.id]
            db.session.execute(update(Message).where(Message.id == row.id)
                               .values(status=MessageStatus.SENT, wa_message_id=wa_id)
                               .execution_options(synchronize_session=False))
            targets += webhooks.emit(session_id, "message.sent", {
                "id": row.id, "messageId": wa_id, "chatId": row.chat_id, "type": row.type,
                "body": row.body, "timestamp": row.timestamp, **sent_media(row.media, row.caption)})
    return targets


_HANDLERS: dict[EventKind, Any] = {
    EventKind.STATE: _state,
    EventKind.QR: _qr,
    EventKind.AUTHENTICATED: _authenticated,
    EventKind.READY: _ready,
    # -- message actions (issue 13.1): stored on the message they change
    EventKind.REVOKED: message_events.revoked,
    EventKind.REACTION: message_events.reaction,
    EventKind.EDITED: message_events.edited,
    EventKind.POLL_VOTE: message_events.poll_vote,
}
# Kinds whose runs (consecutive events of that kind) are applied together.
_RUNS: dict[EventKind, Any] = {EventKind.MESSAGE: _messages, EventKind.ACK: _acks}


# -- chats, contacts, groups (issue 13.4): group, presence and call events -------------------
def _group_event(name: str) -> Any:
    def handler(session_id: str, data: dict[str, Any]) -> list[str]:
        # chatId too, so that a webhook's chatId / isGroup filters apply to group events.
        return webhooks.emit(session_id, name, {**data, "chatId": data.get("groupId")})
    return handler


def _presence(session_id: str, data: dict[str, Any]) -> list[str]:
    return webhooks.emit(session_id, "presence.update", {
        "chatId": data.get("chatId"), "from": data.get("from"), "state": data.get("state")})


def _call(session_id: str, data: dict[str, Any]) -> list[str]:
    return webhooks.emit(session_id, "call.received", {
        "callId": data.get("callId"), "chatId": data.get("from"), "from": data.get("from"),
        "isVideo": bool(data.get("isVideo")), "isGroup": bool(data.get("isGroup")),
        "timestamp": data.get("timestamp")})


_HANDLERS.update({
    EventKind.GROUP_JOIN: _group_event("group.join"),
    EventKind.GROUP_LEAVE: _group_event("group.leave"),
    EventKind.GROUP_UPDATE: _group_event("group.update"),
    EventKind.PRESENCE: _presence,
    EventKind.CALL: _call,
})


# -- media (issue 12) ----------------------------------------------------------------------------
def _store_media(session_id: str, row_id: str, raw: Any) -> Any:
    from app.services.media.incoming import store_incoming
    value, _ = store_incoming(session_id, row_id, raw)
    return value


def _attach_media(new: list[Message]) -> None:
    from app.services import media
    db.session.flush()  # the messages first: their references point at them
    for message in new:
        sha256 = (message.media or {}).get("sha256")
        if sha256:
            media.attach(message.id, message.session_id, sha256)
