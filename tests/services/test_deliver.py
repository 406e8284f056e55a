"""The send lifecycle (app.services.messages.deliver) on real databases with the mock engine:
pending -> sending -> sent, find_sent on a redelivery, failure, and a session held elsewhere."""
from __future__ import annotations

import time

import pytest
from flask import Flask

from app.extensions import db
from app.models import Message, MessageStatus, WebhookDelivery
from app.services import messages
from engines.mock import ECHO_ID
from tests.factories import CountingEngine, make_session


def _pending(app: Flask, status: str = MessageStatus.PENDING, kind: str = "text") -> str:
    session = make_session(app, status="ready")
    message_id = messages.new_message_id()
    with app.app_context():
        db.session.add(Message(id=message_id, session_id=session.id, chat_id=ECHO_ID,
                               from_me=True, type=kind, body="hello", status=status,
                               timestamp=int(time.time())))
        db.session.commit()
    return message_id


def _row(app: Flask, message_id: str) -> Message:
    with app.app_context():
        message = db.session.query(Message).filter_by(id=message_id).one()
        db.session.expunge(message)
        return message


def test_a_pending_message_is_sent_once_and_recorded(app: Flask, engine: CountingEngine) -> None:
    message_id = _pending(app)
    with app.app_context():
        reply = messages.deliver(message_id, lambda session_id: engine)
        again = messages.deliver(message_id, lambda session_id: engine)
    row = _row(app, message_id)
    assert row.status == MessageStatus.SENT
    assert reply == again == {"ok": True, "result": {"messageId": row.wa_message_id,
                                                     "timestamp": row.timestamp}}
    assert row.wa_message_id == f"true_{ECHO_ID}_{message_id}"
    assert engine.sends == [message_id]  # the second delivery answered from the row


def test_a_redelivered_sending_message_is_found_not_sent_again(app: Flask, engine: CountingEngine) -> None:
    message_id = _pending(app)
    sent = engine.send_text(ECHO_ID, "hello", message_id=message_id)  # went out, then the host died
    with app.app_context():
        db.session.query(Message).filter_by(id=message_id).update({"status": MessageStatus.SENDING})
        db.session.commit()
        reply = messages.deliver(message_id, lambda session_id: engine)
    assert reply["result"]["messageId"] == sent.message_id
    assert engine.sends == [message_id]  # only the send before the "crash"
    assert _row(app, message_id).status == MessageStatus.SENT


def test_a_session_held_elsewhere_leaves_the_message_pending(app: Flask, engine: CountingEngine) -> None:
    message_id = _pending(app)
    with app.app_context(), pytest.raises(messages.NotHeld):
        messages.deliver(message_id, lambda session_id: None)
    assert _row(app, message_id).status == MessageStatus.PENDING
    assert engine.sends == []


def test_an_engine_that_is_not_ready_fails_the_message_with_its_reason(
        app: Flask, engine: CountingEngine) -> None:
    message_id = _pending(app)
    engine.simulate_disconnect()
    with app.app_context():
        reply = messages.deliver(message_id, lambda session_id: engine)
        failed_again = messages.deliver(message_id, lambda session_id: engine)
    assert reply == {"ok": False, "code": "SESSION_NOT_READY", "error": "Session is not ready"}
    assert failed_again["code"] == "ENGINE_ERROR"
    row = _row(app, message_id)
    assert (row.status, row.error) == (MessageStatus.FAILED, "Session is not ready")


def test_a_type_no_sender_knows_is_refused_as_unsupported(app: Flask, engine: CountingEngine) -> None:
    message_id = _pending(app, kind="hologram")
    with app.app_context():
        reply = messages.deliver(message_id, lambda session_id: engine)
    assert reply["code"] == "ENGINE_UNSUPPORTED"
    assert _row(app, message_id).status == MessageStatus.FAILED
    assert engine.sends == []


def test_a_missing_message_answers_not_found(app: Flask, engine: CountingEngine) -> None:
    with app.app_context():
        assert messages.deliver("3EB0NOPE", lambda session_id: engine)["code"] == "NOT_FOUND"


def test_statuses_are_stored_as_their_plain_values(app: Flask, engine: CountingEngine) -> None:
    message_id = _pending(app)
    with app.app_context():
        messages.deliver(message_id, lambda session_id: engine)
        raw = db.session.execute(db.text("SELECT status FROM messages WHERE id = :id"),
                                 {"id": message_id}).scalar_one()
        assert type(raw) is str and raw == "sent"
        assert db.session.query(WebhookDelivery).count() == 0  # no webhook: nothing queued
