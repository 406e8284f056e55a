"""Bulk sends across real processes: API → `batches` queue → worker (the batch task) →
session queue → session host → mock engine → stored history, batch.completed to a webhook.

A worker killed mid-batch: the batch resumes and every item is sent once, in order."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.extensions import celery_app, db
from app.models import Message, WebhookDelivery
from app.services import batches, messages
from tests.integration.conftest import wait_for
from tests.webhooks.receiver import Receiver

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CHAT = "15551112222@c.us"
#: The worker's broker visibility timeout: a killed worker's batch task comes back this soon.
VISIBILITY = "4"


@pytest.fixture
def bulk(platform):
    config = platform.app.config["OPENWA"]
    config.webhook_allow_private = True
    platform.env.update({"WEBHOOK_ALLOW_PRIVATE": "true", "WEBHOOK_RETRY_DELAY": "200",
                         "WEBHOOK_SWEEP_INTERVAL": "1"})
    receiver = Receiver().start()
    platform.start_host()
    session = platform.create_ready_session("bulk")
    reply = platform.api("POST", "/sessions/bulk/webhooks",
                         json={"url": receiver.url, "events": ["batch.completed", "message.sent"]})
    assert reply.status_code == 201, reply.get_json()
    yield platform, receiver, session
    try:
        receiver.stop()
    except Exception:
        pass


def start_worker(platform):
    return platform.start("worker", BROKER_VISIBILITY_TIMEOUT=VISIBILITY,
                          BROKER_RESTORE_INTERVAL="1", BROKER_RESTORE_THROTTLE="1")


def send_bulk(platform, n: int, **options) -> str:
    body = {"messages": [{"chatId": CHAT, "type": "text", "content": {"text": f"item {i}"}}
                         for i in range(n)], "options": options}
    reply = platform.api("POST", "/sessions/bulk/messages/send-bulk", json=body)
    assert reply.status_code == 202, reply.get_json()
    return reply.get_json()["batchId"]  # type: ignore[no-any-return]


def status(platform, batch_id: str) -> dict:
    reply = platform.api("GET", f"/sessions/bulk/messages/batch/{batch_id}")
    assert reply.status_code == 200, reply.get_json()
    body = reply.get_json()
    progress = body["progress"]
    # Every item is counted exactly once, whenever we look.
    assert sum(progress.values()) == body["totalMessages"] == len(body["results"])
    return body  # type: ignore[no-any-return]


def engine_sent(platform, session) -> list[dict]:
    path = platform.app.config["OPENWA"].session_data_path / session["id"] / "sent.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def outgoing(platform, session) -> list[Message]:
    with platform.app.app_context():
        rows = list(db.session.scalars(select(Message).where(
            Message.session_id == session["id"], Message.from_me.is_(True)).order_by(Message.seq)))
        for row in rows:
            db.session.expunge(row)
        return rows


def completed_events(receiver, batch_id: str) -> list[dict]:
    return [json.loads(r["body"]) for r in receiver.requests
            if json.loads(r["body"])["event"] == "batch.completed"
            and json.loads(r["body"])["data"]["batchId"] == batch_id]


def test_fifty_items_survive_a_killed_worker_each_sent_once_in_order(bulk):
    platform, receiver, session = bulk
    worker = start_worker(platform)
    batch_id = send_bulk(platform, 50, delayBetweenMessages=150)
    ids = [messages.batch_message_id(batch_id, i) for i in range(50)]

    # While it runs, the batch task is an active task of the worker (what Flower shows).
    def running_task():
        active = celery_app.control.inspect(timeout=1.0).active() or {}
        return [t for tasks in active.values() for t in tasks
                if t["name"] == "tasks.batches.run_batch" and batch_id in str(t["args"])]

    assert wait_for(running_task, 30, 0.2, "the batch task among the worker's active tasks")
    seen = []

    def some_sent():
        body = status(platform, batch_id)
        seen.append(body["progress"]["sent"])
        return body["status"] == "running" and 10 <= body["progress"]["sent"] < 40

    wait_for(some_sent, 60, 0.05, "a third of the batch to be sent")
    worker.kill()  # kill -9 mid-batch
    at_kill = status(platform, batch_id)["progress"]["sent"]
    assert at_kill < 50
    start_worker(platform)

    def done():
        body = status(platform, batch_id)
        seen.append(body["progress"]["sent"])
        return body if body["status"] not in ("queued", "running") else None

    body = wait_for(done, 120, 0.1, "the batch to complete after the kill")
    assert body["status"] == "completed", body
    assert body["progress"] == {"sent": 50, "failed": 0, "pending": 0, "cancelled": 0}
    assert [r["id"] for r in body["results"]] == ids
    assert all(r["messageId"] == f"true_{CHAT}_{i}" for r, i in zip(body["results"], ids))
    assert seen == sorted(seen)  # progress only moves forward

    # Each item is one message, sent once, in order: in the engine and in the history.
    assert [line["id"] for line in engine_sent(platform, session)] == ids
    rows = outgoing(platform, session)
    assert [(r.id, r.body) for r in rows] == [(ids[i], f"item {i}") for i in range(50)]
    assert {r.status for r in rows} <= {"sent", "delivered", "read"}

    events = wait_for(lambda: completed_events(receiver, batch_id), 30, 0.1, "batch.completed")
    assert len(events) == 1
    assert events[0]["data"]["status"] == "completed"
    assert events[0]["data"]["progress"]["sent"] == 50


def test_the_delay_separates_the_sends(bulk):
    platform, _, session = bulk
    start_worker(platform)
    batch_id = send_bulk(platform, 3, delayBetweenMessages=1000)
    wait_for(lambda: status(platform, batch_id)["status"] == "completed", 60, 0.1, "the batch")
    ids = [messages.batch_message_id(batch_id, i) for i in range(3)]
    assert [r.id for r in outgoing(platform, session)] == ids
    # When each was marked sent (its message.sent event, written in that transaction): the
    # next one went out only after the delay that followed the one before it.
    with platform.app.app_context():
        sent_at = {d.data["id"]: d.occurred_at for d in db.session.scalars(
            select(WebhookDelivery).where(WebhookDelivery.event == "message.sent"))}
    times = [sent_at[i] for i in ids]
    gaps = [later - earlier for earlier, later in zip(times, times[1:])]
    assert all(gap >= timedelta(seconds=1.0) for gap in gaps), gaps


def test_cancel_stops_what_is_not_sent_yet(bulk):
    platform, receiver, session = bulk
    start_worker(platform)
    batch_id = send_bulk(platform, 20, delayBetweenMessages=400)
    wait_for(lambda: status(platform, batch_id)["progress"]["sent"] >= 2, 60, 0.05, "two sends")
    reply = platform.api("POST", f"/sessions/bulk/messages/batch/{batch_id}/cancel")
    assert reply.status_code == 200, reply.get_json()
    assert reply.get_json()["status"] == "cancelled"

    # The batch task notices and ends; whatever was on its way settles, nothing more goes.
    result = celery_app.AsyncResult(batches.task_id(batch_id))
    assert wait_for(lambda: result.ready() and result.get(timeout=1)["outcome"] == "cancelled",
                    30, 0.1, "the batch task to stop")
    body = wait_for(lambda: (b := status(platform, batch_id))["progress"]["pending"] == 0 and b,
                    30, 0.1, "the item on its way to settle")
    sent = body["progress"]["sent"]
    assert 2 <= sent <= 4
    assert body["progress"]["cancelled"] == 20 - sent
    assert [r["status"] for r in body["results"][sent:]] == ["cancelled"] * (20 - sent)
    assert len(outgoing(platform, session)) == sent
    assert len(engine_sent(platform, session)) == sent

    events = wait_for(lambda: completed_events(receiver, batch_id), 30, 0.1, "batch.completed")
    assert [e["data"]["status"] for e in events] == ["cancelled"]


def test_a_killed_session_host_mid_batch_delays_it_and_sends_nothing_twice(platform):
    host = platform.start_host()
    session = platform.create_ready_session("bulk")
    start_worker(platform)
    batch_id = send_bulk(platform, 30, delayBetweenMessages=100)
    ids = [messages.batch_message_id(batch_id, i) for i in range(30)]
    wait_for(lambda: status(platform, batch_id)["progress"]["sent"] >= 8, 60, 0.05, "8 sends")
    host.kill()  # kill -9 of the session host mid-batch: the batch waits for the next one
    platform.start_host()  # same name: takes its sessions back from their profiles

    def done():
        body = status(platform, batch_id)
        return body if body["status"] not in ("queued", "running") else None

    body = wait_for(done, 120, 0.1, "the batch to complete after the host came back")
    assert body["status"] == "completed", body
    assert body["progress"] == {"sent": 30, "failed": 0, "pending": 0, "cancelled": 0}
    assert [line["id"] for line in engine_sent(platform, session)] == ids
    assert [r.id for r in outgoing(platform, session)] == ids
