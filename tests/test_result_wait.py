"""The API's waits for a host's reply keep to their timeout (app.common.result_store): Celery's
Redis result store drained in one-second slices whatever the timeout, so a send that waited
SEND_WAIT_TIMEOUT=0.05 for a busy host answered after a whole second."""
from __future__ import annotations

import gc
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from celery import Celery, states

from app.common.result_store import RedisBackend
from app.services import dispatch


@pytest.fixture
def celery(redis_available: str) -> Iterator[Celery]:
    """A Celery app configured as every process's (celeryconfig), on the tests' Redis."""
    celery = Celery("waits")
    celery.config_from_object("celeryconfig")
    celery.conf.update(broker_url=redis_available, result_backend=redis_available)
    yield celery
    celery.backend.result_consumer.stop()


def timed_wait(celery: Celery, task_id: str, timeout: float) -> tuple[object, float]:
    started = time.monotonic()
    reply = dispatch.wait(celery.AsyncResult(task_id), timeout)
    return reply, time.monotonic() - started


def quickest_wait(celery: Celery, timeout: float, attempts: int = 3) -> float:
    """The shortest of a few waits for replies that never come.

    A stall of this process (a full garbage collection of a long test run's heap, a busy CI
    machine: one CI run saw a 0.05 s wait take 0.92 s) lengthens one attempt, never all of
    them; Celery's own consumer overshot every attempt by about a second."""
    took = []
    gc.disable()
    try:
        for _ in range(attempts):
            reply, seconds = timed_wait(celery, f"nobody-runs-{uuid.uuid4()}", timeout)
            assert reply is None
            took.append(seconds)
    finally:
        gc.enable()
    return min(took)


def test_the_project_uses_the_result_store_that_keeps_to_its_timeout(celery):
    assert isinstance(celery.backend, RedisBackend)


@pytest.mark.parametrize("timeout", [0.0, 0.05, 0.2])
def test_a_wait_for_a_reply_that_does_not_come_ends_at_its_timeout(celery, timeout):
    took = quickest_wait(celery, timeout)
    # Celery's own consumer returned after a whole second here, whatever the timeout.
    assert timeout <= took < timeout + 0.5, took


def test_a_reply_stored_during_the_wait_is_returned_as_soon_as_it_is_stored(celery):
    task_id = f"answered-{uuid.uuid4()}"
    answer = threading.Timer(0.1, celery.backend.store_result, (task_id, {"ok": True}, states.SUCCESS))
    answer.start()
    try:
        reply, took = timed_wait(celery, task_id, 5.0)
    finally:
        answer.join()
    assert reply == {"ok": True}
    assert 0.1 <= took < 1.0, took


def test_a_reply_stored_before_the_wait_is_returned_even_with_no_time_to_wait(celery):
    task_id = f"early-{uuid.uuid4()}"
    celery.backend.store_result(task_id, {"ok": 1}, states.SUCCESS)
    assert timed_wait(celery, task_id, 0.0)[0] == {"ok": 1}
