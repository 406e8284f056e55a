"""The worker rides out a Redis kill with a task in flight (issue 17 item 3).

kombu's Redis channel, closed a second time after ``Connection.collect()`` detached its
transport (the first close stopped at the dead BRPOP), restored its unacked messages through
a pool rebuilt from ``transport.client``, which is None by then: ``AttributeError: 'NoneType'
object has no attribute 'hostname'`` left the consumer, and the worker stopped with
"Unrecoverable error". It takes a task in flight (an unacked message) and a free slot (a
BRPOP waiting) when Redis dies, which is what a worker under webhook load always has.
"""
from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path

import pytest
from celery import Celery
from sqlalchemy import create_engine, text

from app.common.names import Queues, Tasks
from tests.faults.services import PrivateRedis
from tests.integration.conftest import wait_for
from tests.live import LivePlatform
from tests.webhooks.receiver import Receiver

pytestmark = [pytest.mark.faults, pytest.mark.slow]

EVENT = "session.qr"  # nothing else emits it here: no session host runs


def _deliver(live: LivePlatform, db_path: Path, broker: str, hook: str, session: str) -> str:
    """One outbox row as ``emit`` writes it, then the nudge ``kick`` sends."""
    row_id = str(uuid.uuid4())
    engine = create_engine(f"sqlite:///{db_path}")
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO webhook_deliveries (id, idempotency_key, webhook_id, session_id, event, "
            "data, occurred_at, status, attempts, next_attempt_at, created_at, order_key) VALUES "
            f"(:id, :id, :hook, :session, '{EVENT}', :data, CURRENT_TIMESTAMP, 'pending', 0, "
            "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, '')"),
            {"id": row_id, "hook": hook, "session": session, "data": json.dumps({"n": row_id})})
    engine.dispose()
    client = Celery(broker=broker)
    client.send_task(Tasks.WEBHOOK_DELIVER, args=[hook], queue=Queues.WEBHOOKS)
    client.close()
    return row_id


def test_worker_survives_a_redis_kill_with_a_task_in_flight_and_goes_on_consuming(
        live: LivePlatform, private_redis: PrivateRedis, tmp_path: Path) -> None:
    live.env["WEBHOOK_ALLOW_PRIVATE"] = "true"  # the receiver is on 127.0.0.1
    live.start_api()
    worker = live.start("worker", WORKER_CONCURRENCY="4")
    wait_for(lambda: "ready" in worker.output() or not worker.alive(), 60, 0.1, "the worker")
    assert worker.alive(), worker.output()[-3000:]

    receiver = Receiver().start()
    release = threading.Event()
    receiver.on_request = lambda body: release.wait(30) if body["event"] == EVENT else None
    try:
        assert live.request("POST", "/sessions", json={"name": "quiet"})[0] == 201
        session = live.status("quiet")["id"]
        status, hook = live.request("POST", "/sessions/quiet/webhooks",
                                    json={"url": receiver.url, "events": [EVENT]})
        assert status == 201, hook
        db_path = tmp_path / "data" / "openwa.db"

        first = _deliver(live, db_path, private_redis.url, hook["id"], session)
        # The delivery is in flight (its message unacked) and three slots wait on BRPOP.
        wait_for(lambda: receiver.in_flight == 1, 30, 0.05, "the first delivery in flight")
        private_redis.kill()
        wait_for(lambda: "Connection to broker lost" in worker.output(), 30, 0.1,
                 "the worker to notice the broker is gone")
        release.set()
        private_redis.start()
        wait_for(lambda: worker.output().count("Connected to redis") >= 2 or not worker.alive(),
                 60, 0.1, "the worker to reconnect")

        log = worker.output()
        assert "Unrecoverable error" not in log, log[-4000:]
        assert "'NoneType' object has no attribute 'hostname'" not in log, log[-4000:]
        assert worker.alive(), log[-4000:]
        assert "Error on restarting" not in log and "Error on stopping" not in log, log[-4000:]

        # And it goes on consuming: a new delivery reaches the receiver.
        second = _deliver(live, db_path, private_redis.url, hook["id"], session)
        wait_for(lambda: any(json.loads(r["body"])["deliveryId"] == second
                             for r in list(receiver.requests)), 30, 0.1,
                 "a delivery sent after Redis came back")
        assert worker.alive()
        assert any(json.loads(r["body"])["deliveryId"] == first for r in list(receiver.requests))
    finally:
        release.set()
        receiver.stop()
