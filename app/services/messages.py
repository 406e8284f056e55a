"""Sending and reading messages.

A send is committed as ``pending`` before it is enqueued on the session's own queue, so
nothing the API accepted is lost with the broker; the API then waits up to
SEND_WAIT_TIMEOUT for the host's answer.

Order per session: before the host sends a message it settles the session's older sends
that are still ``pending`` or ``sending`` (a killed host or API worker left them behind),
oldest first, asking the engine before sending any of them again (:func:`settle_older`).
"""
from __future__ import annotations

import hashlib
import json
import secrets
import time
from datetime import timedelta
from typing import Any

from flask import current_app
from sqlalchemy import bindparam
from sqlalchemy import delete as sql_delete
from sqlalchemy import func, insert, or_, select, tuple_, update
from sqlalchemy.exc import IntegrityError

from app.config import Config
from app.errors import ApiError, Conflict, NotFound, SessionNotReady
from app.extensions import db
from app.models import RUNNING, ApiKey, IdempotencyKey, Message, MessageCount, Session, utcnow
from app.services import dispatch, webhooks
from app.services.events import commit_and_publish
from engines import Engine, EngineCrashed, EngineError, EngineNotReady, EngineUnsupported

SEND_TEXT_TASK = "tasks.sessions.send_message"
HISTORY_MAX = 100
FINAL_SENT = ("sent", "delivered", "read")


_INSERT_MESSAGE = insert(Message.__table__)


def new_message_id() -> str:
    """Our own id, WhatsApp-Web-like, handed to the engine so a resend can be detected."""
    return "3EB0" + secrets.token_hex(10).upper()


def send_task_id(message_id: str) -> str:
    return f"send-{message_id}"


# The send path's statements, built once: building a statement costs more CPU than
# running it (make bench), and a send runs these on every message.
_SENDING = (update(Message).where(Message.id == bindparam("message_id")).values(status="sending")
            .execution_options(synchronize_session=False))
_SENT = (update(Message)
         .where(Message.id == bindparam("message_id"), Message.status.not_in(FINAL_SENT))
         .values(wa_message_id=bindparam("wa_id"), timestamp=bindparam("sent_at"), status="sent")
         .execution_options(synchronize_session=False))
# A session's own sends still unsettled between two sequence numbers. Between two sends of
# one host that is a short primary-key range: the session test is written so that no index
# can serve it (SQLite otherwise walked the session's whole history on every send: 18 ms at
# 50k messages). The first send after a takeover looks at the whole session, by its index.
_UNSETTLED_COLUMNS = (Message.id, Message.seq, Message.status, Message.chat_id, Message.type,
                      Message.body, Message.quoted_message_id, Message.mentions)
_UNSETTLED_STATUS = (Message.from_me.is_(True), Message.status.in_(("pending", "sending")))
_UNSETTLED_SINCE = (select(*_UNSETTLED_COLUMNS)
                    .where(Message.seq > bindparam("after"), Message.seq < bindparam("before"),
                           Message.session_id + "" == bindparam("in_session"), *_UNSETTLED_STATUS)
                    .order_by(Message.seq))
_UNSETTLED_ALL = (select(*_UNSETTLED_COLUMNS)
                  .where(Message.session_id == bindparam("in_session"),
                         Message.seq < bindparam("before"), *_UNSETTLED_STATUS)
                  .order_by(Message.seq))


def mark_sending(message_id: str) -> None:
    """Committed before the engine is asked: a redelivery then asks the engine first."""
    db.session.execute(_SENDING, {"message_id": message_id})
    db.session.commit()


def mark_sent(message_id: str, session_id: str, chat_id: str, kind: str, body: str | None,
              wa_id: str, timestamp: int) -> None:
    """Record the engine's id; report message.sent once (not again on a redelivery)."""
    changed = db.session.execute(_SENT, {"message_id": message_id, "wa_id": wa_id,
                                         "sent_at": timestamp}).rowcount  # type: ignore[attr-defined]
    targets: list[str] = []
    if changed:
        targets = webhooks.emit(session_id, "message.sent", {
            "id": message_id, "messageId": wa_id, "chatId": chat_id,
            "type": kind, "body": body, "timestamp": timestamp})
    commit_and_publish(targets)


def mark_failed(message_id: str, session_id: str, chat_id: str, reason: str) -> None:
    """The engine refused the send: ``failed``, reported once as message.failed."""
    db.session.execute(update(Message).where(Message.id == message_id)
                       .values(status="failed", error=reason)
                       .execution_options(synchronize_session=False))
    commit_and_publish(webhooks.emit(session_id, "message.failed", {
        "id": message_id, "chatId": chat_id, "error": reason}))


def settle_older(engine: Engine, session_id: str, before: int, after: int = 0) -> int:
    """Settle the session's sends older than sequence number ``before`` (and newer than
    ``after``, below which the caller has settled already) that are still ``pending`` or
    ``sending``: oldest first, each ``sending`` one looked up in the engine (``find_sent``),
    and sent only if it did not go out. Called before every send, so a message left behind by a killed host
    or API worker goes out before any newer one of its session, never after it.

    Returns how many were settled. An engine that is not ready or crashed raises (the newer
    message must not go out either); a send the engine refuses marks that message failed.
    """
    if after > 0:
        rows = db.session.execute(_UNSETTLED_SINCE, {"in_session": session_id, "after": after,
                                                     "before": before}).all()
    else:
        rows = db.session.execute(_UNSETTLED_ALL, {"in_session": session_id,
                                                   "before": before}).all()
    for row in rows:
        sent = None
        if row.status == "sending":  # `pending` never reached the engine: nothing to ask
            try:
                sent = engine.find_sent(row.chat_id, row.id)
            except EngineUnsupported:
                pass
        if sent is None:
            mark_sending(row.id)
            try:
                sent = engine.send_text(row.chat_id, row.body or "", message_id=row.id,
                                        quoted_message_id=row.quoted_message_id,
                                        mentions=row.mentions)
            except (EngineNotReady, EngineCrashed):
                raise
            except EngineError as error:
                mark_failed(row.id, session_id, row.chat_id, str(error) or type(error).__name__)
                continue
        mark_sent(row.id, session_id, row.chat_id, row.type, row.body, sent.message_id,
                  sent.timestamp)
    return len(rows)


def _request_hash(session: Session, payload: dict[str, Any]) -> str:
    canonical = json.dumps({"session": session.id, **payload}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _sent_reply(message: Message) -> tuple[dict[str, Any], int]:
    return {"messageId": message.wa_message_id, "timestamp": message.timestamp}, 201


def _reply_for(message: Message, cfg: Config) -> tuple[dict[str, Any], int]:
    """Wait for the send's outcome and answer 201, 202 or the engine's error."""
    if message.status in FINAL_SENT:
        return _sent_reply(message)
    if message.status == "failed":
        raise ApiError(message.error or "Send failed", status=502, code="SEND_FAILED")
    return _wait_reply(message.id, cfg)


def _wait_reply(message_id: str, cfg: Config) -> tuple[dict[str, Any], int]:
    reply = dispatch.wait(dispatch.result_of(send_task_id(message_id)), cfg.send_wait_timeout)
    if reply is None:
        return {"id": message_id, "status": "pending"}, 202
    result = dispatch.unwrap(reply)
    return {"messageId": result["messageId"], "timestamp": result["timestamp"]}, 201


def send(session: Session, key: ApiKey, kind: str, payload: dict[str, Any],
         idempotency_key: str | None) -> tuple[dict[str, Any], int]:
    cfg: Config = current_app.config["OPENWA"]
    if idempotency_key:
        existing = _find_idempotent(key, idempotency_key)
        if existing is not None:
            return _replay(existing, session, payload, cfg)
    if session.status != "ready":
        raise SessionNotReady(f"Session '{session.name}' is not ready (status {session.status})")
    message_id, queue = new_message_id(), session.queue
    # Core, not the unit of work: a send is the hottest write there is (make bench).
    db.session.connection().execute(_INSERT_MESSAGE, {
        "id": message_id, "session_id": session.id, "chat_id": payload["chat_id"],
        "recipient": payload["chat_id"], "sender": f"{session.phone}@c.us" if session.phone else None,
        "from_me": True, "type": kind, "body": payload.get("text"),
        "quoted_message_id": payload.get("quoted_message_id"), "mentions": payload.get("mentions"),
        "status": "pending", "timestamp": int(time.time())})
    if idempotency_key:
        db.session.add(IdempotencyKey(api_key_id=key.id, key=idempotency_key,
                                      request_hash=_request_hash(session, payload),
                                      session_id=session.id, message_id=message_id))
    try:
        db.session.commit()
    except IntegrityError:
        # A concurrent retry with the same key won the insert: answer as it will.
        db.session.rollback()
        existing = _find_idempotent(key, idempotency_key or "")
        if existing is None:
            raise
        return _replay(existing, session, payload, cfg)
    try:
        dispatch.send(SEND_TEXT_TASK, [message_id], queue, task_id=send_task_id(message_id))
    except ApiError:
        # The client is told 503, so the message must not be sent later behind its back.
        db.session.execute(sql_delete(IdempotencyKey).where(IdempotencyKey.message_id == message_id))
        db.session.execute(sql_delete(Message).where(Message.id == message_id))
        db.session.commit()
        raise
    return _wait_reply(message_id, cfg)


def resend_stale(cfg: Config) -> int:
    """Re-enqueue sends that were committed but are still not sent after SEND_SWEEP_AFTER
    (their broker message was lost: Redis restarted empty, a queue was purged...).

    Only for sessions a live host drives; a redelivery is harmless because the send task
    is idempotent (a `sending` message first asks the engine whether it went out).
    """
    cutoff = utcnow() - timedelta(seconds=cfg.send_sweep_after)
    stale = db.session.execute(
        select(Message.id, Session.id)
        .join(Session, Session.id == Message.session_id)
        .where(Message.status.in_(("pending", "sending")), Message.from_me.is_(True),
               Message.updated_at < cutoff, Session.desired_state == RUNNING,
               Session.lease_expires_at > utcnow())
        .order_by(Message.seq).limit(1000)).all()
    for message_id, session_id in stale:
        dispatch.send(SEND_TEXT_TASK, [message_id], f"session.{session_id}",
                      task_id=send_task_id(message_id))
        db.session.execute(update(Message).where(Message.id == message_id)
                           .values(updated_at=utcnow()).execution_options(synchronize_session=False))
    db.session.commit()
    return len(stale)


def _find_idempotent(key: ApiKey, idempotency_key: str) -> IdempotencyKey | None:
    return db.session.scalar(select(IdempotencyKey).where(
        IdempotencyKey.api_key_id == key.id, IdempotencyKey.key == idempotency_key))


def _replay(existing: IdempotencyKey, session: Session, payload: dict[str, Any],
            cfg: Config) -> tuple[dict[str, Any], int]:
    if existing.request_hash != _request_hash(session, payload):
        raise Conflict("Idempotency-Key was already used for a different request",
                       code="IDEMPOTENCY_KEY_REUSED")
    message = db.session.scalar(select(Message).where(Message.id == existing.message_id))
    if message is None:
        raise NotFound("The message of this Idempotency-Key no longer exists")
    return _reply_for(message, cfg)


def get_message(session: Session, message_id: str) -> Message:
    message = db.session.scalar(select(Message).where(
        Message.session_id == session.id,
        or_(Message.id == message_id, Message.wa_message_id == message_id)))
    if message is None:
        raise NotFound(f"Message '{message_id}' not found")
    return message


def history(session: Session, args: dict[str, Any]) -> tuple[list[Message], int]:
    """Newest first; filters, limit/offset, and a keyset cursor ``after``."""
    conditions = [Message.session_id == session.id]
    if args.get("chat_id"):
        conditions.append(Message.chat_id == args["chat_id"])
    if args.get("direction"):
        conditions.append(Message.from_me.is_(args["direction"] == "outgoing"))
    if args.get("type"):
        conditions.append(Message.type == args["type"])
    if args.get("since") is not None:
        conditions.append(Message.timestamp >= args["since"] // 1000)
    if args.get("until") is not None:
        conditions.append(Message.timestamp <= args["until"] // 1000)
    total = _total(session, args, conditions)
    query = select(Message).where(*conditions)
    if args.get("after"):
        anchor = get_message(session, args["after"])
        # A row comparison, not (a < x OR a = x AND b < y): PostgreSQL turns it into one
        # index range scan; the OR form scanned half the session at 1M messages (make bench).
        query = query.where(tuple_(Message.timestamp, Message.seq) < tuple_(anchor.timestamp, anchor.seq))
    query = (query.order_by(Message.timestamp.desc(), Message.seq.desc())
             .limit(min(args.get("limit") or 50, HISTORY_MAX)).offset(args.get("offset") or 0))
    return list(db.session.scalars(query)), total


def _total(session: Session, args: dict[str, Any], conditions: list[Any]) -> int:
    """How many messages match. Filtered by chat and direction only (the usual history
    views), a sum over the trigger-kept ``message_counts`` rows: the same time at a million
    messages as at ten. Other filters count the matching rows."""
    if args.get("type") or args.get("since") is not None or args.get("until") is not None:
        return db.session.scalar(select(func.count()).select_from(Message).where(*conditions)) or 0
    query = select(func.coalesce(func.sum(MessageCount.n), 0)).where(MessageCount.session_id == session.id)
    if args.get("chat_id"):
        query = query.where(MessageCount.chat_id == args["chat_id"])
    if args.get("direction"):
        query = query.where(MessageCount.from_me.is_(args["direction"] == "outgoing"))
    return int(db.session.scalar(query) or 0)
