"""Message actions (issue 13.1): the new kinds of send, and the actions that are not sends.

Sends (location, contact, poll, reply, forward) are built here into a payload and go through
the one send lifecycle, :func:`app.services.messages.send` (each kind has its line in
``SENDERS``). The other actions (react, delete, edit, star, unstar, pin, unpin) have this
lifecycle of their own, the same shape as a send's:

- API side, :func:`act`: a ``message_actions`` row is committed ``pending`` (with its
  ``Idempotency-Key``) before its task goes on the session's own queue, so per-session order
  holds with the sends around it; the API then waits up to SEND_WAIT_TIMEOUT for the host's
  answer: 200 ``{success: true}``, 202 ``{id, status: "pending"}`` when none came in time,
  or the engine's error (replies.py). A retry with the same key answers the first outcome.
- Host side, :func:`perform`: the engine carries the action out; the stored message is then
  changed (app/services/message_events.py) and the change reported as its webhook event in
  the same transaction. A row already ``done`` or ``failed`` answers its outcome again.
"""
from __future__ import annotations

import hashlib
import json
import logging
import secrets
from datetime import timedelta
from typing import Any, Callable, cast

import vobject
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from app import logs
from app.common.names import Tasks, session_queue
from app.config import Config, settings
from app.errors import ApiError, Conflict, SessionNotReady
from app.extensions import db
from app.models import (
    RUNNING,
    ApiKey,
    IdempotencyKey,
    Message,
    MessageAction,
    Session,
    SessionStatus,
    utcnow,
)
from app.models.base import affected_rows
from app.models.message_action import ACTION_DONE, ACTION_FAILED, ACTION_PENDING
from app.services import dispatch, message_events, messages
from app.services.events import commit_and_publish
from app.services.replies import engine_failure, fail, ok
from engines import Engine, EngineError, EngineNotReady, EngineState

ACTION_TASK = Tasks.MESSAGE_ACTION
log = logging.getLogger(__name__)


# -- the new kinds of send ----------------------------------------------------------------------
def vcard(name: str, number: str) -> str:
    """A vCard 3.0 for one contact, with WhatsApp's ``waid`` on its phone number."""
    digits = number.split("@", 1)[0]
    card = vobject.vCard()
    card.add("fn").value = name
    card.add("n").value = vobject.vcard.Name(given=name)
    tel = card.add("tel")
    tel.value = f"+{digits}"
    tel.type_param = "CELL"
    tel.params["WAID"] = [digits]
    return cast(str, card.serialize())


def _source_id(session: Session, chat_id: str, message_id: str) -> tuple[str, Message | None]:
    """The WhatsApp id of the message an action names (our id or WhatsApp's), and its row."""
    found = message_events.find(session.id, message_id)
    if found is not None and found.wa_message_id:
        return found.wa_message_id, found
    if found is not None and found.from_me:
        # Ours, not sent yet: the engines send it under our id, so its WhatsApp id is known
        # now, and the session's queue carries the action after the send.
        return f"true_{found.chat_id}_{found.id}", found
    return message_id, found


def send_payload(session: Session, kind: str, data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The message type and the payload :func:`messages.send` stores for one of the new sends."""
    chat = data["chat_id"]
    if kind == "reply":
        return "text", {"chat_id": chat, "text": data["text"],
                        "quoted_message_id": _source_id(session, chat, data["quoted_message_id"])[0],
                        "mentions": data.get("mentions"), "link_preview": data.get("link_preview")}
    if kind == "location":
        content = {key: data[key] for key in ("latitude", "longitude", "description", "address")
                   if data.get(key) is not None}
        return "location", {"chat_id": chat, "text": data.get("description"), "content": content}
    if kind == "contact":
        number = data["contact_number"].split("@", 1)[0]
        content = {"contactName": data["contact_name"], "contactNumber": number,
                   "vcard": vcard(data["contact_name"], number)}
        return "contact", {"chat_id": chat, "text": data["contact_name"], "content": content}
    if kind == "poll":
        content = {"name": data["name"], "options": list(data["options"]),
                   "multipleAnswers": bool(data.get("multiple_answers")), "votes": {}}
        return "poll", {"chat_id": chat, "text": data["name"], "content": content}
    if kind == "forward":
        wa_id, source = _source_id(session, data["from_chat_id"], data["message_id"])
        content = {"fromChatId": data["from_chat_id"], "messageId": wa_id}
        return "forward", {"chat_id": chat, "text": source.body if source is not None else None,
                           "content": content}
    raise ValueError(f"unknown send kind {kind!r}")


def send(session: Session, key: ApiKey, kind: str, data: dict[str, Any],
         idempotency_key: str | None) -> tuple[dict[str, Any], int]:
    message_type, payload = send_payload(session, kind, data)
    return messages.send(session, key, message_type, payload, idempotency_key)


# -- the actions that are not sends: API side ---------------------------------------------------
def _hash(session: Session, action: str, data: dict[str, Any]) -> str:
    canonical = json.dumps({"session": session.id, "action": action, **data}, sort_keys=True,
                           default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def task_id(action_id: str) -> str:
    return f"action-{action_id}"


def act(session: Session, key: ApiKey, action: str, data: dict[str, Any],
        idempotency_key: str | None) -> tuple[dict[str, Any], int]:
    """Carry ``action`` out on the session's engine, through its queue (see the module doc)."""
    cfg: Config = settings()
    request_hash = _hash(session, action, data)
    if idempotency_key:
        existing = _find_idempotent(key, idempotency_key)
        if existing is not None:
            return _replay(existing, request_hash, cfg)
        if db.session.scalar(select(IdempotencyKey.id).where(
                IdempotencyKey.api_key_id == key.id, IdempotencyKey.key == idempotency_key)):
            raise Conflict("Idempotency-Key was already used for a different request",
                           code="IDEMPOTENCY_KEY_REUSED")
    if session.status != SessionStatus.READY:
        raise SessionNotReady(f"Session '{session.name}' is not ready (status {session.status})")
    target, _ = _source_id(session, data["chat_id"], data["message_id"])
    args = {k: v for k, v in data.items() if k not in ("chat_id", "message_id")}
    row = MessageAction(id="ACT" + secrets.token_hex(12).upper(), session_id=session.id,
                        action=action, chat_id=data["chat_id"], target=target, args=args,
                        status=ACTION_PENDING, api_key_id=key.id if idempotency_key else None,
                        idempotency_key=idempotency_key,
                        request_hash=request_hash if idempotency_key else None)
    action_id = row.id
    db.session.add(row)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()  # a concurrent retry with the same key won: answer as it will
        existing = _find_idempotent(key, idempotency_key or "")
        if existing is None:
            raise
        return _replay(existing, request_hash, cfg)
    try:
        dispatch.send(ACTION_TASK, [action_id], session.queue, task_id=task_id(action_id))
    except ApiError:
        # The client is told 503: the action must not happen later behind its back.
        db.session.query(MessageAction).filter(MessageAction.id == action_id).delete()
        db.session.commit()
        raise
    return _wait(action_id, cfg)


def _find_idempotent(key: ApiKey, idempotency_key: str) -> MessageAction | None:
    return db.session.scalar(select(MessageAction).where(
        MessageAction.api_key_id == key.id, MessageAction.idempotency_key == idempotency_key))


def _replay(existing: MessageAction, request_hash: str, cfg: Config) -> tuple[dict[str, Any], int]:
    if existing.request_hash != request_hash:
        raise Conflict("Idempotency-Key was already used for a different request",
                       code="IDEMPOTENCY_KEY_REUSED")
    if existing.status == ACTION_DONE:
        return {"success": True}, 200
    if existing.status == ACTION_FAILED:
        dispatch.unwrap(fail(existing.error_code or "ENGINE_ERROR", existing.error or "failed"))
    return _wait(existing.id, cfg)


def _wait(action_id: str, cfg: Config) -> tuple[dict[str, Any], int]:
    reply = dispatch.wait(dispatch.result_of(task_id(action_id)), cfg.send_wait_timeout)
    if reply is None:
        return {"id": action_id, "status": ACTION_PENDING}, 202
    dispatch.unwrap(reply)
    return {"success": True}, 200


# -- the actions that are not sends: on the session host ----------------------------------------
#: How each action is handed to an engine: (engine, chat, WhatsApp id of the target, args).
ACTIONS: dict[str, Callable[[Engine, str, str, dict[str, Any]], None]] = {
    "react": lambda engine, chat, target, args: engine.react(chat, target, args["emoji"]),
    "delete": lambda engine, chat, target, args: engine.delete_message(
        chat, target, bool(args.get("for_everyone"))),
    "edit": lambda engine, chat, target, args: engine.edit_message(chat, target, args["text"]),
    "star": lambda engine, chat, target, args: engine.star_message(chat, target, True),
    "unstar": lambda engine, chat, target, args: engine.star_message(chat, target, False),
    "pin": lambda engine, chat, target, args: engine.pin_message(
        chat, target, True, int(args["duration_seconds"])),
    "unpin": lambda engine, chat, target, args: engine.pin_message(chat, target, False, None),
}


def _stored_change(row: MessageAction, me: str | None) -> list[str]:
    """Record on the stored message what the engine just did; the webhook targets."""
    data: dict[str, Any] = {"messageId": row.target, "chatId": row.chat_id, "from": me}
    args = row.args or {}
    if row.action == "react":
        return message_events.reaction(row.session_id, {**data, "emoji": args["emoji"]})
    if row.action == "delete":
        if args.get("for_everyone"):
            return message_events.revoked(row.session_id, data)
        return message_events.deleted_for_me(row.session_id, data)
    if row.action == "edit":
        return message_events.edited(row.session_id, {**data, "body": args["text"]})
    if row.action in ("star", "unstar"):
        return message_events.starred(row.session_id, {**data, "star": row.action == "star"})
    return message_events.pinned(row.session_id, {
        **data, "pin": row.action == "pin", "durationSeconds": args.get("duration_seconds")})


def perform(action_id: str, engine_of: Callable[[str], Engine | None]) -> dict[str, Any]:
    """Carry a committed action out and record it; idempotent (a settled row answers its
    outcome again). Raises :class:`messages.NotHeld` when this host does not hold the session."""
    row = db.session.get(MessageAction, action_id)
    if row is None:
        return fail("NOT_FOUND", f"Action '{action_id}' not found")
    logs.session_id.set(row.session_id)
    if row.status == ACTION_DONE:
        return ok({"success": True})
    if row.status == ACTION_FAILED:
        return fail(row.error_code or "ENGINE_ERROR", row.error or "failed")
    engine = engine_of(row.session_id)
    if engine is None:
        raise messages.NotHeld(f"session {row.session_id} is not held here")
    try:
        if engine.state is not EngineState.READY:
            raise EngineNotReady("Session is not ready")
        ACTIONS[row.action](engine, row.chat_id, row.target, row.args or {})
    except EngineError as error:
        reply = engine_failure(error)
        row.status, row.error_code, row.error = ACTION_FAILED, reply["code"], reply["error"][:2000]
        db.session.commit()
        log.warning("%s of %s failed: %s", row.action, row.target, reply["error"])
        return reply
    phone = db.session.scalar(select(Session.phone).where(Session.id == row.session_id))
    targets = _stored_change(row, f"{phone}@c.us" if phone else None)
    row.status = ACTION_DONE
    commit_and_publish(targets)
    return ok({"success": True})


# -- sweeps (beat) ------------------------------------------------------------------------------
def resend_stale(cfg: Config) -> int:
    """Re-enqueue actions committed but still ``pending`` after SEND_SWEEP_AFTER (their broker
    message was lost), for sessions a live host drives; a redelivery of one that was carried
    out meanwhile only answers its outcome again."""
    cutoff = utcnow() - timedelta(seconds=cfg.send_sweep_after)
    stale = db.session.execute(
        select(MessageAction.id, Session.id)
        .join(Session, Session.id == MessageAction.session_id)
        .where(MessageAction.status == ACTION_PENDING, MessageAction.updated_at < cutoff,
               Session.desired_state == RUNNING, Session.lease_expires_at > utcnow())
        .order_by(MessageAction.created_at).limit(1000)).all()
    for action_id, session_id in stale:
        dispatch.send(ACTION_TASK, [action_id], session_queue(session_id),
                      task_id=task_id(action_id))
        db.session.execute(update(MessageAction).where(MessageAction.id == action_id)
                           .values(updated_at=utcnow()).execution_options(synchronize_session=False))
    db.session.commit()
    return len(stale)


def prune(older_than: timedelta = timedelta(days=1)) -> int:
    """Forget settled actions (and so their Idempotency-Keys) after a day, as send keys are."""
    gone = db.session.execute(delete(MessageAction).where(
        MessageAction.status != ACTION_PENDING, MessageAction.created_at < utcnow() - older_than))
    return affected_rows(gone)
