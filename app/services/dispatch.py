"""Sending work to Celery by task name: the API never imports ``tasks``.

Broker trouble becomes a 503, a reply that does not come in time a 504; a task that
reports an engine error is mapped to its HTTP status.
"""
from __future__ import annotations

import logging
from typing import Any

from celery.exceptions import TimeoutError as CeleryTimeout
from celery.result import AsyncResult
from kombu.exceptions import OperationalError
from redis.exceptions import RedisError

from app.errors import GatewayTimeout, ServiceUnavailable
from app.extensions import celery_app
from app.services.replies import unwrap

__all__ = ["BROKER_ERRORS", "call", "purge_queue", "queue_lengths", "ping_broker", "result_of",
           "send", "unwrap", "wait"]

log = logging.getLogger(__name__)

BROKER_ERRORS = (OperationalError, RedisError, ConnectionError, OSError)


def _result_store_gave_up(error: RuntimeError) -> bool:
    """Celery's Redis result backend raises RuntimeError once its reconnects are spent and
    stays broken; it is per thread, so dropping it lets the next call build a fresh one."""
    if "result store backend" not in " ".join(str(error).split()):
        return False
    try:
        del celery_app._local.backend
    except AttributeError:
        pass
    return True


def send(name: str, args: list[Any], queue: str, task_id: str | None = None,
         ignore_result: bool = False) -> AsyncResult:
    """Enqueue task ``name``; 503 if the broker cannot take it. ``ignore_result``: the caller
    will not wait on the returned result (Celery then does not subscribe to it)."""
    try:
        return celery_app.send_task(name, args=args, queue=queue, task_id=task_id,
                                    ignore_result=ignore_result,
                                    retry=True, retry_policy={"max_retries": 2,
                                                              "interval_start": 0.2,
                                                              "interval_step": 0.5})
    except (*BROKER_ERRORS, RuntimeError) as error:
        if isinstance(error, RuntimeError) and not _result_store_gave_up(error):
            raise
        log.warning("broker unavailable while sending %s: %s", name, type(error).__name__)
        raise ServiceUnavailable("Message broker is unavailable", code="BROKER_UNAVAILABLE") from None


def result_of(task_id: str) -> AsyncResult:
    return AsyncResult(task_id, app=celery_app)


def wait(result: AsyncResult, timeout: float) -> Any | None:
    """The task's return value, or None if it did not finish within ``timeout`` or the
    result store cannot be read (the task is queued either way: the caller answers pending)."""
    try:
        reply = result.get(timeout=timeout, propagate=False, disable_sync_subtasks=False)
    except CeleryTimeout:
        # Celery keeps a waiter until its task finishes, which may be never (a stopped
        # session): stop waiting explicitly, or each 202 would leak one subscription.
        result.backend.remove_pending_result(result)
        return None
    except (*BROKER_ERRORS, RuntimeError) as error:
        if isinstance(error, RuntimeError) and not _result_store_gave_up(error):
            raise
        log.warning("result store unavailable while waiting: %s", type(error).__name__)
        return None
    if result.failed():
        # The task raised (its database was down, say): what it was doing is still recorded
        # as not done, and the sweeps finish it; the caller answers "pending".
        log.warning("task %s raised %s", result.id, type(reply).__name__)
        return None
    return reply


def call(name: str, args: list[Any], queue: str, timeout: float) -> Any:
    """Send and wait for the reply; 504 when none comes in time."""
    result = send(name, args, queue)
    reply = wait(result, timeout)
    if reply is None:
        raise GatewayTimeout(f"The session host did not answer within {timeout:g} s")
    return unwrap(reply)


def purge_queue(queue: str) -> None:
    """Drop a queue and what is left in it (a deleted session's commands)."""
    try:
        with celery_app.connection_for_write() as conn:
            conn.default_channel.queue_delete(queue)
    except BROKER_ERRORS as error:
        log.warning("could not delete queue %s: %s", queue, type(error).__name__)


def queue_lengths(names: list[str]) -> dict[str, int]:
    """Messages waiting in each named queue (Redis lists), in one round trip."""
    with celery_app.connection_for_write() as conn:
        client = conn.default_channel.client
        pipe = client.pipeline()
        for name in names:
            pipe.llen(name)
        return dict(zip(names, (int(n) for n in pipe.execute())))


def ping_broker(timeout: float = 2.0) -> None:
    with celery_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=timeout)
        conn.default_channel.client.ping()
