"""Celery's Redis result store, with waits that keep to their timeout.

``AsyncResult.get(timeout=...)`` on the Redis store drains its subscription in slices of one
second whatever the timeout: each slice returns at the first message it reads, and the timeout
is only checked between slices. A wait shorter than a second, or the last second of a longer
one, therefore lasted until the next message on the subscription or a whole second more. The
API's waits (``SEND_WAIT_TIMEOUT``, ``ENGINE_CALL_TIMEOUT``) are promises to the client: here
a slice is at most a tenth of the timeout (1 ms to 1 s), so a wait ends within about a tenth
of its timeout after it (an hour's wait: within a second, as before).

Used for ``redis://`` and ``rediss://`` result stores (``celeryconfig.override_backends``);
imports nothing of the project.
"""
from __future__ import annotations

from typing import Any

from celery.backends import redis as celery_redis


def slice_for(timeout: float | None) -> float:
    """How long one drain of the subscription may block within a wait of ``timeout``."""
    if timeout is None:
        return 1.0
    return min(1.0, max(0.001, timeout / 10))


class ResultConsumer(celery_redis.ResultConsumer):
    def drain_events_until(self, p: Any, timeout: float | None = None,
                           on_interval: Any = None) -> Any:
        return self.drainer.drain_events_until(p, timeout=timeout, interval=slice_for(timeout),
                                               on_interval=on_interval)


class RedisBackend(celery_redis.RedisBackend):
    ResultConsumer = ResultConsumer


BACKEND = f"{__name__}:RedisBackend"
