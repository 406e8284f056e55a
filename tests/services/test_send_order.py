"""Order per session across crashes: before a newer send goes out, the session's older sends
that a killed host or API worker left ``pending`` or ``sending`` are settled, oldest first,
asking the engine before sending any of them again."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from app.extensions import db
from app.models import Webhook, WebhookDelivery
from app.services.events import apply_all
from app.services.messages import settle_older
from engines import EngineEvent, EngineNotReady, EventKind
from engines.mock import SENT_FILE, MockEngine, MockOptions
from tests.factories import make_message, make_session, messages_of

CHAT = "15551230001@c.us"


def _ready_engine(tmp_path: Path, session_id: str) -> MockEngine:
    engine = MockEngine(session_id, tmp_path / "sessions" / session_id,
                        MockOptions(auto_scan_seconds=0))
    engine.start()
    engine.simulate_scan()
    engine.poll()
    return engine


def _sent_log(engine: MockEngine) -> list[str]:
    path = engine.profile_dir / SENT_FILE
    return [json.loads(line)["id"] for line in path.read_text().splitlines()] if path.exists() else []


def _outgoing(app: Flask, session_id: str, status: str, text: str) -> str:
    message = make_message(app, session_id, id=f"3EB0{text.upper():0>16}", from_me=True,
                           wa_message_id=None, chat_id=CHAT, recipient=CHAT, sender=None,
                           status=status, body=text)
    return message.id


def test_older_unsettled_sends_go_out_first_and_what_went_out_is_not_sent_again(
        app: Flask, tmp_path: Path) -> None:
    session = make_session(app, status="ready")
    with app.app_context():
        db.session.add(Webhook(session_id=session.id, url="http://127.0.0.1:9/hook",
                               events=["message.sent"]))
        db.session.commit()
    engine = _ready_engine(tmp_path, session.id)
    # A killed host sent "two" and died before recording it; "one" was never enqueued (an
    # API worker died after its commit); "three" was being sent when the host died.
    one = _outgoing(app, session.id, "pending", "one")
    two = _outgoing(app, session.id, "sending", "two")
    went_out = engine.send_text(CHAT, "two", message_id=two)
    three = _outgoing(app, session.id, "sending", "three")
    newer = _outgoing(app, session.id, "pending", "four")
    seqs = {m.id: m.seq for m in messages_of(app, session.id)}

    with app.app_context():
        assert settle_older(engine, session.id, seqs[newer]) == 3
    assert _sent_log(engine) == [two, one, three]  # "two" once, then the others oldest first
    rows = {m.id: m for m in messages_of(app, session.id)}
    assert [rows[m].status for m in (one, two, three, newer)] == ["sent", "sent", "sent", "pending"]
    assert rows[two].wa_message_id == went_out.message_id
    with app.app_context():
        reported = [d.data["id"] for d in db.session.scalars(
            select(WebhookDelivery).where(WebhookDelivery.event == "message.sent")
            .order_by(WebhookDelivery.seq))]
        assert reported == [one, two, three]  # one message.sent each, in session order
        # Settled already: a second call (the stale tasks redelivered) finds nothing to do.
        assert settle_older(engine, session.id, seqs[newer]) == 0
        assert settle_older(engine, session.id, seqs[newer], after=seqs[three]) == 0
    assert _sent_log(engine) == [two, one, three]


def test_only_the_sends_between_after_and_before_of_this_session_are_settled(
        app: Flask, tmp_path: Path) -> None:
    session, other = make_session(app, status="ready"), make_session(app, status="ready")
    engine = _ready_engine(tmp_path, session.id)
    below = _outgoing(app, session.id, "pending", "below")
    foreign = _outgoing(app, other.id, "pending", "foreign")
    inside = _outgoing(app, session.id, "pending", "inside")
    failed = _outgoing(app, session.id, "failed", "failed")
    newer = _outgoing(app, session.id, "pending", "newer")
    seqs = {m.id: m.seq for m in messages_of(app, session.id) + messages_of(app, other.id)}
    with app.app_context():
        assert settle_older(engine, session.id, seqs[newer], after=seqs[below]) == 1
    assert _sent_log(engine) == [inside]
    assert {m.id: m.status for m in messages_of(app, other.id)} == {foreign: "pending"}
    assert {m.id: m.status for m in messages_of(app, session.id)}[failed] == "failed"


def test_an_engine_that_is_not_ready_stops_the_newer_send_and_keeps_the_older_ones(
        app: Flask, tmp_path: Path) -> None:
    session = make_session(app, status="ready")
    engine = _ready_engine(tmp_path, session.id)
    older = _outgoing(app, session.id, "pending", "older")
    newer = _outgoing(app, session.id, "pending", "newer")
    seqs = {m.id: m.seq for m in messages_of(app, session.id)}
    engine.simulate_disconnect()
    with app.app_context(), pytest.raises(EngineNotReady):
        settle_older(engine, session.id, seqs[newer])
    assert _sent_log(engine) == []
    # Still to be sent (before "newer") once the engine is back, not failed.
    assert {m.id: m.status for m in messages_of(app, session.id)}[older] in ("pending", "sending")


def test_acks_handed_to_the_next_host_settle_a_send_its_dead_host_never_recorded(
        app: Flask, tmp_path: Path) -> None:
    session = make_session(app, status="ready")
    with app.app_context():
        db.session.add(Webhook(session_id=session.id, url="http://127.0.0.1:9/hook", events=["*"]))
        db.session.commit()
    in_flight = _outgoing(app, session.id, "sending", "flight")
    wa_id = f"true_{CHAT}_{in_flight}"
    with app.app_context():
        apply_all(session.id, [EngineEvent(EventKind.ACK, {"messageId": wa_id, "chatId": CHAT,
                                                           "ack": ack})
                               for ack in ("sent", "delivered")])
    row = {m.id: m for m in messages_of(app, session.id)}[in_flight]
    assert (row.status, row.wa_message_id) == ("delivered", wa_id)
    with app.app_context():
        events = [(d.event, d.data.get("ack")) for d in db.session.scalars(
            select(WebhookDelivery).order_by(WebhookDelivery.seq))]
    assert events == [("message.sent", None), ("message.ack", "delivered")]
