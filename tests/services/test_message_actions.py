"""The lifecycle of message actions that are not sends (app.services.message_actions.perform)
and what actions and engine events store on a message (app.services.message_events), on
real databases with the mock engine (issue 13.1)."""
from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask

from app.common.names import session_queue
from app.extensions import db
from app.models import (
    RUNNING,
    Message,
    MessageAction,
    MessageStatus,
    Session,
    WebhookDelivery,
    utcnow,
)
from app.services import dispatch, events, message_actions, messages
from app.services.webhooks import create as create_webhook
from engines import Engine
from engines.base import EngineEvent, EventKind
from engines.mock import ECHO_ID, MockOptions
from tests.factories import CountingEngine, make_session

PEER = "15557654321@c.us"


def _setup(app: Flask, chat: str = ECHO_ID) -> tuple[str, str, str]:
    """A ready session with one sent message and a webhook for every event:
    (session id, our message id, its WhatsApp id)."""
    session = make_session(app, status="ready", phone="15551112222")
    message_id = messages.new_message_id()
    wa_id = f"true_{chat}_{message_id}"
    with app.app_context():
        db.session.add(Message(id=message_id, session_id=session.id, chat_id=chat, from_me=True,
                               type="text", body="hello", status=MessageStatus.SENT,
                               wa_message_id=wa_id, timestamp=int(time.time())))
        db.session.commit()
        app.config["OPENWA"].webhook_allow_private = True
        create_webhook(session.id, {"url": "http://127.0.0.1:9/hook", "events": ["*"]})
        db.session.commit()
    return session.id, message_id, wa_id


def _action(app: Flask, session_id: str, action: str, target: str, chat: str = ECHO_ID,
            **args: Any) -> str:
    with app.app_context():
        row = MessageAction(id="ACT" + str(time.monotonic_ns()), session_id=session_id,
                            action=action, chat_id=chat, target=target, args=args)
        db.session.add(row)
        db.session.commit()
        return row.id


def _message(app: Flask, message_id: str) -> Message:
    with app.app_context():
        message = db.session.query(Message).filter_by(id=message_id).one()
        db.session.expunge(message)
        return message


def _events(app: Flask, name: str) -> list[dict[str, Any]]:
    with app.app_context():
        return [d.data for d in db.session.query(WebhookDelivery).filter_by(event=name)
                .order_by(WebhookDelivery.seq)]


def test_an_action_is_carried_out_once_and_answers_again_on_redelivery(
        app: Flask, engine: CountingEngine) -> None:
    session_id, message_id, wa_id = _setup(app)
    action_id = _action(app, session_id, "react", wa_id, emoji="👍")
    with app.app_context():
        first = message_actions.perform(action_id, lambda _: engine)
        again = message_actions.perform(action_id, lambda _: engine)
    assert first == again == {"ok": True, "result": {"success": True}}
    assert engine.reacted == [(wa_id, "👍")]  # the redelivery answered from the row
    assert _message(app, message_id).reactions == {"15551112222@c.us": "👍"}
    (event,) = _events(app, "message.reaction")
    assert event["id"] == message_id and event["messageId"] == wa_id and event["emoji"] == "👍"


def test_a_refused_action_is_failed_once_with_the_engines_code(
        app: Flask, engine: CountingEngine) -> None:
    session_id, _, _ = _setup(app)
    incoming = f"false_{ECHO_ID}_3A0001"
    action_id = _action(app, session_id, "edit", incoming, text="changed")
    with app.app_context():
        reply = message_actions.perform(action_id, lambda _: engine)
        again = message_actions.perform(action_id, lambda _: engine)
        row = db.session.get(MessageAction, action_id)
        assert row is not None and row.status == "failed"
    assert reply == again
    assert reply["ok"] is False and reply["code"] == "ENGINE_ERROR"
    assert "own messages" in reply["error"]


def test_an_action_for_a_session_held_elsewhere_is_not_carried_out(
        app: Flask, engine: CountingEngine) -> None:
    session_id, _, wa_id = _setup(app)
    action_id = _action(app, session_id, "react", wa_id, emoji="👍")
    with app.app_context(), pytest.raises(messages.NotHeld):
        message_actions.perform(action_id, lambda _: None)
    assert engine.reacted == []


def test_an_engine_not_ready_is_session_not_ready(app: Flask, engine: CountingEngine) -> None:
    session_id, _, wa_id = _setup(app)
    engine.simulate_disconnect()
    action_id = _action(app, session_id, "star", wa_id)
    with app.app_context():
        reply = message_actions.perform(action_id, lambda _: engine)
    assert reply["code"] == "SESSION_NOT_READY"


def test_an_unsupported_action_is_engine_unsupported(app: Flask, engine: CountingEngine) -> None:
    session_id, _, wa_id = _setup(app)
    action_id = _action(app, session_id, "star", wa_id)

    class Bare(CountingEngine):
        star_message = Engine.star_message  # the protocol's own: unsupported

    bare = Bare("s2", engine.profile_dir.parent / "s2", MockOptions())
    bare.start()
    bare.simulate_scan()
    with app.app_context():
        reply = message_actions.perform(action_id, lambda _: bare)
    assert reply["code"] == "ENGINE_UNSUPPORTED"


def test_an_event_changes_the_stored_message_and_is_reported_once(app: Flask) -> None:
    session_id, message_id, wa_id = _setup(app, chat=PEER)
    reaction = EngineEvent(EventKind.REACTION, {"messageId": wa_id, "chatId": PEER, "from": PEER,
                                                "emoji": "❤️"})
    edited = EngineEvent(EventKind.EDITED, {"messageId": wa_id, "chatId": PEER, "body": "hi!"})
    with app.app_context():
        events.apply_all(session_id, [reaction, edited])
        events.apply_all(session_id, [reaction, edited])  # drained twice after a crash
    stored = _message(app, message_id)
    assert stored.reactions == {PEER: "❤️"} and stored.body == "hi!" and stored.edited_at
    assert len(_events(app, "message.reaction")) == 1
    (edit,) = _events(app, "message.edited")
    assert edit["previousBody"] == "hello" and edit["id"] == message_id
    with app.app_context():
        events.apply(session_id, EngineEvent(EventKind.REACTION, {
            "messageId": wa_id, "chatId": PEER, "from": PEER, "emoji": ""}))
        events.apply(session_id, EngineEvent(EventKind.REVOKED, {
            "messageId": wa_id, "chatId": PEER}))
    stored = _message(app, message_id)
    assert stored.reactions is None and stored.deleted == "everyone" and stored.body is None
    assert [e["emoji"] for e in _events(app, "message.reaction")] == ["❤️", ""]
    assert len(_events(app, "message.revoked")) == 1


def test_a_vote_is_stored_on_its_poll_and_names_it(app: Flask) -> None:
    session_id, message_id, wa_id = _setup(app, chat=PEER)
    with app.app_context():
        db.session.query(Message).filter_by(id=message_id).update({
            "type": "poll", "content": {"name": "Q", "options": ["a", "b"], "votes": {}}})
        db.session.commit()
        vote = {"messageId": wa_id, "chatId": PEER, "from": PEER, "selectedOptions": ["b"]}
        events.apply(session_id, EngineEvent(EventKind.POLL_VOTE, vote))
        events.apply(session_id, EngineEvent(EventKind.POLL_VOTE, vote))
    assert _message(app, message_id).content == {"name": "Q", "options": ["a", "b"],
                                                 "votes": {PEER: ["b"]}}
    (event,) = _events(app, "poll.vote")
    assert event["id"] == message_id and event["poll"] == {"name": "Q", "votes": {PEER: ["b"]}}


def test_an_event_about_a_message_not_stored_still_names_it(app: Flask) -> None:
    session_id, _, _ = _setup(app)
    with app.app_context():
        events.apply(session_id, EngineEvent(EventKind.REVOKED, {
            "messageId": f"false_{PEER}_OLD", "chatId": PEER}))
    (event,) = _events(app, "message.revoked")
    assert event["id"] is None and event["messageId"] == f"false_{PEER}_OLD"


def test_the_sweep_requeues_lost_actions_and_prune_forgets_settled_ones(app: Flask) -> None:
    session_id, _, wa_id = _setup(app)
    lost = _action(app, session_id, "star", wa_id)
    done = _action(app, session_id, "unstar", wa_id)
    with app.app_context():
        old = utcnow() - timedelta(days=2)
        db.session.query(MessageAction).filter_by(id=lost).update({"updated_at": old})
        db.session.query(MessageAction).filter_by(id=done).update(
            {"status": "done", "created_at": old})
        db.session.commit()
        # Not driven by a live host: nothing to requeue yet.
        assert message_actions.resend_stale(app.config["OPENWA"]) == 0
        db.session.query(Session).filter_by(id=session_id).update(
            {"desired_state": RUNNING, "lease_expires_at": utcnow() + timedelta(minutes=1)})
        db.session.commit()
        try:
            assert message_actions.resend_stale(app.config["OPENWA"]) == 1
            requeued = db.session.get(MessageAction, lost)
            assert requeued is not None and requeued.updated_at > old
        finally:
            dispatch.purge_queue(session_queue(session_id))
        assert message_actions.prune() == 1
        db.session.commit()
        assert db.session.get(MessageAction, done) is None
        assert db.session.get(MessageAction, lost) is not None  # pending: kept
