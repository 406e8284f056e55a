"""The session queue as a doorbell (issue 18): one Celery task carries every send that is
waiting for a session, instead of one task per send.

The API commits its message (``pending``) first, as before, then :func:`ring` puts the
message id on the session's bell list and sets the session's ``rung`` flag, both in one
Redis transaction. Only the send that set the flag enqueues a send task (with its own task
id, as before); a send that finds the flag set enqueues nothing: the task already on its way
will take it. On the session host the send task calls :func:`take`, which reads the list and
clears list and flag in one transaction, and hands each message to ``messages.deliver``
oldest first (by ``seq``, from the database: ``messages.pass_rows`` reads them with the
session's older unsettled sends in one query), storing each reply under that message's own
task id (:func:`answer`), where its API request is waiting.

The request that rang waits for its reply on a list of its own (:func:`wait_answer`: one
``BLPOP``), which :func:`answer` fills in the same pipeline as Celery's result: no
subscription per send, no read of the result key, none of Celery's result-consumer
machinery (scale, issue 18). Any other waiter (an Idempotency-Key retry, a media send
waiting for the send its download enqueued) reads Celery's result, which is still written.

Why nothing is lost or doubled: a message id is on the list before the flag is tried, and
list + flag are read and cleared atomically, so every message either set the flag (its own
task) or was pushed before a take that sees it. The list is a hint, not the record: the
database row is (committed before ring), so a list lost with Redis or a host killed after a
take leaves ``pending`` rows that the next send of the session settles first
(``settle_older``) or the sweep re-enqueues; ``deliver`` stays idempotent for any of them.
The flag expires after RUNG_TTL so a task that was lost (queue purged) cannot hold a
session's sends back longer than that.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

from celery import states

from app.extensions import celery_app

log = logging.getLogger(__name__)

#: Seconds a rung flag lives without its task taking it (a lost task delays sends this long).
RUNG_TTL = 5
#: Seconds a bell list lives untouched (a deleted session's leftovers).
LIST_TTL = 3600
#: Seconds a reply waits on its list for the request that rang (one that already answered
#: 202, or a send nobody waits for this way, leaves it to expire).
REPLY_TTL = 60


def _keys(session_id: str) -> tuple[str, str]:
    return f"openwa:bell:{session_id}", f"openwa:bell:{session_id}:rung"


def _reply_key(task_id: str) -> str:
    return f"openwa:reply:{task_id}"


def _client() -> Any:
    return celery_app.backend.client


def ring(session_id: str, message_id: str) -> bool:
    """Announce a committed send; True when the caller must enqueue the send task (it set
    the flag). Its reply will wait on its own list (:func:`wait_answer`), so an answer
    stored before the caller starts waiting is not missed."""
    bell, rung = _keys(session_id)
    pipe = _client().pipeline(transaction=True)
    pipe.rpush(bell, message_id)
    pipe.expire(bell, LIST_TTL)
    pipe.set(rung, message_id, nx=True, ex=RUNG_TTL)
    return bool(pipe.execute()[2])


def unring(session_id: str, message_id: str) -> None:
    """The send task could not be enqueued (the client is told 503): take the message off
    the list and clear the flag, so the next send rings again."""
    bell, rung = _keys(session_id)
    pipe = _client().pipeline(transaction=True)
    pipe.lrem(bell, 0, message_id)
    pipe.delete(rung)
    pipe.execute()


def take(session_id: str) -> list[str]:
    """Every message id rung for the session since the last take, cleared with the flag in
    one transaction."""
    bell, rung = _keys(session_id)
    pipe = _client().pipeline(transaction=True)
    pipe.lrange(bell, 0, -1)
    pipe.delete(bell, rung)
    raw = pipe.execute()[0]
    seen: dict[str, None] = {}
    for item in raw:
        seen[item.decode() if isinstance(item, bytes) else str(item)] = None
    return list(seen)


def put_back(session_id: str, message_ids: list[str]) -> None:
    """Taken but not delivered here (the session moved, the task failed): back on the list
    for the next pass."""
    if message_ids:
        bell = _keys(session_id)[0]
        pipe = _client().pipeline(transaction=True)
        pipe.rpush(bell, *message_ids)
        pipe.expire(bell, LIST_TTL)
        pipe.execute()


def answer(replies: list[tuple[str, dict[str, Any]]]) -> None:
    """Store each send's reply where its API request waits: on the reply list of its task id
    (:func:`wait_answer`), and as the result of its task id for any other waiter.

    The result is written as Celery's result backend writes one (the same meta, a ``SET``
    with the result expiry and a ``PUBLISH``), but a pass's replies in one pipeline and
    without ``store_result``'s read of each key first, which only keeps a success from being
    overwritten: a send's reply is the same each time it is stored (scale, issue 18: one
    Redis round trip per pass instead of two per send). Retried on connection errors with
    the backend's own policy, as ``store_result`` is."""
    _store([(task_id, states.SUCCESS, reply) for task_id, reply in replies])


def answer_failed(task_id: str) -> None:
    """The send task raised (Celery stores its error as the task's result): tell the request
    waiting on the reply list, which answers 202 (the send is still recorded as not done)."""
    _store([(task_id, states.FAILURE, None)], result=False)


def _store(replies: list[tuple[str, str, Any]], result: bool = True) -> None:
    if not replies:
        return
    backend = celery_app.backend
    done = datetime.now(timezone.utc).isoformat()
    encoded = [(task_id, backend.encode({
        "status": status, "result": reply, "traceback": None, "children": [],
        "date_done": done, "task_id": task_id})) for task_id, status, reply in replies]

    def write() -> None:
        with backend.client.pipeline() as pipe:
            for task_id, value in encoded:
                if result:
                    key = backend.get_key_for_task(task_id)
                    pipe.set(key, value, ex=backend.expires or None)
                    pipe.publish(key, value)
                pipe.rpush(_reply_key(task_id), value)
                pipe.expire(_reply_key(task_id), REPLY_TTL)
            pipe.execute()

    backend.ensure(write, ())


def wait_answer(task_id: str, timeout: float) -> Any | None:
    """The reply stored for ``task_id`` (the send task's return value), waited for up to
    ``timeout`` seconds with one ``BLPOP``; None when none came in time or the task failed.
    Redis errors propagate (the caller answers 202). The wait stays a second inside the
    result store's socket timeout (Celery's ``redis_socket_timeout``, 120 s), which would
    otherwise end it with an error."""
    key = _reply_key(task_id)
    socket_timeout = celery_app.backend.connparams.get("socket_timeout")
    if socket_timeout:
        timeout = min(timeout, max(socket_timeout - 1.0, 0.1))
    if timeout > 0:
        popped = _client().blpop([key], timeout=timeout)
        value = popped[1] if popped else None
    else:
        value = _client().lpop(key)
    if value is None:
        return None
    meta = celery_app.backend.decode(value)
    return meta.get("result") if meta.get("status") == states.SUCCESS else None
