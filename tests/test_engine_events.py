"""What an engine reports, applied to the database by the session host: a burst of events in
one transaction, acks that only move forward (each reported once, in order), a malformed
event skipped, and nothing lost while the database is unreachable."""
from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from app import create_app
from app.extensions import db
from app.models import Message, Session, WebhookDelivery
from app.services import events
from engines import EngineEvent, EventKind, create_engine
from engines.mock import MockOptions
from tasks.host import Held, HostRuntime
from tests.conftest import make_config
from tests.factories import make_message, make_session

CHAT = "15550001111@c.us"


@pytest.fixture
def session(app):
    return make_session(app, "events", status="ready", desired_state="running")


@pytest.fixture
def hooked(app, session):
    """A webhook for every event: the outbox shows what was reported, in order."""
    from app.models import Webhook

    with app.app_context():
        db.session.add(Webhook(session_id=session.id, url="https://hooks.example.com/in", events=["*"]))
        db.session.commit()
    return session


def ack(wa_id: str, level: str) -> EngineEvent:
    return EngineEvent(EventKind.ACK, {"messageId": wa_id, "chatId": CHAT, "ack": level})


def incoming(n: int, **extra: object) -> EngineEvent:
    data = {"id": f"false_{CHAT}_{n:06d}", "chatId": CHAT, "from": CHAT, "fromMe": False,
            "type": "text", "body": f"hello {n}", "timestamp": 1_700_000_000 + n, **extra}
    return EngineEvent(EventKind.MESSAGE, data)


def outbox(app) -> list[tuple[str, dict]]:
    with app.app_context():
        return [(d.event, d.data) for d in
                db.session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.seq))]


def statuses(app, session_id: str) -> dict[str, str]:
    with app.app_context():
        return {m.wa_message_id: m.status for m in db.session.scalars(
            select(Message).where(Message.session_id == session_id))}


def test_a_burst_of_acks_moves_each_message_forward_and_reports_each_step_once_in_order(app, hooked):
    one = make_message(app, hooked.id, from_me=True, status="sent", wa_message_id="true_1").id
    make_message(app, hooked.id, from_me=True, status="sent", wa_message_id="true_2")
    make_message(app, hooked.id, from_me=True, status="read", wa_message_id="true_3")
    burst = [ack("true_1", "sent"), ack("true_2", "sent"), ack("true_1", "delivered"),
             ack("true_1", "read"), ack("true_2", "delivered"), ack("true_1", "delivered"),
             ack("true_3", "delivered"), ack("true_2", "sent"), ack("true_9", "read")]
    with app.app_context():
        events.apply_all(hooked.id, burst)
    assert statuses(app, hooked.id) == {"true_1": "read", "true_2": "delivered", "true_3": "read"}
    reported = [(data["messageId"], data["ack"]) for name, data in outbox(app) if name == "message.ack"]
    # Each step once; a message's delivered before its read; older, repeated and unknown
    # acks report nothing.
    assert sorted(reported) == [("true_1", "delivered"), ("true_1", "read"), ("true_2", "delivered")]
    assert reported.index(("true_1", "delivered")) < reported.index(("true_1", "read"))
    assert next(d for n, d in outbox(app) if d["messageId"] == "true_1")["id"] == one


def test_a_burst_is_one_transaction(app, hooked):
    for n in range(5):
        make_message(app, hooked.id, from_me=True, status="sent", wa_message_id=f"true_{n}")
    burst = [ack(f"true_{n}", level) for level in ("sent", "delivered", "read") for n in range(5)]
    burst += [incoming(n) for n in range(5)]
    with app.app_context():
        commits: list[int] = []
        listener = lambda conn: commits.append(1)  # noqa: E731
        sa_event.listen(db.engine, "commit", listener)
        try:
            events.apply_all(hooked.id, burst)
        finally:
            sa_event.remove(db.engine, "commit", listener)
    assert len(commits) == 1
    assert set(statuses(app, hooked.id).values()) == {"read", "delivered"}
    assert len([name for name, _ in outbox(app) if name == "message.received"]) == 5
    assert len([name for name, _ in outbox(app) if name == "message.ack"]) == 10


def test_a_malformed_event_is_skipped_and_logged_and_the_others_are_applied(app, hooked, caplog):
    make_message(app, hooked.id, from_me=True, status="sent", wa_message_id="true_1")
    broken = EngineEvent(EventKind.MESSAGE, {"id": "false_x", "body": "no chat"})  # no chatId
    with app.app_context(), caplog.at_level(logging.ERROR, logger="app.services.events"):
        events.apply_all(hooked.id, [ack("true_1", "delivered"), broken, incoming(1)])
    assert statuses(app, hooked.id) == {"true_1": "delivered", f"false_{CHAT}_000001": "delivered"}
    assert [name for name, _ in outbox(app)] == ["message.ack", "message.received"]
    assert any("cannot be applied" in r.getMessage() for r in caplog.records)


def test_an_event_seen_twice_is_stored_once(app, hooked):
    with app.app_context():
        events.apply_all(hooked.id, [incoming(1), incoming(1)])
        events.apply_all(hooked.id, [incoming(1), incoming(2)])
    assert sorted(statuses(app, hooked.id)) == [f"false_{CHAT}_000001", f"false_{CHAT}_000002"]
    assert [name for name, _ in outbox(app)] == ["message.received"] * 2


def _unreachable_app(tmp_path: Path, redis: str):
    """The same code against a database that cannot be reached."""
    config = make_config(tmp_path, ("postgres", "postgresql://nobody@127.0.0.1:1/none"), redis)
    return create_app(config)


def test_while_the_database_is_unreachable_events_wait_and_are_applied_when_it_is_back(
        app, session, tmp_path, redis_available):
    """The host keeps what it polled (and polls nothing more) until the database stores it."""
    engine = create_engine("mock", session.id, tmp_path / "profile", MockOptions())
    engine.start()  # starting, then a QR: events the host must store
    runtime = HostRuntime("events-host", app.config["OPENWA"])
    runtime.held[session.id] = Held(engine, 1, time.monotonic() + 60)
    down = _unreachable_app(tmp_path / "down", redis_available)
    with down.app_context():
        with pytest.raises(OperationalError):
            runtime.drain(session.id)
    kept = runtime.held[session.id].backlog
    assert [e.kind for e in kept][-1] is EventKind.QR
    with down.app_context():  # still down: still kept, nothing new polled behind it
        with pytest.raises(OperationalError):
            runtime.drain(session.id)
    assert runtime.held[session.id].backlog == kept
    with app.app_context():
        runtime.drain(session.id)
        stored = db.session.get(Session, session.id)
        assert stored.status == "qr_ready" and stored.qr_code
    assert runtime.held[session.id].backlog == []
    engine.close()


def test_a_busy_host_polls_again_at_once_and_a_quiet_one_waits_its_interval(app, session, tmp_path):
    """HOST_POLL_INTERVAL paces a quiet host; while the engines keep reporting events (other
    than acks), the next pulse (every 25 ms) polls again instead of waiting for the interval."""
    from engines.mock import write_json_atomic
    from tasks import base

    app.config["OPENWA"].host_poll_interval = 3600.0  # "quiet" means: not again this test
    engine = create_engine("mock", session.id, tmp_path / "profile",
                           MockOptions(auto_scan_seconds=0))
    engine.start()
    runtime = HostRuntime("pulse-host", app.config["OPENWA"])
    runtime.held[session.id] = Held(engine, 1, time.monotonic() + 3600)
    runtime.next_heartbeat = time.monotonic() + 3600  # this test is not about leases
    previous, base._flask_app = base._flask_app, app
    try:
        runtime.pulse()  # the first tick: the QR is stored
        assert runtime.busy
        engine.simulate_scan()
        runtime.pulse()  # busy: polled again at once, well before the interval
        with app.app_context():
            stored = db.session.get(Session, session.id)
            assert stored.status == "ready"
            phone = stored.phone
        runtime.pulse()  # nothing new: quiet again
        assert not runtime.busy
        engine.send_text("15550001111", "hello", message_id="OUT1")  # its ack comes at once
        runtime.next_tick = 0.0
        runtime.pulse()
        assert not runtime.busy  # acks alone do not keep a host polling every 25 ms
        inbox = tmp_path / "_mocknet" / phone / "inbox"
        write_json_atomic(inbox / "0001-quiet.json", {"id": "QUIET1", "from": "15559990000",
                                                      "to": phone, "type": "text", "body": "hi",
                                                      "timestamp": 1_700_000_000})
        runtime.pulse()  # quiet and the interval not over: not polled
        assert statuses(app, session.id) == {}
        runtime.next_tick = 0.0  # the interval is over
        runtime.pulse()
        assert statuses(app, session.id) == {"false_15559990000@c.us_QUIET1": "delivered"}
    finally:
        base._flask_app = previous
        engine.close()
