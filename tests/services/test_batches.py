"""The batch task's decisions without a session host: items already settled (as a resumed
run finds them), stopOnError, a batch another run holds, a session that is not ready."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
import redis as redis_lib
from sqlalchemy import select

from app.extensions import db
from app.models import Batch, BatchItem, Message, WebhookDelivery, utcnow
from app.services import batches, messages
from tests.conftest import auth
from tests.factories import make_session, update_session

CHAT = "6281234567890@c.us"


@pytest.fixture
def ready(app):
    session = make_session(app, "svc-ready", status="ready", desired_state="running",
                           phone="6289999999999")
    app.config["OPENWA"].webhook_allow_private = True
    return session


def new_batch(client, key, session, n: int, **options) -> str:
    body = {"messages": [{"chatId": CHAT, "type": "text", "content": {"text": f"item {i}"}}
                         for i in range(n)], "options": {"delayBetweenMessages": 0, **options}}
    reply = client.post(f"/api/sessions/{session.id}/messages/send-bulk", json=body,
                        headers=auth(key))
    assert reply.status_code == 202, reply.get_json()
    return reply.get_json()["batchId"]  # type: ignore[no-any-return]


def settle(app, session, batch_id: str, outcomes: dict[int, str]) -> None:
    """Items that a run before this one already made messages of, with their outcome."""
    with app.app_context():
        for position, status in outcomes.items():
            message_id = messages.batch_message_id(batch_id, position)
            db.session.add(Message(id=message_id, session_id=session.id, chat_id=CHAT,
                                   from_me=True, type="text", body=f"item {position}",
                                   status=status, timestamp=1,
                                   error="refused" if status == "failed" else None,
                                   wa_message_id=f"true_{CHAT}_{message_id}"
                                   if status != "failed" else None))
            item = db.session.get(BatchItem, (batch_id, position))
            item.status, item.message_id = "queued", message_id
        db.session.commit()


def run(app, batch_id: str) -> tuple[dict, list[float]]:
    later: list[float] = []
    with app.app_context():
        return batches.run(batch_id, later.append), later


def completed(app, batch_id: str) -> list[dict]:
    with app.app_context():
        return [d.data for d in db.session.scalars(
            select(WebhookDelivery).where(WebhookDelivery.event == "batch.completed"))
                if d.data["batchId"] == batch_id]


@pytest.fixture
def hooked(client, admin_key, ready):
    reply = client.post(f"/api/sessions/{ready.id}/webhooks", headers=auth(admin_key),
                        json={"url": "http://127.0.0.1:9/hook", "events": ["batch.completed"]})
    assert reply.status_code == 201
    return ready


def test_stop_on_error_ends_the_batch_failed_and_cancels_the_rest(app, client, operator_key, hooked):
    batch_id = new_batch(client, operator_key, hooked, 4, stopOnError=True)
    settle(app, hooked, batch_id, {0: "sent", 1: "failed"})
    outcome, later = run(app, batch_id)
    assert outcome["outcome"] == "failed" and later == []
    view = client.get(f"/api/sessions/{hooked.id}/messages/batch/{batch_id}",
                      headers=auth(operator_key)).get_json()
    assert view["status"] == "failed"
    assert view["progress"] == {"sent": 1, "failed": 1, "pending": 0, "cancelled": 2}
    assert [r["status"] for r in view["results"]] == ["sent", "failed", "cancelled", "cancelled"]
    assert view["results"][1]["error"] == "refused"
    assert [e["status"] for e in completed(app, batch_id)] == ["failed"]


def test_without_stop_on_error_a_failed_item_does_not_fail_the_batch(
        app, client, operator_key, hooked):
    batch_id = new_batch(client, operator_key, hooked, 3)
    settle(app, hooked, batch_id, {0: "delivered", 1: "failed", 2: "read"})
    outcome, _ = run(app, batch_id)
    assert outcome["outcome"] == "completed"
    events = completed(app, batch_id)
    assert [(e["status"], e["progress"]) for e in events] == [
        ("completed", {"sent": 2, "failed": 1, "pending": 0, "cancelled": 0})]
    # A later copy of the task finds it over: nothing is sent or reported again.
    assert run(app, batch_id)[0]["outcome"] == "completed"
    assert len(completed(app, batch_id)) == 1


def test_a_batch_held_by_a_live_run_is_left_to_it_and_checked_again_later(
        app, client, operator_key, ready):
    batch_id = new_batch(client, operator_key, ready, 2)
    with app.app_context():
        batch = db.session.get(Batch, batch_id)
        batch.status, batch.claim_token = "running", "someone-else"
        batch.claimed_until = utcnow() + timedelta(seconds=30)
        db.session.commit()
    outcome, later = run(app, batch_id)
    assert outcome["outcome"] == "held-elsewhere" and later == [batches.CLAIM_TTL]
    with app.app_context():
        assert db.session.get(Batch, batch_id).claim_token == "someone-else"
        assert db.session.scalar(select(db.func.count()).select_from(Message)) == 0


def test_a_session_that_is_not_ready_pauses_the_batch(app, client, operator_key, ready):
    batch_id = new_batch(client, operator_key, ready, 2)
    update_session(app, ready.id, status="disconnected")
    outcome, later = run(app, batch_id)
    assert outcome["outcome"] == "paused" and later == [batches.PAUSE_SECONDS]
    with app.app_context():
        batch = db.session.get(Batch, batch_id)
        assert batch.status == "running" and batch.claim_token is None  # free for the next run
        items = db.session.scalars(select(BatchItem.status).where(BatchItem.batch_id == batch_id))
        assert list(items) == ["pending", "pending"]
        assert db.session.scalar(select(db.func.count()).select_from(Message)) == 0


def test_the_sweep_enqueues_again_an_open_batch_whose_task_was_lost(
        app, client, operator_key, ready, config):
    stale = new_batch(client, operator_key, ready, 1)
    new_batch(client, operator_key, ready, 1)
    done = new_batch(client, operator_key, ready, 1)
    broker = redis_lib.Redis.from_url(config.redis_url)
    broker.delete("batches")  # the broker lost them
    with app.app_context():
        old = utcnow() - timedelta(seconds=batches.STALE_AFTER + 5)
        db.session.get(Batch, stale).status = "running"
        db.session.get(Batch, done).status = "completed"
        db.session.commit()
        db.session.execute(db.update(Batch).where(Batch.id.in_((stale, done))).values(updated_at=old))
        db.session.commit()
        assert batches.resume_stale() == 1
        assert batches.resume_stale() == 0  # touched: not again at the next sweep
    queued = [json.loads(raw)["headers"]["id"] for raw in broker.lrange("batches", 0, -1)]
    assert queued == [batches.task_id(stale)]  # not the fresh one, nor the completed one


def test_a_long_delay_is_waited_out_as_a_continuation_holding_no_thread(
        app, client, operator_key, ready):
    batch_id = new_batch(client, operator_key, ready, 3, delayBetweenMessages=60_000)
    settle(app, ready, batch_id, {0: "sent"})
    with app.app_context():
        db.session.execute(db.update(Batch).where(Batch.id == batch_id)
                           .values(next_at=utcnow() + timedelta(seconds=20)))
        db.session.commit()
    outcome, later = run(app, batch_id)
    assert outcome["outcome"] == "waiting"
    assert len(later) == 1 and 15 < later[0] <= 20  # due when the delay ends, not before
    with app.app_context():
        batch = db.session.get(Batch, batch_id)
        assert batch.status == "running" and batch.claim_token is None
        items = db.session.scalars(select(BatchItem.status).where(BatchItem.batch_id == batch_id)
                                   .order_by(BatchItem.position))
        assert list(items) == ["queued", "pending", "pending"]
