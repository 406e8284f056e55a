"""The mock engine, driven by a fake clock: no sleeping, no threads."""
from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engines.base import (
    EngineEvent,
    EngineNotReady,
    EngineState,
    EventKind,
    NumberStatus,
    SentMessage,
)
from engines.mock import (
    ECHO_ID,
    PROFILE_FILE,
    SENT_FILE,
    MockEngine,
    MockOptions,
    phone_for_session,
    write_json_atomic,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
_B64 = r"([A-Za-z0-9+/=]+)"
QR_PATTERN = re.compile(rf"^2@{_B64},{_B64},{_B64},{_B64}$")


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


MakeEngine = Callable[..., MockEngine]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sessions_dir(tmp_path: Path) -> Path:
    return tmp_path / "sessions"


@pytest.fixture
def make_engine(sessions_dir: Path, clock: FakeClock) -> MakeEngine:
    def make(session_id: str = "alpha", **options: Any) -> MockEngine:
        return MockEngine(
            session_id, sessions_dir / session_id, MockOptions(**options), clock=clock
        )

    return make


def ready_engine(make_engine: MakeEngine, session_id: str = "alpha", **options: Any) -> MockEngine:
    """An engine linked by a manual scan, its start-up events drained."""
    engine = make_engine(session_id, **options)
    engine.start()
    engine.simulate_scan()
    engine.poll()
    assert state_of(engine) is EngineState.READY
    return engine


def state_of(engine: MockEngine) -> EngineState:
    """The state, read through a call so that type checkers do not narrow it across calls."""
    return engine.state


def of_kind(events: list[EngineEvent], kind: EventKind) -> list[dict[str, Any]]:
    return [event.data for event in events if event.kind is kind]


def states(events: list[EngineEvent]) -> list[str]:
    return [data["state"] for data in of_kind(events, EventKind.STATE)]


def timeline(events: list[EngineEvent]) -> list[str]:
    """Kinds in order, with the state spelled out for STATE events."""
    return [
        f"state:{e.data['state']}" if e.kind is EventKind.STATE else e.kind.value for e in events
    ]


# -- 1. profile and start ------------------------------------------------------


def test_unlinked_profile_starts_into_qr_with_a_qr_event(make_engine: MakeEngine) -> None:
    engine = make_engine()
    assert state_of(engine) is EngineState.CLOSED
    engine.start()
    events = engine.poll()
    assert timeline(events) == ["state:starting", "state:qr", "qr"]
    assert state_of(engine) is EngineState.QR
    assert of_kind(events, EventKind.QR)[0]["qr"] == engine.qr()


def test_linked_profile_restarts_to_ready_without_qr(
    make_engine: MakeEngine, sessions_dir: Path
) -> None:
    first = ready_engine(make_engine, push_name="Alice")
    phone = first.phone
    first.close()

    second = make_engine()  # a new instance over the same profile dir, as after a restart
    second.start()
    events = second.poll()
    assert timeline(events) == [
        "state:starting",
        "state:authenticating",
        "authenticated",
        "state:ready",
        "ready",
    ]
    assert of_kind(events, EventKind.READY) == [{"phone": phone, "pushName": "Alice"}]
    assert of_kind(events, EventKind.QR) == []
    assert second.qr() is None


def test_profile_records_the_link_and_is_written_atomically(
    make_engine: MakeEngine, sessions_dir: Path
) -> None:
    engine = ready_engine(make_engine, push_name="Alice")
    profile_dir = sessions_dir / "alpha"
    profile = json.loads((profile_dir / PROFILE_FILE).read_text())
    assert profile["linked"] is True
    assert profile["phone"] == engine.phone
    assert profile["pushName"] == "Alice"
    assert not [p for p in profile_dir.iterdir() if p.name.endswith(".tmp")]


def test_atomic_write_keeps_the_old_file_when_the_write_fails(tmp_path: Path) -> None:
    target = tmp_path / "profile.json"
    write_json_atomic(target, {"linked": True})
    with pytest.raises(TypeError):
        write_json_atomic(target, {"linked": object()})  # not JSON-serialisable
    assert json.loads(target.read_text()) == {"linked": True}
    assert [p.name for p in tmp_path.iterdir()] == ["profile.json"]


def test_start_twice_does_not_start_again(make_engine: MakeEngine) -> None:
    engine = make_engine()
    engine.start()
    qr = engine.qr()
    engine.start()
    assert engine.qr() == qr
    assert len(of_kind(engine.poll(), EventKind.QR)) == 1


# -- 2. QR format and rotation --------------------------------------------------


def test_qr_string_looks_like_whatsapp_webs(make_engine: MakeEngine) -> None:
    engine = make_engine()
    engine.start()
    qr = engine.qr()
    assert qr is not None
    match = QR_PATTERN.match(qr)
    assert match, qr
    ref, noise, identity, adv = match.groups()
    assert 60 <= len(ref) <= 90
    for key in (noise, identity, adv):
        assert len(base64.b64decode(key, validate=True)) == 32


def test_qr_rotates_every_qr_rotate_seconds_with_a_qr_event(
    make_engine: MakeEngine, clock: FakeClock
) -> None:
    engine = make_engine(qr_rotate_seconds=20, auto_scan_seconds=0)
    engine.start()
    first = engine.qr()
    engine.poll()

    clock.advance(19.9)
    assert engine.poll() == []
    assert engine.qr() == first

    clock.advance(0.1)
    events = engine.poll()
    assert timeline(events) == ["qr"]  # no state change on rotation
    second = engine.qr()
    assert second != first
    assert events[0].data["qr"] == second
    # Only the ref rotates; the keys hold for the whole link attempt.
    assert first is not None and second is not None
    assert first.split(",")[1:] == second.split(",")[1:]

    clock.advance(20)
    assert len(of_kind(engine.poll(), EventKind.QR)) == 1
    assert engine.qr() not in (first, second)


def test_qr_is_none_when_not_waiting_for_a_scan(make_engine: MakeEngine) -> None:
    engine = make_engine()
    assert engine.qr() is None
    engine.start()
    engine.simulate_scan()
    assert engine.qr() is None


# -- 3. scanning ----------------------------------------------------------------


def test_auto_scan_links_after_auto_scan_seconds(
    make_engine: MakeEngine, clock: FakeClock, sessions_dir: Path
) -> None:
    engine = make_engine("alpha", auto_scan_seconds=5, qr_rotate_seconds=20, push_name="Bot")
    engine.start()
    engine.poll()
    clock.advance(4.9)
    assert engine.poll() == []
    assert state_of(engine) is EngineState.QR

    clock.advance(0.1)
    events = engine.poll()
    assert timeline(events) == ["state:authenticating", "authenticated", "state:ready", "ready"]
    assert of_kind(events, EventKind.READY) == [
        {"phone": phone_for_session("alpha"), "pushName": "Bot"}
    ]
    assert json.loads((sessions_dir / "alpha" / PROFILE_FILE).read_text())["linked"] is True


def test_auto_scan_counts_from_the_first_qr_not_the_latest(
    make_engine: MakeEngine, clock: FakeClock
) -> None:
    engine = make_engine(auto_scan_seconds=30, qr_rotate_seconds=20)
    engine.start()
    clock.advance(20)
    assert of_kind(engine.poll(), EventKind.QR)  # rotated at 20 s
    clock.advance(10)
    engine.poll()
    assert state_of(engine) is EngineState.READY


def test_auto_scan_zero_never_scans(make_engine: MakeEngine, clock: FakeClock) -> None:
    engine = make_engine(auto_scan_seconds=0)
    engine.start()
    clock.advance(3600)
    engine.poll()
    assert state_of(engine) is EngineState.QR


def test_manual_scan_links_at_once(make_engine: MakeEngine) -> None:
    engine = make_engine(auto_scan_seconds=0)
    engine.start()
    engine.poll()
    engine.simulate_scan()
    assert state_of(engine) is EngineState.READY
    events = engine.poll()
    assert timeline(events) == ["state:authenticating", "authenticated", "state:ready", "ready"]


def test_manual_scan_without_a_pending_qr_raises(make_engine: MakeEngine) -> None:
    engine = make_engine()
    with pytest.raises(EngineNotReady):
        engine.simulate_scan()
    engine.start()
    engine.simulate_scan()
    with pytest.raises(EngineNotReady):
        engine.simulate_scan()


def test_phone_is_1555_and_seven_digits_derived_from_the_session_id() -> None:
    phone = phone_for_session("alpha")
    assert re.fullmatch(r"1555[0-9]{7}", phone)
    assert phone_for_session("alpha") == phone
    assert phone_for_session("beta") != phone


def test_pairing_code_looks_like_whatsapps_and_links_after_auto_scan(
    make_engine: MakeEngine, clock: FakeClock
) -> None:
    engine = make_engine(auto_scan_seconds=5)
    with pytest.raises(EngineNotReady):
        engine.request_pairing_code("+1 555 123 4567")
    engine.start()
    clock.advance(3)
    code = engine.request_pairing_code("+1 555 123 4567")
    assert re.fullmatch(r"[A-Z0-9]{4}-[A-Z0-9]{4}", code)
    clock.advance(4.9)  # 5 s since the code, not since the QR
    engine.poll()
    assert state_of(engine) is EngineState.QR
    clock.advance(0.1)
    events = engine.poll()
    assert state_of(engine) is EngineState.READY
    assert of_kind(events, EventKind.READY)[0]["phone"] == "15551234567"


# -- 5. sending, exactly once, acks ---------------------------------------------


def test_send_text_returns_whatsapp_style_id_and_clock_timestamp(
    make_engine: MakeEngine, clock: FakeClock
) -> None:
    engine = ready_engine(make_engine)
    sent = engine.send_text("15551234567", "hi", message_id="abc123")
    assert sent == SentMessage(message_id="true_15551234567@c.us_abc123", timestamp=int(clock.now))


def test_send_before_ready_raises_not_ready(make_engine: MakeEngine) -> None:
    engine = make_engine()
    with pytest.raises(EngineNotReady):
        engine.send_text("15551234567@c.us", "hi", message_id="m1")
    engine.start()
    with pytest.raises(EngineNotReady):
        engine.send_text("15551234567@c.us", "hi", message_id="m1")


def test_duplicate_message_id_returns_the_first_result_and_sends_once(
    make_engine: MakeEngine, clock: FakeClock, sessions_dir: Path
) -> None:
    alice = ready_engine(make_engine, "alice")
    bob = ready_engine(make_engine, "bob")
    first = alice.send_text(f"{bob.phone}@c.us", "once", message_id="m1")
    clock.advance(30)
    again = alice.send_text(f"{bob.phone}@c.us", "once", message_id="m1")
    assert again == first

    lines = (sessions_dir / "alice" / SENT_FILE).read_text().splitlines()
    assert len(lines) == 1
    assert [m["body"] for m in of_kind(bob.poll(), EventKind.MESSAGE)] == ["once"]
    acks = of_kind(alice.poll(), EventKind.ACK)
    assert [a["ack"] for a in acks] == ["sent", "delivered", "read"]


def test_find_sent_works_in_a_new_engine_instance_after_a_restart(make_engine: MakeEngine) -> None:
    engine = ready_engine(make_engine)
    sent = engine.send_text("15551234567@c.us", "hi", message_id="m1")
    engine.close()

    restarted = make_engine()  # not started: the lookup reads the profile dir only
    assert restarted.find_sent("15551234567@c.us", "m1") == sent
    assert restarted.find_sent("15551234567", "m1") == sent  # bare numbers normalise
    assert restarted.find_sent("15551234567@c.us", "other") is None
    assert restarted.find_sent("15557654321@c.us", "m1") is None

    restarted.start()
    assert restarted.send_text("15551234567@c.us", "hi", message_id="m1") == sent
    # Only the "sent" ack the network held for the device since the first send: no second send.
    assert [a["ack"] for a in of_kind(restarted.poll(), EventKind.ACK)] == ["sent"]


def test_find_sent_survives_a_record_line_cut_short_by_a_crash(
    make_engine: MakeEngine, sessions_dir: Path
) -> None:
    engine = ready_engine(make_engine)
    sent = engine.send_text("15551234567@c.us", "hi", message_id="m1")
    with (sessions_dir / "alpha" / SENT_FILE).open("a") as handle:
        handle.write('{"chatId":"15551234567@c.us","id":"m2","mess')  # crash mid-write
    restarted = make_engine()
    restarted.start()
    sent3 = restarted.send_text("15551234567@c.us", "hi", message_id="m3")

    fresh = make_engine()
    assert fresh.find_sent("15551234567@c.us", "m1") == sent
    assert fresh.find_sent("15551234567@c.us", "m2") is None
    assert fresh.find_sent("15551234567@c.us", "m3") == sent3


def test_acks_progress_sent_then_delivered_then_read_on_the_clock(
    make_engine: MakeEngine, clock: FakeClock
) -> None:
    engine = ready_engine(make_engine, ack_interval_seconds=0.5)
    sent = engine.send_text("15551234567@c.us", "hi", message_id="m1")

    def acks() -> list[str]:
        found = of_kind(engine.poll(), EventKind.ACK)
        assert all(a["messageId"] == sent.message_id for a in found)
        return [a["ack"] for a in found]

    assert acks() == ["sent"]
    clock.advance(0.49)
    assert acks() == []
    clock.advance(0.01)
    assert acks() == ["delivered"]
    clock.advance(0.5)
    assert acks() == ["read"]
    clock.advance(60)
    assert acks() == []


def test_acks_due_together_arrive_in_order(make_engine: MakeEngine, clock: FakeClock) -> None:
    engine = ready_engine(make_engine, ack_interval_seconds=0.5)
    engine.send_text("15551234567@c.us", "one", message_id="m1")
    engine.send_text("15551234567@c.us", "two", message_id="m2")
    clock.advance(5)
    acks = [(a["messageId"][-2:], a["ack"]) for a in of_kind(engine.poll(), EventKind.ACK)]
    assert acks == [
        ("m1", "sent"),
        ("m2", "sent"),
        ("m1", "delivered"),
        ("m2", "delivered"),
        ("m1", "read"),
        ("m2", "read"),
    ]


def test_acks_and_replies_a_killed_host_had_not_taken_come_to_the_next_engine(
    make_engine: MakeEngine, clock: FakeClock
) -> None:
    engine = ready_engine(make_engine, ack_interval_seconds=0.5)
    sent = engine.send_text(ECHO_ID, "ping", message_id="m1")
    # The host dies (kill -9): no close(), nothing of this engine object survives.
    del engine
    clock.advance(5)

    taker = make_engine()  # the host that takes the session over, on the same profile
    taker.start()
    events = taker.poll()
    assert [(a["messageId"], a["ack"]) for a in of_kind(events, EventKind.ACK)] == [
        (sent.message_id, "sent"), (sent.message_id, "delivered"), (sent.message_id, "read")]
    assert [m["body"] for m in of_kind(events, EventKind.MESSAGE)] == ["ping"]
    # Handed over once the host polled again (it had stored them): never twice.
    assert of_kind(taker.poll(), EventKind.ACK) == []
    later = make_engine()
    later.start()
    assert of_kind(later.poll(), EventKind.ACK) == []


def test_a_send_writes_one_pending_file_and_a_kill_between_its_acks_loses_none(
    make_engine: MakeEngine, clock: FakeClock, sessions_dir: Path
) -> None:
    # Scale (issue 18): the three acks (and the echo's reply) of a send are one file.
    engine = ready_engine(make_engine, ack_interval_seconds=0.5)
    sent = engine.send_text(ECHO_ID, "ping", message_id="m1")
    pending = sessions_dir / "_mocknet" / str(engine.phone) / "pending"
    assert len([n for n in os.listdir(pending) if n.endswith(".json")]) == 1
    assert [a["ack"] for a in of_kind(engine.poll(), EventKind.ACK)] == ["sent"]
    clock.advance(0.5)
    assert [a["ack"] for a in of_kind(engine.poll(), EventKind.ACK)] == ["delivered"]
    # Killed here (kill -9): the host stored "sent" and "delivered", never saw "read".
    del engine
    clock.advance(5)
    taker = make_engine()
    taker.start()
    events = taker.poll()
    # Every ack again, in order (a repeat is harmless: acks only move forward), none lost.
    assert [a["ack"] for a in of_kind(events, EventKind.ACK)
            if a["messageId"] == sent.message_id] == ["sent", "delivered", "read"]
    assert [m["body"] for m in of_kind(events, EventKind.MESSAGE)] == ["ping"]
    assert of_kind(taker.poll(), EventKind.ACK) == []
    assert [n for n in os.listdir(pending) if n.endswith(".json")] == []


def test_acks_due_while_disconnected_arrive_after_the_reconnect(
    make_engine: MakeEngine, clock: FakeClock
) -> None:
    engine = ready_engine(make_engine, ack_interval_seconds=0.5)
    sent = engine.send_text("15551234567@c.us", "hi", message_id="m1")
    engine.simulate_disconnect()
    engine.poll()
    clock.advance(2)
    assert of_kind(engine.poll(), EventKind.ACK) == []  # the device is offline
    engine.start()
    assert [a["ack"] for a in of_kind(engine.poll(), EventKind.ACK)
            if a["messageId"] == sent.message_id] == ["sent", "delivered", "read"]


def test_send_to_an_unknown_number_succeeds_and_goes_nowhere(
    make_engine: MakeEngine, clock: FakeClock, sessions_dir: Path
) -> None:
    engine = ready_engine(make_engine)
    sent = engine.send_text("15551230000@c.us", "anyone?", message_id="m1")
    assert sent.message_id == "true_15551230000@c.us_m1"
    clock.advance(5)
    acks = [a["ack"] for a in of_kind(engine.poll(), EventKind.ACK)]
    assert acks == ["sent", "delivered", "read"]
    assert not (sessions_dir / "_mocknet" / "15551230000").exists()


# -- 6. echo contact ------------------------------------------------------------


def test_echo_contact_answers_with_the_same_text_after_a_fifth_of_a_second(
    make_engine: MakeEngine, clock: FakeClock
) -> None:
    engine = ready_engine(make_engine, ack_interval_seconds=10)
    engine.send_text(ECHO_ID, "ping 1", message_id="m1")
    assert of_kind(engine.poll(), EventKind.MESSAGE) == []
    clock.advance(0.19)
    assert of_kind(engine.poll(), EventKind.MESSAGE) == []
    clock.advance(0.01)
    messages = of_kind(engine.poll(), EventKind.MESSAGE)
    assert len(messages) == 1
    message = messages[0]
    assert re.fullmatch(r"false_15550000000@c\.us_[0-9A-F]+", message["id"])
    assert message == {
        "id": message["id"],
        "chatId": ECHO_ID,
        "from": ECHO_ID,
        "to": f"{engine.phone}@c.us",
        "fromMe": False,
        "type": "text",
        "body": "ping 1",
        "timestamp": int(clock.now),
        "quotedMessageId": None,
    }


# -- 7, 8. delivery between mock sessions ---------------------------------------


def test_delivery_between_two_engines_over_the_mock_network(
    make_engine: MakeEngine, clock: FakeClock, sessions_dir: Path
) -> None:
    alice = ready_engine(make_engine, "alice", push_name="Alice")
    bob = ready_engine(make_engine, "bob", push_name="Bob")
    assert (sessions_dir / "_mocknet" / str(bob.phone) / "inbox").is_dir()

    alice.send_text(f"{bob.phone}@c.us", "first", message_id="k1")
    alice.send_text(f"{bob.phone}@c.us", "second", message_id="k2")
    messages = of_kind(bob.poll(), EventKind.MESSAGE)
    alice_id = f"{alice.phone}@c.us"
    assert messages == [
        {
            "id": f"false_{alice_id}_k1",
            "chatId": alice_id,
            "from": alice_id,
            "to": f"{bob.phone}@c.us",
            "fromMe": False,
            "type": "text",
            "body": "first",
            "timestamp": int(clock.now),
            "quotedMessageId": None,
        },
        {
            "id": f"false_{alice_id}_k2",
            "chatId": alice_id,
            "from": alice_id,
            "to": f"{bob.phone}@c.us",
            "fromMe": False,
            "type": "text",
            "body": "second",
            "timestamp": int(clock.now),
            "quotedMessageId": None,
        },
    ]
    assert of_kind(bob.poll(), EventKind.MESSAGE) == []  # each message is returned once
    assert list((sessions_dir / "_mocknet" / str(bob.phone) / "inbox").iterdir()) == []


def test_a_reply_quotes_the_message_as_the_recipient_knows_it(make_engine: MakeEngine) -> None:
    alice = ready_engine(make_engine, "alice")
    bob = ready_engine(make_engine, "bob")
    alice.send_text(f"{bob.phone}@c.us", "question", message_id="q1")
    received = of_kind(bob.poll(), EventKind.MESSAGE)[0]
    bob.send_text(
        f"{alice.phone}@c.us", "answer", message_id="a1", quoted_message_id=received["id"]
    )
    reply = of_kind(alice.poll(), EventKind.MESSAGE)[0]
    assert reply["quotedMessageId"] == f"true_{bob.phone}@c.us_q1"


def test_inbox_files_are_deleted_only_on_the_poll_after_the_one_that_returned_them(
    make_engine: MakeEngine, sessions_dir: Path
) -> None:
    alice = ready_engine(make_engine, "alice")
    bob = ready_engine(make_engine, "bob")
    inbox = sessions_dir / "_mocknet" / str(bob.phone) / "inbox"
    alice.send_text(f"{bob.phone}@c.us", "hello", message_id="k1")
    assert len(of_kind(bob.poll(), EventKind.MESSAGE)) == 1
    assert len(list(inbox.iterdir())) == 1  # kept until the host has had the chance to store it

    # A host that crashed before storing the event sees the same message (same id) again.
    bob_again = make_engine("bob")
    bob_again.start()
    again = of_kind(bob_again.poll(), EventKind.MESSAGE)
    assert [m["id"] for m in again] == [f"false_{alice.phone}@c.us_k1"]
    bob_again.poll()
    assert list(inbox.iterdir()) == []


def test_unreadable_inbox_file_is_set_aside_and_later_messages_still_arrive(
    make_engine: MakeEngine, sessions_dir: Path
) -> None:
    alice = ready_engine(make_engine, "alice")
    bob = ready_engine(make_engine, "bob")
    inbox = sessions_dir / "_mocknet" / str(bob.phone) / "inbox"
    (inbox / "00000000000000000001-broken.json").write_text("{not json")
    alice.send_text(f"{bob.phone}@c.us", "still here", message_id="k1")
    assert [m["body"] for m in of_kind(bob.poll(), EventKind.MESSAGE)] == ["still here"]
    bob.poll()
    assert [p.name for p in inbox.iterdir()] == ["00000000000000000001-broken.bad"]


def test_mock_network_dir_can_be_moved_with_an_option(
    make_engine: MakeEngine, tmp_path: Path
) -> None:
    network = tmp_path / "elsewhere"
    options = {"extra": {"mock_network_dir": str(network)}}
    alice = ready_engine(make_engine, "alice", **options)
    bob = ready_engine(make_engine, "bob", **options)
    assert (network / str(bob.phone) / "inbox").is_dir()
    alice.send_text(f"{bob.phone}@c.us", "moved", message_id="k1")
    assert [m["body"] for m in of_kind(bob.poll(), EventKind.MESSAGE)] == ["moved"]


def test_messages_sent_while_disconnected_arrive_after_reconnect(make_engine: MakeEngine) -> None:
    alice = ready_engine(make_engine, "alice")
    bob = ready_engine(make_engine, "bob")
    bob.simulate_disconnect()
    bob.poll()
    alice.send_text(f"{bob.phone}@c.us", "while you were away", message_id="k1")
    assert of_kind(bob.poll(), EventKind.MESSAGE) == []
    bob.start()
    assert [m["body"] for m in of_kind(bob.poll(), EventKind.MESSAGE)] == ["while you were away"]


def test_delivery_across_processes(make_engine: MakeEngine, sessions_dir: Path) -> None:
    bob = ready_engine(make_engine, "bob")
    sender = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from engines.mock import MockOptions
        from engines.mock import MockEngine
        engine = MockEngine("alice", Path({str(sessions_dir / "alice")!r}), MockOptions())
        engine.start()
        engine.simulate_scan()
        sent = engine.send_text("{bob.phone}@c.us", "from another process", message_id="x1")
        print(engine.phone, sent.message_id)
        engine.close()
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", sender],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    alice_phone, wa_id = result.stdout.split()
    assert wa_id == f"true_{bob.phone}@c.us_x1"
    messages = of_kind(bob.poll(), EventKind.MESSAGE)
    assert [(m["from"], m["body"], m["id"]) for m in messages] == [
        (f"{alice_phone}@c.us", "from another process", f"false_{alice_phone}@c.us_x1")
    ]


# -- 4. disconnect --------------------------------------------------------------


def test_disconnect_makes_sends_raise_until_start(make_engine: MakeEngine) -> None:
    engine = ready_engine(make_engine)
    engine.simulate_disconnect("network down")
    events = engine.poll()
    assert of_kind(events, EventKind.STATE) == [{"state": "disconnected", "reason": "network down"}]
    assert state_of(engine) is EngineState.DISCONNECTED
    with pytest.raises(EngineNotReady):
        engine.send_text("15551234567@c.us", "hi", message_id="m1")
    engine.poll()
    assert state_of(engine) is EngineState.DISCONNECTED  # the engine does not reconnect by itself

    engine.start()
    events = engine.poll()
    assert states(events) == ["starting", "authenticating", "ready"]
    assert of_kind(events, EventKind.QR) == []
    engine.send_text("15551234567@c.us", "hi", message_id="m1")


# -- 10. logout and close -------------------------------------------------------


def test_logout_wipes_the_profile_and_unregisters_from_the_mock_network(
    make_engine: MakeEngine, sessions_dir: Path
) -> None:
    alice = ready_engine(make_engine, "alice")
    bob = ready_engine(make_engine, "bob")
    bob.send_text(f"{alice.phone}@c.us", "hi", message_id="m1")
    alice.send_text(f"{bob.phone}@c.us", "hi", message_id="m1")
    assert [c["id"] for c in bob.contacts()] == [ECHO_ID, f"{alice.phone}@c.us"]

    alice.logout()
    assert states(alice.poll())[-1] == "logged_out"
    assert state_of(alice) is EngineState.LOGGED_OUT
    assert list((sessions_dir / "alice").iterdir()) == []
    assert not (sessions_dir / "_mocknet" / str(alice.phone or phone_for_session("alice"))).exists()
    assert [c["id"] for c in bob.contacts()] == [ECHO_ID]
    with pytest.raises(EngineNotReady):
        alice.send_text(f"{bob.phone}@c.us", "hi", message_id="m2")

    alice.start()  # the next start needs a QR again
    assert state_of(alice) is EngineState.QR
    assert alice.find_sent(f"{bob.phone}@c.us", "m1") is None


def test_close_keeps_the_profile_and_registration_and_later_calls_raise(
    make_engine: MakeEngine, sessions_dir: Path
) -> None:
    engine = ready_engine(make_engine)
    engine.close()
    assert states(engine.poll()) == ["closed"]
    assert state_of(engine) is EngineState.CLOSED
    assert (sessions_dir / "alpha" / PROFILE_FILE).exists()
    assert (sessions_dir / "_mocknet" / phone_for_session("alpha") / "inbox").is_dir()
    for call in (
        lambda: engine.send_text("15551234567@c.us", "hi", message_id="m1"),
        lambda: engine.check_number("15551234567"),
        engine.contacts,
        engine.chats,
        engine.groups,
        engine.simulate_scan,
        engine.simulate_disconnect,
    ):
        with pytest.raises(EngineNotReady):
            call()
    engine.close()
    assert engine.poll() == []  # closing twice is quiet


# -- 9. queries -----------------------------------------------------------------


def test_check_number_knows_echo_mock_accounts_and_numbers_not_ending_in_0000(
    make_engine: MakeEngine,
) -> None:
    alice = ready_engine(make_engine, "alice")
    bob = ready_engine(make_engine, "bob")
    assert alice.check_number(ECHO_ID) == NumberStatus(True, ECHO_ID)
    assert alice.check_number(f"+{bob.phone}") == NumberStatus(True, f"{bob.phone}@c.us")
    assert alice.check_number("+1 555 123 4567") == NumberStatus(True, "15551234567@c.us")
    assert alice.check_number("15551230000") == NumberStatus(False, None)
    assert alice.check_number("not a number") == NumberStatus(False, None)


def test_contacts_chats_and_groups(make_engine: MakeEngine, clock: FakeClock) -> None:
    alice = ready_engine(make_engine, "alice", push_name="Alice")
    bob = ready_engine(make_engine, "bob", push_name="Bob")
    assert alice.contacts() == [
        {"id": ECHO_ID, "name": "Echo", "pushName": "Echo", "isBusiness": False},
        {"id": f"{bob.phone}@c.us", "name": "Bob", "pushName": "Bob", "isBusiness": False},
    ]
    assert alice.chats() == []
    assert alice.groups() == []

    alice.send_text(ECHO_ID, "ping", message_id="m1")
    clock.advance(1)
    alice.poll()
    clock.advance(1)
    bob.send_text(f"{alice.phone}@c.us", "hello", message_id="m2")
    alice.poll()
    flags = {"isGroup": False, "archived": False, "pinned": False, "muted": False}  # issue 13.2
    assert alice.chats() == [
        {"id": f"{bob.phone}@c.us", "name": "Bob", "unreadCount": 1, "timestamp": int(clock.now),
         **flags},
        {"id": ECHO_ID, "name": "Echo", "unreadCount": 1, "timestamp": int(clock.now - 1.8),
         **flags},
    ]
    alice.send_text(f"{bob.phone}@c.us", "hi", message_id="m3")
    assert alice.chats()[0]["unreadCount"] == 0

    restarted = make_engine("alice")
    restarted.start()
    assert [c["id"] for c in restarted.chats()] == [f"{bob.phone}@c.us", ECHO_ID]


# -- 11. state events -----------------------------------------------------------


def test_every_state_transition_emits_one_state_event(
    make_engine: MakeEngine, clock: FakeClock
) -> None:
    engine = make_engine(auto_scan_seconds=5)
    seen: list[str] = []
    engine.start()
    seen += states(engine.poll())
    clock.advance(5)
    seen += states(engine.poll())
    engine.simulate_disconnect()
    engine.start()
    engine.close()
    engine.logout()
    seen += states(engine.poll())
    assert seen == [
        "starting",
        "qr",
        "authenticating",
        "ready",
        "disconnected",
        "starting",
        "authenticating",
        "ready",
        "closed",
        "logged_out",
    ]
