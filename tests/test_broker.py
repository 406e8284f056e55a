"""The broker transport (app/common/broker.py) on a real Redis: a channel publishes, records
its unacked messages and acks through one Redis client of its pool, instead of building a
client per call (scale, issue 18), and still delivers after its pool is rebuilt."""
from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis as redis_lib
from kombu import Connection, Exchange, Queue

from app.common.broker import TRANSPORT


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every redis.Redis client built from now on."""
    clients: list[object] = []
    original = redis_lib.Redis.__init__

    def counting(self: redis_lib.Redis, *args: object, **kwargs: object) -> None:
        clients.append(self)
        original(self, *args, **kwargs)

    monkeypatch.setattr(redis_lib.Redis, "__init__", counting)
    return clients


@pytest.fixture
def queue(redis_available: str) -> Iterator[tuple[Connection, Queue]]:
    name = f"test-broker-{uuid.uuid4().hex[:8]}"
    conn = Connection(redis_available, transport=TRANSPORT)
    q = Queue(name, Exchange(name, type="direct"), routing_key=name)
    try:
        yield conn, q
    finally:
        q(conn.default_channel).delete()
        conn.release()


def _publish(conn: Connection, q: Queue, bodies: list[str]) -> None:
    with conn.Producer() as producer:
        for body in bodies:
            producer.publish(body, exchange=q.exchange, routing_key=q.routing_key, declare=[q])


def _consume(conn: Connection, q: Queue, n: int) -> list[str]:
    got: list[str] = []
    with conn.SimpleQueue(q) as simple:  # acks each, as a worker does (unacked record, ack)
        for _ in range(n):
            message = simple.get(timeout=5)
            got.append(message.payload)
            message.ack()
    return got


def test_a_channel_publishes_and_acks_through_one_client_of_its_pool(
        queue: tuple[Connection, Queue], built: list[object]) -> None:
    conn, q = queue
    conn.default_channel  # noqa: B018 - its own clients (consumer, pub/sub) are not counted
    built.clear()
    _publish(conn, q, [f"m{n}" for n in range(10)])
    assert _consume(conn, q, 10) == [f"m{n}" for n in range(10)]
    # One, whatever the number of messages: 10 publishes, gets and acks built 43 before.
    assert len(built) == 1


def test_a_channel_whose_pool_was_rebuilt_publishes_through_a_new_client(
        queue: tuple[Connection, Queue]) -> None:
    conn, q = queue
    channel = conn.default_channel
    first = channel._create_client()
    assert channel._create_client() is first
    channel._pool = None  # as after a close: the next call builds the pool again
    second = channel._create_client()
    assert second is not first and second.connection_pool is channel.pool
    _publish(conn, q, ["after"])
    assert _consume(conn, q, 1) == ["after"]
