"""Sending and reading messages: the whole send lifecycle of every message type.

A send is committed as ``pending`` before it is enqueued on the session's own queue, so
nothing the API accepted is lost with the broker; the API then waits up to
SEND_WAIT_TIMEOUT for the host's answer (201 sent, 202 still pending). On the session
host, :func:`deliver` moves it pending -> sending -> sent (or failed), asking the engine
first (``find_sent``) when a redelivery finds it already ``sending``. The send task is a
thin entry point around :func:`deliver`; a new message type adds a line to ``SENDERS``.

Order per session: before the host sends a message it settles the session's older sends
that are still ``pending`` or ``sending`` (a killed host or API worker left them behind),
oldest first, asking the engine before sending any of them again (:func:`settle_older`).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import secrets
import time
from collections.abc import Iterator, MutableMapping, Sequence
from contextvars import ContextVar
from datetime import timedelta
from typing import Any, Callable, NamedTuple, cast

from sqlalchemy import Table, and_, bindparam
from sqlalchemy import delete as sql_delete
from sqlalchemy import func, insert, or_, select, tuple_, update
from sqlalchemy.exc import IntegrityError

from app import live, logs, metrics
from app.common.names import Tasks, session_queue
from app.config import Config, settings
from app.errors import ApiError, Conflict, NotFound, ServiceUnavailable, SessionNotReady
from app.extensions import db
from app.models import (
    FINAL_SENT,
    RUNNING,
    ApiKey,
    IdempotencyKey,
    Message,
    MessageAction,
    MessageCount,
    MessageStatus,
    Session,
    SessionStatus,
    utcnow,
)
from app.models.base import affected_rows
from app.services import dispatch, doorbell, webhooks
from app.services.events import commit_and_publish, sent_media
from app.services.replies import engine_failure, fail, ok
from engines import (
    Engine,
    EngineCrashed,
    EngineError,
    EngineNotReady,
    EngineState,
    EngineUnsupported,
    SentMessage,
)

SEND_TEXT_TASK = Tasks.SEND_MESSAGE
HISTORY_MAX = 100

log = logging.getLogger(__name__)


_INSERT_MESSAGE = insert(cast(Table, Message.__table__))


def new_message_id() -> str:
    """Our own id, WhatsApp-Web-like, handed to the engine so a resend can be detected."""
    return "3EB0" + secrets.token_hex(10).upper()


def send_task_id(message_id: str) -> str:
    return f"send-{message_id}"


def _request_hash(session: Session, payload: dict[str, Any]) -> str:
    canonical = json.dumps({"session": session.id, **payload}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _sent_reply(message: Message) -> tuple[dict[str, Any], int]:
    return {"messageId": message.wa_message_id, "timestamp": message.timestamp}, 201


def _reply_for(message: Message, cfg: Config) -> tuple[dict[str, Any], int]:
    """Wait for the send's outcome and answer 201, 202 or the engine's error."""
    if message.status in FINAL_SENT:
        return _sent_reply(message)
    if message.status == MessageStatus.FAILED:
        raise ApiError(message.error or "Send failed", status=502, code="SEND_FAILED")
    return _wait_reply(message.id, cfg)


def _wait_reply(message_id: str, cfg: Config, rang: bool = False) -> tuple[dict[str, Any], int]:
    """Wait for the send's reply: on its reply list when this request rang for it (see
    :func:`ring`), else on its task's result (an Idempotency-Key retry)."""
    if rang:
        try:
            reply = doorbell.wait_answer(send_task_id(message_id), cfg.send_wait_timeout)
        except dispatch.BROKER_ERRORS as error:
            log.warning("result store unavailable while waiting: %s", type(error).__name__)
            reply = None
    else:
        reply = dispatch.wait(dispatch.result_of(send_task_id(message_id)), cfg.send_wait_timeout)
    if reply is None:
        return {"id": message_id, "status": MessageStatus.PENDING.value}, 202
    result = dispatch.unwrap(reply)
    return {"messageId": result["messageId"], "timestamp": result["timestamp"]}, 201


def send(session: Session, key: ApiKey, kind: str, payload: dict[str, Any],
         idempotency_key: str | None) -> tuple[dict[str, Any], int]:
    cfg: Config = settings()
    if idempotency_key:
        existing = _find_idempotent(key, idempotency_key)
        if existing is not None:
            return _replay(existing, session, payload, cfg)
        _refuse_action_key(key, idempotency_key)  # message actions (issue 13.1)
    if session.status != SessionStatus.READY:
        raise SessionNotReady(f"Session '{session.name}' is not ready (status {session.status})")
    message_id = new_message_id()
    stage(session, message_id, kind, payload)
    return commit_ring_and_wait(session, key, message_id, payload, idempotency_key, cfg)


def commit_ring_and_wait(session: Session, key: ApiKey, message_id: str, payload: dict[str, Any],
                         idempotency_key: str | None, cfg: Config) -> tuple[dict[str, Any], int]:
    """Commit the staged send, ring its session's doorbell and wait for the reply on its
    reply list (or answer as the concurrent request that won its Idempotency-Key)."""
    # Read before the commit expires the row: after it, `session.id` is a SELECT and a
    # transaction left open until the request ends (make bench-profile: as dear as the insert).
    session_id = session.id
    replay = commit_and_enqueue(
        session, key, message_id, payload, idempotency_key, cfg,
        lambda: ring(session_id, message_id, session_queue(session_id)))
    if replay is not None:
        return replay
    return _wait_reply(message_id, cfg, rang=True)


def stage(session: Session, message_id: str, kind: str, payload: dict[str, Any],
          status: MessageStatus = MessageStatus.PENDING, **columns: Any) -> None:
    """Insert an outgoing message of ``kind`` in the current transaction (not committed):
    its chat, text, quote, mentions and details from ``payload``; ``columns`` add or
    override columns (a media send's ``media`` and ``caption``). Every send path builds its
    row here (send-text and the other kinds, media, bulk items)."""
    # Core, not the unit of work: a send is the hottest write there is (make bench).
    db.session.connection().execute(_INSERT_MESSAGE, {
        "id": message_id, "session_id": session.id, "chat_id": payload["chat_id"],
        "recipient": payload["chat_id"], "sender": f"{session.phone}@c.us" if session.phone else None,
        "from_me": True, "type": kind, "body": payload.get("text"),
        "quoted_message_id": payload.get("quoted_message_id"), "mentions": payload.get("mentions"),
        "status": status, "timestamp": int(time.time()),
        "content": content_of(payload), **columns})


def commit_and_enqueue(session: Session, key: ApiKey, message_id: str, payload: dict[str, Any],
                       idempotency_key: str | None, cfg: Config,
                       enqueue: Callable[[], None]) -> tuple[dict[str, Any], int] | None:
    """Commit the staged message (with its Idempotency-Key), then ``enqueue`` its first task.
    Answers the first request's reply when a concurrent retry with the same key won, else
    None. When the broker refuses (503 to the client) the message and its key are deleted,
    so it is never sent later behind the client's back."""
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
        enqueue()
    except ApiError:
        db.session.execute(sql_delete(IdempotencyKey).where(IdempotencyKey.message_id == message_id))
        db.session.execute(sql_delete(Message).where(Message.id == message_id))
        db.session.commit()
        raise
    return None


# -- scale (issue 18): the session queue as a doorbell (app/services/doorbell.py) -----------
def ring(session_id: str, message_id: str, queue: str) -> None:
    """Enqueue a committed send: the send task only when no task of the session is on its
    way to take it (the doorbell); a broker failure is 503 ``BROKER_UNAVAILABLE``.

    The request waits for the reply on the send's own reply list (``doorbell.wait_answer``),
    so the task is sent without subscribing to its Celery result: a subscription, a read of
    the result key and an unsubscription per send that the list does not need."""
    task_id = send_task_id(message_id)
    try:
        first = doorbell.ring(session_id, message_id)
    except (*dispatch.BROKER_ERRORS, RuntimeError) as error:
        # As dispatch.send: Redis down, or Celery's result store gave up reconnecting.
        if isinstance(error, RuntimeError) and not dispatch._result_store_gave_up(error):
            raise
        raise ServiceUnavailable("Message broker is unavailable", code="BROKER_UNAVAILABLE") from None
    if not first:
        return
    try:
        dispatch.send(SEND_TEXT_TASK, [message_id, session_id], queue, task_id=task_id,
                      ignore_result=True)
    except ApiError:
        try:
            doorbell.unring(session_id, message_id)
        except (*dispatch.BROKER_ERRORS, RuntimeError):
            pass  # Redis is down: the flag expires (RUNG_TTL), the row is deleted below
        raise
# -- end scale -------------------------------------------------------------------------------


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
        .where(Message.status.in_((MessageStatus.PENDING, MessageStatus.SENDING)), Message.from_me.is_(True),
               Message.updated_at < cutoff, Session.desired_state == RUNNING,
               Session.lease_expires_at > utcnow())
        .order_by(Message.seq).limit(1000)).all()
    for message_id, session_id in stale:
        dispatch.send(SEND_TEXT_TASK, [message_id], session_queue(session_id),
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


# -- the send, on the session host ---------------------------------------------------------------
class Outgoing(NamedTuple):
    """What a send needs of its row, read once (a commit expires the ORM row)."""

    id: str
    session_id: str
    chat_id: str
    type: str
    body: str | None
    quoted_message_id: str | None
    mentions: list[str] | None
    content: dict[str, Any] | None = None  # message actions (issue 13.1): Message.content
    # -- media (issue 12): what message.sent reports of a media send
    caption: str | None = None
    media: dict[str, Any] | None = None


#: How each message type is handed to an engine; a type without a line here is refused.
SENDERS: dict[str, Callable[[Engine, Outgoing], SentMessage]] = {
    "text": lambda engine, out: engine.send_text(
        out.chat_id, out.body or "", message_id=out.id, quoted_message_id=out.quoted_message_id,
        mentions=out.mentions, link_preview=bool((out.content or {}).get("linkPreview"))),
    # -- message actions (issue 13.1)
    "location": lambda engine, out: engine.send_location(
        out.chat_id, float(_c(out)["latitude"]), float(_c(out)["longitude"]), message_id=out.id,
        description=_c(out).get("description"), address=_c(out).get("address")),
    "contact": lambda engine, out: engine.send_contact(
        out.chat_id, str(_c(out)["contactName"]), str(_c(out)["contactNumber"]),
        str(_c(out)["vcard"]), message_id=out.id),
    "poll": lambda engine, out: engine.send_poll(
        out.chat_id, str(_c(out)["name"]), list(_c(out)["options"]),
        bool(_c(out).get("multipleAnswers")), message_id=out.id),
    "forward": lambda engine, out: engine.forward_message(
        out.chat_id, str(_c(out)["fromChatId"]), str(_c(out)["messageId"]), message_id=out.id),
}


class NotHeld(Exception):
    """The message's session is not driven by this host (a race with a stop or a handover):
    the task puts the send back on the queue for the holder."""


# The send path's statements, built once: building a statement costs more CPU than
# running it (make bench), and a send runs these on every message.
_LOAD = select(Message).where(Message.id == bindparam("message_id"))
_SENDING = (update(Message).where(Message.id == bindparam("message_id"))
            .values(status=MessageStatus.SENDING).execution_options(synchronize_session=False))
# A Core statement on the table (scale, issue 18): the ORM's bulk-update path costs more
# Python than the statement does in the database, on every send. It synchronized nothing
# before either (``synchronize_session=False``): nothing reads the row's object after it.
_MESSAGES = cast(Table, Message.__table__)
_SENT = (update(_MESSAGES)
         .where(_MESSAGES.c.id == bindparam("message_id"), _MESSAGES.c.status.not_in(FINAL_SENT))
         .values(wa_message_id=bindparam("wa_id"), timestamp=bindparam("sent_at"),
                 status=MessageStatus.SENT))
_FAILED = (update(Message).where(Message.id == bindparam("message_id"))
           .values(status=MessageStatus.FAILED, error=bindparam("reason"))
           .execution_options(synchronize_session=False))


def deliver(message_id: str, engine_of: Callable[[str], Engine | None],
            settled: MutableMapping[str, int] | None = None, *,
            row: Any = False, unsettled: list[Any] | None = None) -> dict[str, Any]:
    """Send a committed message through its session's engine (``engine_of(session_id)``,
    None when this host does not hold it: :class:`NotHeld`) and record the outcome.

    Idempotent: a message already sent answers its WhatsApp id again, a failed one its
    error, and one found ``sending`` (a redelivery after a crash) is looked up with the
    engine's ``find_sent`` before it is sent again. Answers a task reply (replies.py).

    Before it goes out, the session's older unsettled sends are settled (:func:`settle_older`).
    ``settled`` is the caller's memory, per session, of the sequence number settled up to
    (the session host keeps it), so between two sends the look-up is a short key range.
    A doorbell pass loads its rows in one query (:func:`pass_rows`): ``row`` is this
    message's (None: it has none) and ``unsettled`` the session's older unsettled sends, which
    :func:`settle_older` then takes from that list instead of querying.
    """
    message = (db.session.execute(_LOAD, {"message_id": message_id}).scalar_one_or_none()
               if row is False else row)
    if message is None:
        log.info("message %s is gone; nothing to send", message_id)
        return fail("NOT_FOUND", f"Message '{message_id}' not found")
    logs.session_id.set(message.session_id)
    if message.status in FINAL_SENT:
        return ok({"messageId": message.wa_message_id, "timestamp": message.timestamp})
    if message.status == MessageStatus.FAILED:
        return fail("ENGINE_ERROR", message.error or "Send failed")
    engine = engine_of(message.session_id)
    if engine is None:
        raise NotHeld(f"session {message.session_id} is not held here")
    out = Outgoing(message.id, message.session_id, message.chat_id, message.type, message.body,
                   message.quoted_message_id, message.mentions, message.content,
                   message.caption, message.media)
    seq = message.seq
    started = time.perf_counter()
    try:
        if engine.state is not EngineState.READY:
            raise EngineNotReady("Session is not ready")
        # Order per session: older sends a killed host or API worker left unsettled first.
        watermark = 0 if settled is None else settled.get(out.session_id, 0)
        settle_older(engine, out.session_id, seq, watermark, prefetched=unsettled)
        if settled is not None:
            settled[out.session_id] = max(watermark, seq)
        if message.status == MessageStatus.SENDING:
            try:
                found = engine.find_sent(out.chat_id, out.id)
            except EngineUnsupported:
                found = None
            if found is not None:
                return _mark_sent(out, found)
        sender = SENDERS.get(out.type)
        if sender is None:
            raise EngineUnsupported(f"cannot send a {out.type} message")
        _mark_sending(engine, out)
        sent = sender(engine, out)
    except EngineError as error:
        reason = str(error) or type(error).__name__
        _mark_failed(out, reason)
        metrics.messages_sent_total.labels(out.session_id, out.type, MessageStatus.FAILED).inc()
        log.warning("send of %s failed after %.3f s: %s", message_id,
                    time.perf_counter() - started, reason)
        return engine_failure(error)
    metrics.message_send_duration_seconds.labels(out.session_id, out.type).observe(
        time.perf_counter() - started)
    metrics.messages_sent_total.labels(out.session_id, out.type, MessageStatus.SENT).inc()
    return _mark_sent(out, sent)


def _mark_sending(engine: Engine, out: Outgoing) -> None:
    """``sending``, committed before the engine is called, so a redelivery after a crash
    asks the engine (``find_sent``) before sending again. Skipped (scale, issue 18) where
    the engine's send of this type is itself idempotent by our message id: the row stays
    ``pending`` until ``sent`` and a resend answers the first result, one commit less."""
    if out.type in engine.idempotent_sends:
        return
    db.session.execute(_SENDING, {"message_id": out.id})
    db.session.commit()


def _mark_failed(out: Outgoing, reason: str) -> None:
    """The engine refused the send: ``failed``, reported once as message.failed."""
    db.session.execute(_FAILED, {"message_id": out.id, "reason": reason})
    commit_and_publish(webhooks.emit(out.session_id, "message.failed", {
        "id": out.id, "chatId": out.chat_id, "error": reason}))


def _mark_sent(out: Outgoing, sent: SentMessage) -> dict[str, Any]:
    """Record the engine's id; report message.sent once (not again on a redelivery).
    Inside :func:`send_pass` the commit is the pass's, at its end."""
    changed = affected_rows(db.session.execute(_SENT, {
        "message_id": out.id, "wa_id": sent.message_id, "sent_at": sent.timestamp}))
    targets: list[str] = []
    if changed:
        targets = webhooks.emit(out.session_id, "message.sent", {
            "id": out.id, "messageId": sent.message_id, "chatId": out.chat_id,
            "type": out.type, "body": out.body, "timestamp": sent.timestamp,
            **sent_media(out.media, out.caption)})
    open_pass = _PASS.get()
    if open_pass is None:
        commit_and_publish(targets)
    else:
        open_pass.targets.extend(targets)
    return ok({"messageId": sent.message_id, "timestamp": sent.timestamp})


# -- scale (issue 18): one transaction per doorbell pass --------------------------------------
class SendPass:
    """What a pass has left to commit: the webhooks to kick after it, and whether the
    commit happened (only then may its sends' replies be handed to the API); then what it
    has to announce once the replies are out (:meth:`announce`)."""

    def __init__(self) -> None:
        self.targets: list[str] = []
        self.committed = False
        self.live_events: list[tuple[str, str, dict[str, Any]]] = []

    def commit(self) -> None:
        # The live events (message.sent) are held back from the commit's own publishing.
        self.live_events = live.hold_pending()
        db.session.commit()
        self.committed = True

    def announce(self) -> None:
        """Nudge the webhook workers and publish the live events of what the pass
        committed: called after the replies, as each is a broker round trip that an API
        request waiting for its send need not wait for (scale, issue 18). Both are already
        safe in the database: a lost nudge is the sweep's, a lost live frame only live."""
        if not self.committed:
            return
        if self.targets:
            webhooks.kick(self.targets)
        live.publish_held(self.live_events)


_PASS: ContextVar[SendPass | None] = ContextVar("openwa_send_pass", default=None)


@contextlib.contextmanager
def send_pass() -> Iterator[SendPass]:
    """Deliver several messages with one commit of their ``sent`` records (and webhook
    rows), at the end, instead of one each.

    Exactly once holds as it does between an engine call and its own commit: until the
    pass commits, each of its messages is still ``pending`` (a send the engine makes
    idempotent by our id) or ``sending`` (committed before the engine call, looked up with
    ``find_sent`` on a redelivery), so a host killed in the pass re-sends none of them.
    Order holds: each message's ``settle_older`` runs in the pass's transaction and sees
    the earlier ones as sent. The replies wait for the commit (``committed``): an API
    request never hears ``sent`` of a row that could still roll back; the webhook nudges and
    live events of the pass come after the replies (:meth:`SendPass.announce`, the
    caller's). A pass that raises still commits what it recorded, then re-raises."""
    state = SendPass()
    token = _PASS.set(state)
    try:
        yield state
    except Exception:
        _PASS.reset(token)
        try:
            state.commit()
        except Exception:  # noqa: BLE001 - the pass's own error is the one to raise
            db.session.rollback()
        raise
    except BaseException:  # the process is going away: nothing more is recorded
        _PASS.reset(token)
        raise
    _PASS.reset(token)
    state.commit()


_UNSETTLED_COLUMNS = (Message.id, Message.seq, Message.status, Message.chat_id, Message.type,
                      Message.body, Message.quoted_message_id, Message.mentions, Message.content,
                      Message.caption, Message.media)
_UNSETTLED_STATUS = (Message.from_me.is_(True),
                     Message.status.in_((MessageStatus.PENDING, MessageStatus.SENDING)))
# `session_id + ""` keeps the planner on the primary-key range between two sends (SQLite
# would otherwise walk the session's whole history through its index).
_UNSETTLED_SINCE = (select(*_UNSETTLED_COLUMNS)
                    .where(Message.seq > bindparam("after"), Message.seq < bindparam("before"),
                           Message.session_id + "" == bindparam("in_session"), *_UNSETTLED_STATUS)
                    .order_by(Message.seq))
_UNSETTLED_ALL = (select(*_UNSETTLED_COLUMNS)
                  .where(Message.session_id == bindparam("in_session"),
                         Message.seq < bindparam("before"), *_UNSETTLED_STATUS)
                  .order_by(Message.seq))


def settle_older(engine: Engine, session_id: str, before: int, after: int = 0, *,
                 prefetched: list[Any] | None = None) -> int:
    """Settle the session's sends older than sequence number ``before`` (and newer than
    ``after``, below which the caller has settled already) that are still ``pending`` or
    ``sending``: oldest first, each ``sending`` one looked up in the engine (``find_sent``),
    and sent only if it did not go out. Called before every send, so a message left behind
    by a killed host or API worker goes out before any newer one of its session, never after.

    Returns how many were settled. An engine that is not ready or crashed raises (the newer
    message must not go out either); a send the engine refuses marks that message failed.

    ``prefetched``: the session's unsettled sends above ``after`` as a doorbell pass loaded
    them (:func:`pass_rows`, oldest first); those below ``before`` are taken off that list
    and settled here, with no query.
    """
    rows: Sequence[Any]
    if prefetched is not None:
        rows = [row for row in prefetched if after < row.seq < before]
        prefetched[:] = [row for row in prefetched if row.seq >= before]
    elif after > 0:
        rows = db.session.execute(_UNSETTLED_SINCE, {"in_session": session_id, "after": after,
                                                     "before": before}).all()
    else:
        rows = db.session.execute(_UNSETTLED_ALL, {"in_session": session_id,
                                                   "before": before}).all()
    for row in rows:
        out = Outgoing(row.id, session_id, row.chat_id, row.type, row.body,
                       row.quoted_message_id, row.mentions, row.content, row.caption, row.media)
        found = None
        if row.status == MessageStatus.SENDING:  # `pending` never reached the engine
            try:
                found = engine.find_sent(out.chat_id, out.id)
            except EngineUnsupported:
                pass
        if found is None:
            sender = SENDERS.get(out.type)
            try:
                if sender is None:
                    raise EngineUnsupported(f"cannot send a {out.type} message")
                _mark_sending(engine, out)
                found = sender(engine, out)
            except (EngineNotReady, EngineCrashed):
                raise
            except EngineError as error:
                _mark_failed(out, str(error) or type(error).__name__)
                continue
        _mark_sent(out, found)
    return len(rows)


# -- scale (issue 18): a doorbell pass loads what it sends in one query ------------------------
#: What ``deliver`` and ``settle_older`` read of a row (not the history's other columns).
_ROW_COLUMNS = (*_UNSETTLED_COLUMNS, Message.session_id, Message.wa_message_id,
                Message.timestamp, Message.error)
_PASS_IDS = Message.id.in_(bindparam("ids", expanding=True))
#: The largest key a message can have (BIGINT; SQLite's INTEGER key is as wide).
SEQ_MAX = 2**63 - 1
#: The pass's own messages, and the session's unsettled sends above the watermark
#: (``after``): a key range between two passes, as in settle_older. Those newer than the
#: pass's own are read too (an upper bound made the plan dearer than the rows it saves) and
#: left alone: their own ring sends them. The range is closed at the largest key there can
#: be (a no-op bound): PostgreSQL without statistics on the table (a young table, or no
#: autovacuum) guesses a third of the table for an open range and read the whole table for
#: every pass, and SQLite (no statistics unless asked) scanned it too: a cost that grew
#: with the history. A closed range is planned on the key by both.
_PASS_ROWS_SINCE = (select(*_ROW_COLUMNS)
                    .where(or_(_PASS_IDS, and_(
                        Message.seq > bindparam("after"), Message.seq <= SEQ_MAX,
                        Message.session_id + "" == bindparam("in_session"), *_UNSETTLED_STATUS)))
                    .order_by(Message.seq))
_PASS_ROWS_ALL = (select(*_ROW_COLUMNS)
                  .where(or_(_PASS_IDS, and_(Message.session_id == bindparam("in_session"),
                                             *_UNSETTLED_STATUS)))
                  .order_by(Message.seq))


def pass_rows(session_id: str, message_ids: list[str],
              after: int) -> tuple[list[tuple[str, Any]], list[Any]]:
    """What a doorbell pass sends, read in one query instead of a load and a settle query
    per message: its messages oldest first (by ``seq``), each with its row (None when it
    has none: ``deliver`` answers NOT_FOUND, last), and the session's older unsettled sends
    (``settle_older``'s rows, for ``deliver``'s ``unsettled``). Rows are plain rows, not ORM
    objects, so a commit inside the pass (a ``sending`` mark) does not expire them."""
    statement = _PASS_ROWS_SINCE if after > 0 else _PASS_ROWS_ALL
    wanted = set(message_ids)
    mine: list[tuple[str, Any]] = []
    unsettled: list[Any] = []
    for row in db.session.execute(statement, {"ids": list(message_ids), "after": after,
                                              "in_session": session_id}):
        if row.id in wanted:
            mine.append((row.id, row))
        else:
            unsettled.append(row)
    found = {message_id for message_id, _ in mine}
    return [*mine, *((m, None) for m in message_ids if m not in found)], unsettled


# -- media (issue 12) ----------------------------------------------------------------------------
def _send_media(engine: Engine, out: Outgoing) -> SentMessage:
    """Every media type is sent from its stored file (app/services/media/send.py)."""
    from app.services.media.send import send_stored  # it imports this module
    return send_stored(engine, out)


SENDERS.update({kind: _send_media for kind in ("image", "video", "audio", "document", "sticker")})


# -- bulk sends (issue 13.5) ---------------------------------------------------------------------
def batch_message_id(batch_id: str, position: int) -> str:
    """The message id of a batch's item: derived from the batch and the item's position, so
    a resumed batch task finds the message it created before it was killed."""
    digest = hashlib.sha256(f"batch:{batch_id}:{position}".encode()).hexdigest()[:20].upper()
    return "3EB0" + digest


def enqueue(session: Session, kind: str, payload: dict[str, Any], message_id: str) -> None:
    """The send lifecycle without the wait, for callers that follow the outcome themselves
    (a batch): commit the message ``pending`` under ``message_id`` (in the caller's
    transaction, with whatever else it staged), then put it on the session's queue.

    A second call with the same id commits nothing new and enqueues the send again, which
    is harmless: :func:`deliver` sends a message once however often it is asked.
    """
    exists = db.session.scalar(select(Message.status).where(Message.id == message_id))
    if exists is None:
        stage(session, message_id, kind, payload)
    db.session.commit()
    if exists is None or exists in (MessageStatus.PENDING, MessageStatus.SENDING):
        dispatch.send(SEND_TEXT_TASK, [message_id], session.queue, task_id=send_task_id(message_id))


# -- message actions (issue 13.1) ---------------------------------------------------------------
def content_of(payload: dict[str, Any]) -> dict[str, Any] | None:
    """What a send stores in ``Message.content``: the kind's own details (``payload["content"]``,
    built by app/services/message_actions.py), or a text's ``linkPreview``."""
    if payload.get("content") is not None:
        return cast(dict[str, Any], payload["content"])
    return {"linkPreview": True} if payload.get("link_preview") else None


def _refuse_action_key(key: ApiKey, idempotency_key: str) -> None:
    """A key already used by an action that is not a send (message_actions) is not reused."""
    if db.session.scalar(select(MessageAction.id).where(
            MessageAction.api_key_id == key.id, MessageAction.idempotency_key == idempotency_key)):
        raise Conflict("Idempotency-Key was already used for a different request",
                       code="IDEMPOTENCY_KEY_REUSED")


def _c(out: Outgoing) -> dict[str, Any]:
    if not out.content:
        raise EngineError(f"the {out.type} message {out.id} has no content to send")
    return out.content
