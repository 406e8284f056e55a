"""Bulk-send routes without workers: validation, the recorded batch and its one task on the
`batches` queue, Idempotency-Key, progress, cancel and batch.completed. The feeding itself
runs across real processes in tests/integration/test_batches_live.py."""
from __future__ import annotations

import json

import pytest
import redis as redis_lib
from sqlalchemy import select

from app.extensions import db
from app.models import Batch, BatchItem, WebhookDelivery
from app.services import batches
from tests.conftest import auth
from tests.factories import assert_error, assert_validation_error, make_session, messages_of

CHAT = "6281234567890@c.us"


def bulk_url(session) -> str:
    return f"/api/sessions/{session.id}/messages/send-bulk"


def batch_url(session, batch_id: str, suffix: str = "") -> str:
    return f"/api/sessions/{session.id}/messages/batch/{batch_id}{suffix}"


def items(n: int, chat: str = CHAT) -> list[dict]:
    return [{"chatId": chat, "type": "text", "content": {"text": f"item {i}"}} for i in range(n)]


@pytest.fixture
def ready(app):
    return make_session(app, "bulk-ready", status="ready", desired_state="running",
                        phone="6289999999999")


def batch_tasks(config) -> list[dict]:
    """The task messages waiting on the `batches` queue."""
    client = redis_lib.Redis.from_url(config.redis_url)
    return [json.loads(raw) for raw in client.lrange("batches", 0, -1)]


def test_send_bulk_records_the_batch_and_enqueues_one_task_on_the_batches_queue(
        app, client, operator_key, ready, config):
    body = {"messages": items(3), "options": {"delayBetweenMessages": 0, "stopOnError": True}}
    reply = client.post(bulk_url(ready), json=body, headers=auth(operator_key))
    assert reply.status_code == 202, reply.get_json()
    accepted = reply.get_json()
    assert set(accepted) == {"batchId", "status", "totalMessages", "statusUrl"}
    assert accepted["status"] == "queued" and accepted["totalMessages"] == 3
    assert accepted["statusUrl"] == f"/api/sessions/{ready.id}/messages/batch/{accepted['batchId']}"

    queued = batch_tasks(config)
    assert [(t["headers"]["task"], t["headers"]["id"], t["headers"]["argsrepr"]) for t in queued] == [
        ("tasks.batches.run_batch", f"batch-{accepted['batchId']}", repr([accepted["batchId"]]))]
    with app.app_context():
        batch = db.session.get(Batch, accepted["batchId"])
        assert (batch.delay_ms, batch.stop_on_error, batch.randomize_delay) == (0, True, False)
        rows = db.session.scalars(select(BatchItem).where(BatchItem.batch_id == batch.id)
                                  .order_by(BatchItem.position)).all()
        assert [(r.position, r.chat_id, r.type, r.content["text"], r.status) for r in rows] == [
            (i, CHAT, "text", f"item {i}", "pending") for i in range(3)]
    assert messages_of(app, ready.id) == []  # the task makes the messages, one at a time

    status = client.get(accepted["statusUrl"], headers=auth(operator_key))
    assert status.status_code == 200
    view = status.get_json()
    assert view["status"] == "queued"
    assert view["progress"] == {"sent": 0, "failed": 0, "pending": 3, "cancelled": 0}
    assert [r["status"] for r in view["results"]] == ["pending"] * 3
    assert [r["index"] for r in view["results"]] == [0, 1, 2]


def test_options_default_to_a_3_second_delay(app, client, operator_key, ready):
    reply = client.post(bulk_url(ready), json={"messages": items(1)}, headers=auth(operator_key))
    assert reply.status_code == 202
    with app.app_context():
        batch = db.session.get(Batch, reply.get_json()["batchId"])
        assert (batch.delay_ms, batch.stop_on_error, batch.randomize_delay) == (3000, False, False)


@pytest.mark.parametrize("body, fields", [
    ({"messages": []}, ["messages"]),
    ({"messages": items(101)}, ["messages"]),
    ({}, ["messages"]),
    ({"messages": items(1), "extra": 1}, ["extra"]),
    ({"messages": [{"chatId": CHAT, "type": "text", "content": {"text": ""}}]},
     ["messages.0.content.text"]),
    ({"messages": [{"chatId": CHAT, "type": "text", "content": {"text": "a", "nope": 1}}]},
     ["messages.0.content.nope"]),
    ({"messages": [{"chatId": "not a number", "type": "text", "content": {"text": "a"}}]},
     ["messages.0.chatId"]),
    ({"messages": [{"chatId": CHAT, "type": "text"}]}, ["messages.0.content"]),
    ({"messages": [*items(2), {"chatId": CHAT, "type": "text", "content": {"text": "a"},
                               "chatID": CHAT}]}, ["messages.2.chatID"]),
    ({"messages": items(1), "options": {"delayBetweenMessages": -1}},
     ["options.delayBetweenMessages"]),
    ({"messages": items(1), "options": {"delayBetweenMessages": "100"}},
     ["options.delayBetweenMessages"]),
    ({"messages": items(1), "options": {"randomizeDelay": 1}}, ["options.randomizeDelay"]),
    ({"messages": items(1), "options": {"unknown": True}}, ["options.unknown"]),
])
def test_invalid_bodies_are_400_naming_the_field_and_record_nothing(
        app, client, operator_key, ready, body, fields):
    reply = client.post(bulk_url(ready), json=body, headers=auth(operator_key))
    assert_validation_error(reply, *fields)
    with app.app_context():
        assert db.session.scalar(select(db.func.count()).select_from(Batch)) == 0


def test_an_unknown_item_type_is_400_naming_it(client, operator_key, ready):
    body = {"messages": [*items(1), {"chatId": CHAT, "type": "hologram", "content": {"x": 1}}]}
    reply = client.post(bulk_url(ready), json=body, headers=auth(operator_key))
    lines = assert_validation_error(reply, "messages.1.type")
    assert any("hologram" in line and "text" in line for line in lines), lines


@pytest.mark.parametrize("status", ["created", "qr_ready", "disconnected", "failed"])
def test_a_session_that_is_not_ready_is_409(app, client, operator_key, status):
    session = make_session(app, status=status)
    reply = client.post(bulk_url(session), json={"messages": items(2)}, headers=auth(operator_key))
    assert_error(reply, 409, "SESSION_NOT_READY")
    with app.app_context():
        assert db.session.scalar(select(db.func.count()).select_from(Batch)) == 0


def test_idempotency_key_returns_the_first_batch_and_refuses_another_body(
        app, client, operator_key, ready, config):
    headers = {**auth(operator_key), "Idempotency-Key": "bulk-1"}
    first = client.post(bulk_url(ready), json={"messages": items(2)}, headers=headers)
    again = client.post(bulk_url(ready), json={"messages": items(2)}, headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.get_json()["batchId"] == first.get_json()["batchId"]
    assert len(batch_tasks(config)) == 1
    other = client.post(bulk_url(ready), json={"messages": items(3)}, headers=headers)
    assert_error(other, 409, "IDEMPOTENCY_KEY_REUSED")
    with app.app_context():
        assert db.session.scalar(select(db.func.count()).select_from(Batch)) == 1


def test_roles_and_scope(app, client, viewer_key, make_key, ready):
    assert_error(client.post(bulk_url(ready), json={"messages": items(1)}, headers=auth(viewer_key)),
                 403)
    outsider = make_key("operator", allowed_sessions=["someone-else"])
    assert_error(client.post(bulk_url(ready), json={"messages": items(1)}, headers=auth(outsider)),
                 403)


def test_an_unknown_batch_is_404_also_from_another_session(app, client, operator_key, ready):
    assert_error(client.get(batch_url(ready, "nope"), headers=auth(operator_key)), 404)
    assert_error(client.post(batch_url(ready, "nope", "/cancel"), headers=auth(operator_key)), 404)
    batch_id = client.post(bulk_url(ready), json={"messages": items(1)},
                           headers=auth(operator_key)).get_json()["batchId"]
    other = make_session(app, status="ready")
    assert_error(client.get(batch_url(other, batch_id), headers=auth(operator_key)), 404)


def test_cancel_stops_the_items_not_enqueued_and_reports_batch_completed(
        app, client, admin_key, operator_key, ready):
    app.config["OPENWA"].webhook_allow_private = True
    hook = client.post(f"/api/sessions/{ready.id}/webhooks", headers=auth(admin_key),
                       json={"url": "http://127.0.0.1:9/hook", "events": ["batch.completed"]})
    assert hook.status_code == 201, hook.get_json()
    batch_id = client.post(bulk_url(ready), json={"messages": items(4)},
                           headers=auth(operator_key)).get_json()["batchId"]
    reply = client.post(batch_url(ready, batch_id, "/cancel"), headers=auth(operator_key))
    assert reply.status_code == 200, reply.get_json()
    view = reply.get_json()
    assert view["status"] == "cancelled"
    assert view["progress"] == {"sent": 0, "failed": 0, "pending": 0, "cancelled": 4}
    assert {r["status"] for r in view["results"]} == {"cancelled"}
    # Twice is the same answer; nothing is reported twice.
    assert client.post(batch_url(ready, batch_id, "/cancel"),
                       headers=auth(operator_key)).get_json()["status"] == "cancelled"
    with app.app_context():
        events = db.session.scalars(select(WebhookDelivery)).all()
        assert [(e.event, e.data["batchId"], e.data["status"]) for e in events] == [
            ("batch.completed", batch_id, "cancelled")]
        assert events[0].data["progress"]["cancelled"] == 4
        # A task that comes afterwards finds the batch over and sends nothing.
        assert batches.run(batch_id, lambda seconds: None)["outcome"] == "cancelled"
    assert messages_of(app, ready.id) == []


def test_a_finished_batch_cannot_be_cancelled(app, client, operator_key, ready):
    batch_id = client.post(bulk_url(ready), json={"messages": items(1)},
                           headers=auth(operator_key)).get_json()["batchId"]
    with app.app_context():
        db.session.get(Batch, batch_id).status = "completed"
        db.session.commit()
    assert_error(client.post(batch_url(ready, batch_id, "/cancel"), headers=auth(operator_key)),
                 409, "BATCH_FINISHED")


def test_batch_and_send_bulk_are_never_message_ids(client, viewer_key, ready):
    assert_error(client.get(f"/api/sessions/{ready.id}/messages/send-bulk",
                            headers=auth(viewer_key)), 405)
    assert_error(client.get(f"/api/sessions/{ready.id}/messages/batch",
                            headers=auth(viewer_key)), 404)


@pytest.mark.parametrize("batch_id", ["%00", "a" * 300, "%F0%9F%98%80", "x%0Ay",
                                      "00000000-0000-0000-0000-000000000000"])
def test_odd_batch_ids_are_404(client, operator_key, ready, batch_id):
    assert_error(client.get(batch_url(ready, batch_id), headers=auth(operator_key)), 404)
    assert_error(client.post(batch_url(ready, batch_id, "/cancel"), headers=auth(operator_key)),
                 404)
