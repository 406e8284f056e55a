"""Bulk sends: ``send-bulk`` records a batch and its items, and one Celery task per batch
(:func:`run`, on the ``batches`` queue) feeds the session's queue one item at a time.

Each item goes through the ordinary send lifecycle (``messages.enqueue`` then the session
host's ``deliver``) under an id derived from the batch and its position
(``messages.batch_message_id``): a task resumed after a kill finds the messages it created
and waits for them instead of creating them again, and ``deliver`` never sends a message
twice. The task waits for each item's outcome before the next one goes (so per-batch order
and ``stopOnError`` hold), then waits ``delayBetweenMessages`` (x 0.5-1.5 with
``randomizeDelay``); the time the next item may go is stored (``next_at``), so the delay
also holds across a resume.

The task holds a claim on the batch row, renewed while it works (``CLAIM_TTL``). A copy of
the task that finds a live claim (the broker redelivers a task that runs longer than its
visibility timeout) checks back later instead of sending beside it, and takes over once
the claim lapses: that is how a batch survives a killed worker.

Item types: ``ITEM_TYPES`` maps a type to the schema of its ``content`` and the message
type the send lifecycle sends; another message type is one line there.
"""
from __future__ import annotations

import hashlib
import json
import logging
import random
import re
import time
from datetime import timedelta
from typing import Any, Callable, NamedTuple

from marshmallow import Schema
from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from app.common.names import Queues, Tasks
from app.config import settings
from app.errors import ApiError, Conflict, NotFound, SessionNotReady
from app.extensions import celery_app, db
from app.models import (
    BATCH_FINAL,
    FINAL_SENT,
    ApiKey,
    Batch,
    BatchItem,
    BatchStatus,
    ItemStatus,
    Message,
    MessageStatus,
    Session,
    SessionStatus,
    utcnow,
)
from app.models.base import affected_rows, new_id
from app.schemas.messages import SendTextSchema
from app.services import dispatch, messages, webhooks
from app.services.events import commit_and_publish

log = logging.getLogger(__name__)

RUN_TASK = Tasks.RUN_BATCH
MAX_ITEMS = 100
DEFAULT_DELAY_MS = 3000
#: How long a batch task's claim lasts without renewal; a copy that finds it live checks
#: back after this long.
CLAIM_TTL = 10.0
#: How often a batch whose session is not ready looks again.
PAUSE_SECONDS = 5.0
#: An open batch that no run has claimed or touched for this long lost its task (a broker
#: that came back empty): beat's sweep enqueues it again.
STALE_AFTER = 60.0
#: A delay longer than this is waited out as a continuation of the task, not asleep.
SLEEP_AT_MOST = 2.0
#: The longest single wait (for a delay or an item's outcome) between two claim renewals.
WAIT_STEP = 1.0
COMPLETED_EVENT = "batch.completed"


class ItemType(NamedTuple):
    content: Schema  # validates and loads an item's ``content`` (no chatId: the item has it)
    kind: str  # the message type handed to the send lifecycle


#: One line per item type a batch may carry.
ITEM_TYPES: dict[str, ItemType] = {
    "text": ItemType(SendTextSchema(exclude=("chatId",)), "text"),
}


def task_id(batch_id: str) -> str:
    """The batch's one Celery task id (what Flower shows while it runs)."""
    return f"batch-{batch_id}"


# -- the API side ------------------------------------------------------------------------------
def _request_hash(session: Session, data: dict[str, Any]) -> str:
    canonical = json.dumps({"session": session.id, "bulk": data}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _accepted(batch: Batch, session: Session) -> dict[str, Any]:
    return {"batchId": batch.id, "status": batch.status, "totalMessages": batch.total,
            "statusUrl": f"{settings().api_prefix}/sessions/{session.id}/messages/batch/{batch.id}"}


def create(session: Session, key: ApiKey, data: dict[str, Any],
           idempotency_key: str | None) -> dict[str, Any]:
    """Record the batch and its items, then enqueue its task: 202's body."""
    request_hash = _request_hash(session, data)
    if idempotency_key:
        existing = _find_idempotent(key, idempotency_key)
        if existing is not None:
            return _replay(existing, session, request_hash)
    if session.status != SessionStatus.READY:
        raise SessionNotReady(f"Session '{session.name}' is not ready (status {session.status})")
    options = data.get("options") or {}
    batch = Batch(id=new_id(), session_id=session.id, api_key_id=key.id,
                  idempotency_key=idempotency_key, request_hash=request_hash,
                  status=BatchStatus.QUEUED, total=len(data["messages"]),
                  delay_ms=options.get("delay_ms", DEFAULT_DELAY_MS),
                  randomize_delay=options.get("randomize_delay", False),
                  stop_on_error=options.get("stop_on_error", False))
    db.session.add(batch)
    db.session.flush()
    db.session.add_all(BatchItem(batch_id=batch.id, position=n, chat_id=item["chat_id"],
                                 type=item["type"], content=item["content"],
                                 status=ItemStatus.PENDING)
                       for n, item in enumerate(data["messages"]))
    try:
        db.session.commit()
    except IntegrityError:
        # A concurrent retry with the same Idempotency-Key won the insert: answer as it did.
        db.session.rollback()
        existing = _find_idempotent(key, idempotency_key or "")
        if existing is None:
            raise
        return _replay(existing, session, request_hash)
    batch_id = batch.id
    try:
        dispatch.send(RUN_TASK, [batch_id], Queues.BATCHES, task_id=task_id(batch_id))
    except ApiError:
        # The client is told 503: the batch must not run later behind its back.
        db.session.execute(delete(Batch).where(Batch.id == batch_id))
        db.session.commit()
        raise
    return _accepted(get(session, batch_id), session)


def _find_idempotent(key: ApiKey, idempotency_key: str) -> Batch | None:
    return db.session.scalar(select(Batch).where(Batch.api_key_id == key.id,
                                                 Batch.idempotency_key == idempotency_key))


def _replay(existing: Batch, session: Session, request_hash: str) -> dict[str, Any]:
    if existing.request_hash != request_hash:
        raise Conflict("Idempotency-Key was already used for a different request",
                       code="IDEMPOTENCY_KEY_REUSED")
    return _accepted(existing, session)


_BATCH_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def get(session: Session, batch_id: str) -> Batch:
    if not _BATCH_ID.fullmatch(batch_id):  # not one of ours (and no NUL reaches PostgreSQL)
        raise NotFound(f"Batch '{batch_id[:64]}' not found")
    batch = db.session.scalar(select(Batch).where(Batch.id == batch_id,
                                                  Batch.session_id == session.id))
    if batch is None:
        raise NotFound(f"Batch '{batch_id}' not found")
    return batch


def _item_state(item_status: str, message_status: str | None) -> str:
    """One item's status on the wire: its message's once it has one."""
    if item_status == ItemStatus.QUEUED and message_status is not None:
        return message_status
    return item_status


def _bucket(state: str) -> str:
    """Which progress counter an item's state adds to."""
    if state in FINAL_SENT:
        return "sent"
    if state in (MessageStatus.FAILED, ItemStatus.FAILED):
        return "failed"
    if state == ItemStatus.CANCELLED:
        return "cancelled"
    return "pending"


def _rows(batch_id: str) -> list[Any]:
    return list(db.session.execute(
        select(BatchItem.position, BatchItem.chat_id, BatchItem.type, BatchItem.status,
               BatchItem.message_id, BatchItem.error, Message.status.label("message_status"),
               Message.wa_message_id, Message.error.label("message_error"))
        .outerjoin(Message, Message.id == BatchItem.message_id)
        .where(BatchItem.batch_id == batch_id).order_by(BatchItem.position)))


def progress(batch_id: str) -> dict[str, int]:
    counts = {"sent": 0, "failed": 0, "pending": 0, "cancelled": 0}
    for row in _rows(batch_id):
        counts[_bucket(_item_state(row.status, row.message_status))] += 1
    return counts


def view(batch: Batch) -> dict[str, Any]:
    """``GET .../messages/batch/:batchId``: status, progress and one result per item."""
    results, counts = [], {"sent": 0, "failed": 0, "pending": 0, "cancelled": 0}
    for row in _rows(batch.id):
        state = _item_state(row.status, row.message_status)
        counts[_bucket(state)] += 1
        result: dict[str, Any] = {"index": row.position, "chatId": row.chat_id, "type": row.type,
                                  "status": state}
        if row.message_id and row.message_status is not None:
            result["id"] = row.message_id
            result["messageId"] = row.wa_message_id
        error = row.message_error or row.error
        if error and _bucket(state) == "failed":
            result["error"] = error
        results.append(result)
    return {"batchId": batch.id, "status": batch.status, "totalMessages": batch.total,
            "progress": counts, "results": results, "createdAt": batch.created_at,
            "finishedAt": batch.finished_at}


def cancel(session: Session, batch_id: str) -> dict[str, Any]:
    """Stop what is not enqueued yet; the item on its way (at most one) still settles."""
    batch = get(session, batch_id)
    if batch.status == BatchStatus.CANCELLED:
        return view(batch)
    if batch.status in BATCH_FINAL:
        raise Conflict(f"Batch '{batch_id}' is already {batch.status}", code="BATCH_FINISHED")
    if _finish(batch_id, BatchStatus.CANCELLED, None, error="Cancelled by the API"):
        db.session.expire_all()
        return view(get(session, batch_id))
    # The batch ended while we looked: say how.
    db.session.expire_all()
    batch = get(session, batch_id)
    if batch.status != BatchStatus.CANCELLED:
        raise Conflict(f"Batch '{batch_id}' is already {batch.status}", code="BATCH_FINISHED")
    return view(batch)


def _finish(batch_id: str, status: str, token: str | None, error: str | None = None) -> bool:
    """End the batch (while it is still open, and, for a task, while it holds the claim):
    cancel its items not enqueued yet and report batch.completed, in one transaction."""
    conditions = [Batch.id == batch_id, Batch.status.in_((BatchStatus.QUEUED, BatchStatus.RUNNING))]
    if token is not None:
        conditions.append(Batch.claim_token == token)
    changed = affected_rows(db.session.execute(
        update(Batch).where(*conditions)
        .values(status=status, finished_at=utcnow(), updated_at=utcnow(), error=error,
                claim_token=None, claimed_until=None)
        .execution_options(synchronize_session=False)))
    if not changed:
        db.session.rollback()
        return False
    db.session.execute(update(BatchItem)
                       .where(BatchItem.batch_id == batch_id, BatchItem.status == ItemStatus.PENDING)
                       .values(status=ItemStatus.CANCELLED)
                       .execution_options(synchronize_session=False))
    session_id, total = db.session.execute(
        select(Batch.session_id, Batch.total).where(Batch.id == batch_id)).one()
    targets = webhooks.emit(session_id, COMPLETED_EVENT, {
        "batchId": batch_id, "status": status, "totalMessages": total,
        "progress": progress(batch_id)})
    commit_and_publish(targets)
    log.info("batch %s %s", batch_id, status)
    return True


# -- the task side -----------------------------------------------------------------------------
class Claim:
    """This run's hold on a batch row."""

    def __init__(self, batch_id: str) -> None:
        self.batch_id, self.token = batch_id, new_id()

    def take(self) -> bool:
        """Claim a batch that is open and not claimed by a live run; it is ``running`` now."""
        now = utcnow()
        changed = affected_rows(db.session.execute(
            update(Batch)
            .where(Batch.id == self.batch_id,
                   Batch.status.in_((BatchStatus.QUEUED, BatchStatus.RUNNING)),
                   or_(Batch.claimed_until.is_(None), Batch.claimed_until < now))
            .values(claim_token=self.token, claimed_until=now + timedelta(seconds=CLAIM_TTL),
                    status=BatchStatus.RUNNING, updated_at=now)
            .execution_options(synchronize_session=False)))
        db.session.commit()
        return changed == 1

    def renew(self, commit: bool = True) -> bool:
        """Extend the claim; False when the batch was cancelled or the claim was lost."""
        changed = affected_rows(db.session.execute(
            update(Batch)
            .where(Batch.id == self.batch_id, Batch.claim_token == self.token,
                   Batch.status == BatchStatus.RUNNING)
            .values(claimed_until=utcnow() + timedelta(seconds=CLAIM_TTL))
            .execution_options(synchronize_session=False)))
        if commit:
            db.session.commit()
        return changed == 1

    def release(self) -> None:
        db.session.rollback()
        db.session.execute(update(Batch)
                           .where(Batch.id == self.batch_id, Batch.claim_token == self.token)
                           .values(claim_token=None, claimed_until=None)
                           .execution_options(synchronize_session=False))
        db.session.commit()


class _Stop(Exception):
    """The run ends here (cancelled, claim lost, paused...); ``outcome`` says why, and
    ``again``, when set, is in how many seconds the task is to run again (once the claim
    is released, so the next run can take it)."""

    def __init__(self, outcome: str, again: float | None = None) -> None:
        super().__init__(outcome)
        self.outcome, self.again = outcome, again


_NEXT_ITEM = (
    select(BatchItem.position, BatchItem.status, BatchItem.message_id, BatchItem.chat_id,
           BatchItem.type, BatchItem.content, Message.status.label("message_status"))
    .outerjoin(Message, Message.id == BatchItem.message_id)
)


def run(batch_id: str, later: Callable[[float], None]) -> dict[str, Any]:
    """The batch task's body: feed the batch's items to its session until it ends, or hand
    over (``later(seconds)`` enqueues this task again) when another run holds the batch,
    its session is not ready, a long delay is to be waited out, or this run has lasted
    half the broker's visibility timeout (so the broker never redelivers a running task,
    and a worker's warm shutdown waits for a short run only)."""
    claim = Claim(batch_id)
    if not claim.take():
        status = db.session.scalar(select(Batch.status).where(Batch.id == batch_id))
        if status is None or status in BATCH_FINAL:
            return {"batchId": batch_id, "outcome": status or "gone"}
        later(CLAIM_TTL)  # another run holds it: check back, take over if it died
        return {"batchId": batch_id, "outcome": "held-elsewhere"}
    again = None
    try:
        outcome = _feed(claim)
    except _Stop as stop:
        outcome, again = stop.outcome, stop.again
    finally:
        claim.release()
    if again is not None:
        later(again)
    return {"batchId": batch_id, "outcome": outcome}


def _feed(claim: Claim) -> str:
    batch_id = claim.batch_id
    batch = db.session.get(Batch, batch_id)
    assert batch is not None
    delay_ms, randomize, stop_on_error = batch.delay_ms, batch.randomize_delay, batch.stop_on_error
    session_id = batch.session_id
    resent: set[str] = set()  # in-flight messages this run has put on the queue again
    cursor = 0
    started, slice_seconds = time.monotonic(), _max_hop()
    while True:
        if time.monotonic() - started > slice_seconds:
            raise _Stop("continued", 0.0)
        if not claim.renew():
            raise _Stop(_why_stopped(batch_id))
        row = db.session.execute(_NEXT_ITEM.where(
            BatchItem.batch_id == batch_id, BatchItem.position >= cursor,
            or_(BatchItem.status == ItemStatus.PENDING,
                and_(BatchItem.status == ItemStatus.QUEUED,
                     or_(Message.status.is_(None),
                         Message.status.in_((MessageStatus.PENDING, MessageStatus.SENDING))))))
            .order_by(BatchItem.position).limit(1)).first()
        if stop_on_error and _any_failed(batch_id):
            _finish(batch_id, BatchStatus.FAILED, claim.token, error="An item failed (stopOnError)")
            return BatchStatus.FAILED
        if row is None:
            counts = progress(batch_id)
            final = (BatchStatus.FAILED if counts["failed"] and not counts["sent"]
                     else BatchStatus.COMPLETED)
            _finish(batch_id, final, claim.token,
                    error="Every item failed" if final == BatchStatus.FAILED else None)
            return final
        cursor = row.position
        session = db.session.get(Session, session_id)
        if session is None:
            raise _Stop("gone")
        if row.status == ItemStatus.PENDING:
            if delay_ms > 0:
                _wait_until_due(claim)
            if session.status != SessionStatus.READY:
                raise _Stop("paused", PAUSE_SECONDS)
            _enqueue(claim, session, row)
        else:
            message_id = row.message_id or messages.batch_message_id(batch_id, row.position)
            if message_id not in resent:
                # Left in flight by a run that died: put it back on the queue (harmless if it is
                # still there: a message is sent once however often it is asked).
                resent.add(message_id)
                _enqueue(claim, session, row)
        state = _await_outcome(claim, row.message_id or messages.batch_message_id(batch_id, row.position))
        _schedule_next(batch_id, delay_ms, randomize)
        log.debug("batch %s item %d: %s", batch_id, row.position, state)


def _why_stopped(batch_id: str) -> str:
    db.session.rollback()
    status = db.session.scalar(select(Batch.status).where(Batch.id == batch_id))
    return str(status) if status in BATCH_FINAL else "claim-lost" if status else "gone"


def _any_failed(batch_id: str) -> bool:
    """Has an item failed (stopOnError)? Items go in order: only those before the cursor can."""
    failed = db.session.scalar(
        select(func.count()).select_from(BatchItem)
        .outerjoin(Message, Message.id == BatchItem.message_id)
        .where(BatchItem.batch_id == batch_id,
               or_(BatchItem.status == ItemStatus.FAILED,
                   and_(BatchItem.status == ItemStatus.QUEUED,
                        Message.status == MessageStatus.FAILED))))
    return bool(failed)


def _max_hop() -> float:
    """The longest countdown of a continuation: half the broker's visibility timeout, so a
    continuation the worker holds until it is due is never redelivered meanwhile."""
    options = celery_app.conf.broker_transport_options or {}
    return max(1.0, float(options.get("visibility_timeout", 3600)) / 2)


def _wait_until_due(claim: Claim) -> None:
    """Wait out the delay before the next item: a short one asleep, renewing the claim (and
    noticing a cancel); a long one as a continuation of the task, due when the delay ends
    (or at most half the visibility timeout later, to look again), so a waiting batch holds
    no worker thread."""
    while True:
        due = db.session.scalar(select(Batch.next_at).where(Batch.id == claim.batch_id))
        db.session.commit()
        left = 0.0 if due is None else (due - utcnow()).total_seconds()
        if left <= 0:
            return
        if left > SLEEP_AT_MOST:
            raise _Stop("waiting", min(left, _max_hop()))
        time.sleep(min(left, WAIT_STEP))
        if not claim.renew():
            raise _Stop(_why_stopped(claim.batch_id))


def _enqueue(claim: Claim, session: Session, row: Any) -> None:
    """Make the item a message and put it on the session's queue. The claim's renewal, the
    item's change and the message are one transaction: a cancel committed before it wins."""
    message_id = row.message_id or messages.batch_message_id(claim.batch_id, row.position)
    if not claim.renew(commit=False):
        raise _Stop(_why_stopped(claim.batch_id))
    db.session.execute(update(BatchItem)
                       .where(BatchItem.batch_id == claim.batch_id,
                              BatchItem.position == row.position)
                       .values(status=ItemStatus.QUEUED, message_id=message_id)
                       .execution_options(synchronize_session=False))
    item_type = ITEM_TYPES.get(row.type)
    kind = item_type.kind if item_type is not None else row.type
    messages.enqueue(session, kind, {"chat_id": row.chat_id, **(row.content or {})}, message_id)


_SETTLED = (*FINAL_SENT, MessageStatus.FAILED)


def _await_outcome(claim: Claim, message_id: str) -> str:
    """Wait for the item's message to be sent or to fail, renewing the claim."""
    result = dispatch.result_of(messages.send_task_id(message_id))
    answered = False
    while True:
        status = db.session.scalar(select(Message.status).where(Message.id == message_id))
        db.session.commit()
        if status is None:
            return "gone"
        if status in _SETTLED:
            return str(status)
        if answered:
            time.sleep(0.05)  # an earlier answer (a resend's): the row says when it is settled
        answered = dispatch.wait(result, WAIT_STEP) is not None
        if not claim.renew():
            raise _Stop(_why_stopped(claim.batch_id))


def _schedule_next(batch_id: str, delay_ms: int, randomize: bool) -> None:
    if delay_ms <= 0:
        return
    seconds = delay_ms / 1000.0
    if randomize:
        seconds *= random.uniform(0.5, 1.5)
    db.session.execute(update(Batch).where(Batch.id == batch_id)
                       .values(next_at=utcnow() + timedelta(seconds=seconds))
                       .execution_options(synchronize_session=False))
    db.session.commit()


def resume_stale() -> int:
    """Beat's sweep: enqueue the task again for open batches whose task message was lost
    (no live claim, untouched for ``STALE_AFTER``). A duplicate is harmless: the claim lets
    one run feed the batch."""
    now = utcnow()
    stale = list(db.session.scalars(
        select(Batch.id).where(Batch.status.in_((BatchStatus.QUEUED, BatchStatus.RUNNING)),
                               or_(Batch.claimed_until.is_(None), Batch.claimed_until < now),
                               Batch.updated_at < now - timedelta(seconds=STALE_AFTER))
        .order_by(Batch.created_at).limit(1000)))
    for batch_id in stale:
        dispatch.send(RUN_TASK, [batch_id], Queues.BATCHES, task_id=task_id(batch_id))
        db.session.execute(update(Batch).where(Batch.id == batch_id).values(updated_at=now)
                           .execution_options(synchronize_session=False))
    db.session.commit()
    return len(stale)
