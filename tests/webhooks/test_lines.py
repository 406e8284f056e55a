"""Order only where it matters: lines per chat (or per webhook), drains that share a
webhook without duplicates, leases that outlive a slow POST and not a killed worker, and
a webhook deleted mid-delivery. Real receivers, real databases, real processes."""
from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from app.config import Config, ConfigError
from app.extensions import db
from app.models import WebhookDelivery, utcnow
from app.services import webhooks
from tests.databases import env_for
from tests.webhooks.test_delivery import drain, hook, incoming, rows

ROOT = Path(__file__).resolve().parents[2]
CHAT_A, CHAT_B = "15550000001@c.us", "15550000002@c.us"

# A worker process: builds the app from the environment, waits for the go, drains once.
WORKER = """
import sys, time
from pathlib import Path
from app import create_app
from app.services import webhooks
app = create_app()
go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.01)
with app.app_context():
    print(webhooks.drain(sys.argv[1]), flush=True)
"""


def chats_in_order(receiver) -> dict[str, list[str]]:
    seen: dict[str, list[str]] = defaultdict(list)
    for body in receiver.bodies():
        seen[body["data"]["chatId"]].append(body["data"]["body"])
    return dict(seen)


def retry_counts(receiver) -> list[str]:
    return [{k.lower(): v for k, v in r["headers"].items()}["x-openwa-retry-count"]
            for r in receiver.requests]


def worker_env(wh_app, backend, **extra: str) -> dict[str, str]:
    config = wh_app.config["OPENWA"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "WEBHOOK_"))}
    env.update(env_for(*backend), REDIS_URL=config.redis_url, DATA_PATH=str(config.data_dir),
               LOG_LEVEL="warning", ENCRYPTION_KEY=config.encryption_key,
               WEBHOOK_ALLOW_PRIVATE="true", WEBHOOK_RETRY_DELAY="50", **extra)
    return env


def spawn_worker(env, webhook_id: str, go: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WORKER, webhook_id, str(go)], env=env,
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_failing_chat_waits_alone_while_another_chat_is_delivered(
        wh_app, client, operator_key, session_id, receiver):
    wh_app.config["OPENWA"].webhook_retry_delay_ms = 500  # the drain ends before the retry
    webhook_id = hook(client, operator_key, session_id, receiver.url, events=["message.received"])
    receiver.fail_first = 1  # the first request: A's first event
    incoming(wh_app, session_id, 1, CHAT_A)
    incoming(wh_app, session_id, 2, CHAT_B)
    incoming(wh_app, session_id, 3, CHAT_A)
    incoming(wh_app, session_id, 4, CHAT_B)
    assert drain(wh_app, webhook_id) == {"delivered": 2, "retried": 1, "dead": 0}
    assert chats_in_order(receiver) == {CHAT_A: ["hello 1"], CHAT_B: ["hello 2", "hello 4"]}
    time.sleep(0.8)  # past the backoff (500 ms ± 20 %)
    assert drain(wh_app, webhook_id) == {"delivered": 2, "retried": 0, "dead": 0}
    assert chats_in_order(receiver) == {CHAT_A: ["hello 1", "hello 1", "hello 3"],
                                        CHAT_B: ["hello 2", "hello 4"]}
    assert {row.status for row in rows(wh_app)} == {"delivered"}


def test_strict_order_holds_the_whole_webhook_behind_a_failure(
        wh_app, client, operator_key, session_id, receiver):
    wh_app.config["OPENWA"].webhook_order = "webhook"
    wh_app.config["OPENWA"].webhook_retry_delay_ms = 500
    webhook_id = hook(client, operator_key, session_id, receiver.url, events=["message.received"])
    receiver.fail_first = 1
    incoming(wh_app, session_id, 1, CHAT_A)
    incoming(wh_app, session_id, 2, CHAT_B)
    incoming(wh_app, session_id, 3, CHAT_A)
    assert drain(wh_app, webhook_id) == {"delivered": 0, "retried": 1, "dead": 0}
    assert [b["data"]["body"] for b in receiver.bodies()] == ["hello 1"]
    time.sleep(0.8)
    assert drain(wh_app, webhook_id) == {"delivered": 3, "retried": 0, "dead": 0}
    assert [b["data"]["body"] for b in receiver.bodies()] == ["hello 1", "hello 1", "hello 2", "hello 3"]


def test_the_line_is_the_chat_and_session_events_share_one(wh_app, client, operator_key, session_id, receiver):
    with wh_app.app_context():
        assert webhooks.order_key({"chatId": CHAT_A, "ack": 2}) == CHAT_A
        assert webhooks.order_key({"status": "ready"}) == ""
        assert webhooks.order_key({"chatId": "x" * 300}) == "x" * 100


def test_two_worker_processes_share_one_webhook_without_duplicates(
        wh_app, backend, client, operator_key, session_id, receiver, tmp_path):
    """Eight chats, six events each, a receiver taking 50 ms: two real processes drain the
    same webhook at once, each on its own chats, and every event arrives once, in order."""
    webhook_id = hook(client, operator_key, session_id, receiver.url, events=["message.received"])
    chats = [f"1555000{c:04d}@c.us" for c in range(8)]
    for n in range(6):
        for chat in chats:
            incoming(wh_app, session_id, n, chat)
    receiver.delay = 0.05
    go = tmp_path / "go"
    env = worker_env(wh_app, backend)
    workers = [spawn_worker(env, webhook_id, go) for _ in range(2)]
    try:
        time.sleep(0.5)
        go.touch()
        outputs = [w.communicate(timeout=120) for w in workers]
    finally:
        for w in workers:
            w.kill()
    assert all(w.returncode == 0 for w in workers), outputs
    delivered = [ast.literal_eval(out.strip().splitlines()[-1])["delivered"] for out, _ in outputs]
    bodies = receiver.bodies()
    assert len(bodies) == 48 and len({b["deliveryId"] for b in bodies}) == 48
    assert sum(delivered) == 48 and min(delivered) > 0, delivered  # both took part
    assert receiver.in_flight_max >= 2  # at the same time
    assert chats_in_order(receiver) == {chat: [f"hello {n}" for n in range(6)] for chat in chats}
    assert {row.status for row in rows(wh_app)} == {"delivered"}


def test_a_slow_post_keeps_its_claim_past_the_lease(wh_app, client, operator_key, session_id, receiver):
    """The lease is renewed while the drain waits for the receiver: another drain (and the
    sweep) leaves the delivery alone, so it is not sent twice."""
    wh_app.config["OPENWA"].webhook_lease_s = 1.5
    wh_app.config["OPENWA"].webhook_timeout_ms = 10_000
    webhook_id = hook(client, operator_key, session_id, receiver.url, events=["message.received"])
    receiver.delay = 4.5
    incoming(wh_app, session_id, 1)
    slow = threading.Thread(target=drain, args=(wh_app, webhook_id))
    slow.start()
    try:
        deadline = time.monotonic() + 10
        while not receiver.requests and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(3.2)  # two leases later, still in the POST
        with wh_app.app_context():
            assert webhooks.due_webhooks() == []
        assert drain(wh_app, webhook_id) == {"delivered": 0, "retried": 0, "dead": 0}
    finally:
        slow.join(30)
    assert len(receiver.requests) == 1 and rows(wh_app)[0].status == "delivered"


def test_a_killed_workers_claim_is_recovered_in_seconds_and_its_attempt_counted(
        wh_app, backend, client, operator_key, session_id, receiver, tmp_path):
    webhook_id = hook(client, operator_key, session_id, receiver.url, events=["message.received"])
    incoming(wh_app, session_id, 1)
    incoming(wh_app, session_id, 2)
    answer = threading.Event()
    receiver.on_request = lambda body: answer.wait(30)  # the POST hangs until we let go
    go = tmp_path / "go"
    go.touch()
    worker = spawn_worker(worker_env(wh_app, backend, WEBHOOK_LEASE="1"), webhook_id, go)
    try:
        deadline = time.monotonic() + 60
        while not receiver.requests and time.monotonic() < deadline:
            time.sleep(0.01)
        assert receiver.requests, worker.communicate(timeout=5)
        os.kill(worker.pid, signal.SIGKILL)
        killed, killed_at = time.monotonic(), utcnow()
        worker.wait(10)
    finally:
        worker.kill()
        receiver.on_request = None
        answer.set()
    first = rows(wh_app)[0]
    assert first.status == "pending" and first.attempts == 1 and first.claim_token is not None
    # Held, and renewed, when the worker died; free one lease (1 s) later at the most.
    assert killed_at < first.claimed_until <= killed_at + timedelta(seconds=1.05)
    delivered = 0
    while not delivered and time.monotonic() - killed < 30:  # as the sweep would, often
        delivered = drain(wh_app, webhook_id)["delivered"]
        time.sleep(0.05)
    recovered = time.monotonic() - killed
    assert delivered == 2 and recovered < 2.5, recovered  # WEBHOOK_LEASE=1: seconds, not ~45
    assert [b["data"]["body"] for b in receiver.bodies()] == ["hello 1", "hello 1", "hello 2"]
    assert retry_counts(receiver) == ["0", "1", "0"]  # the killed attempt counts


def test_a_webhook_deleted_during_a_delivery_ends_the_drain_quietly(
        wh_app, client, operator_key, session_id, receiver):
    webhook_id = hook(client, operator_key, session_id, receiver.url, events=["message.received"])
    for n in range(1, 4):
        incoming(wh_app, session_id, n)

    def delete_it(body):
        with wh_app.app_context():
            webhooks.delete(webhooks.get(session_id, webhook_id))

    receiver.on_request = delete_it
    assert drain(wh_app, webhook_id) == {"delivered": 0, "retried": 0, "dead": 0}
    assert len(receiver.requests) == 1
    with wh_app.app_context():
        assert db.session.scalars(select(WebhookDelivery)).all() == []


def test_the_order_and_lease_settings_are_read_and_checked():
    defaults = Config.from_env({})
    assert (defaults.webhook_order, defaults.webhook_lease_s) == ("chat", 6.0)
    chosen = Config.from_env({"WEBHOOK_ORDER": "Webhook", "WEBHOOK_LEASE": "2.5"})
    assert (chosen.webhook_order, chosen.webhook_lease_s) == ("webhook", 2.5)
    for variable, raw in (("WEBHOOK_ORDER", "session"), ("WEBHOOK_LEASE", "0.1"),
                          ("WEBHOOK_LEASE", "soon")):
        with pytest.raises(ConfigError, match=variable):
            Config.from_env({variable: raw})
