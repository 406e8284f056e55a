"""Message actions (issue 13.1) on the selenium engine, through real Chromium on the stand-in:
each action is one WPP.chat.* call with the right arguments, and each wa-js event of the
phone or a peer (reaction, revoke, edit, poll vote) becomes its engine event."""
from __future__ import annotations

import pytest

from engines import EngineError, EventKind
from engines.base import EngineEvent
from engines.selenium.engine import SeleniumEngine
from tests.engines.test_selenium import MakeEngine, kind, link, make_engine, pump  # noqa: F401
from tests.standin import StandIn

pytestmark = pytest.mark.selenium

PEER = "15557654321@c.us"
OTHER = "15550000001@c.us"


def calls(standin: StandIn, device_of: SeleniumEngine, since: int = 0) -> list[tuple[str, list]]:
    return [(a["call"], a["args"]) for a in standin.actions[since:]]


def test_each_action_is_one_wajs_call_with_its_arguments(
        make_engine: MakeEngine, standin: StandIn) -> None:  # noqa: F811 (the fixture)
    engine = make_engine("actions")
    link(engine, standin, "15551230001")
    start = len(standin.actions)

    loc = engine.send_location(PEER, -22.95, -43.21, message_id="3EB0A0000001",
                               description="Cristo", address="Rio")
    assert loc.message_id == f"true_{PEER}_3EB0A0000001"
    card = engine.send_contact(PEER, "Ana Lima", "5511999990000", "BEGIN:VCARD...",
                               message_id="3EB0A0000002")
    poll = engine.send_poll(PEER, "Lunch?", ["pizza", "sushi"], False, message_id="3EB0A0000003")
    assert card.message_id.endswith("3EB0A0000002") and poll.message_id.endswith("3EB0A0000003")
    text = engine.send_text(PEER, "see https://example.test", message_id="3EB0A0000004",
                            link_preview=True)
    assert [m["linkPreview"] for m in standin.sent if m["key"] == "3EB0A0000004"] == [True]
    forwarded = engine.forward_message(OTHER, PEER, text.message_id, message_id="3EB0A0000005")
    assert forwarded.message_id.startswith(f"true_{OTHER}_")

    engine.react(PEER, text.message_id, "👍")
    engine.react(PEER, text.message_id, "")
    engine.edit_message(PEER, text.message_id, "see https://example.test/2")
    engine.star_message(PEER, text.message_id, True)
    engine.star_message(PEER, text.message_id, False)
    engine.pin_message(PEER, text.message_id, True, 2592000)
    engine.pin_message(PEER, text.message_id, False)
    engine.delete_message(PEER, loc.message_id, False)
    engine.delete_message(PEER, text.message_id, True)
    with pytest.raises(EngineError, match="86400"):
        engine.pin_message(PEER, text.message_id, True, 1234)  # refused before the page

    tid, lid = text.message_id, loc.message_id
    assert calls(standin, engine, start) == [
        ("sendLocationMessage", [PEER, {"messageId": "3EB0A0000001", "createChat": True,
                                        "waitForAck": True, "lat": -22.95, "lng": -43.21,
                                        "name": "Cristo", "address": "Rio"}]),
        ("sendVCardContactMessage", [PEER, {"id": "5511999990000@c.us", "name": "Ana Lima"},
                                     {"messageId": "3EB0A0000002", "createChat": True,
                                      "waitForAck": True}]),
        ("sendCreatePollMessage", [PEER, "Lunch?", ["pizza", "sushi"],
                                   {"messageId": "3EB0A0000003", "createChat": True,
                                    "waitForAck": True, "selectableCount": 1}]),
        ("forwardMessages", [OTHER, [tid]]),
        ("sendReactionToMessage", [tid, "👍"]),
        ("sendReactionToMessage", [tid, False]),  # "" removes: wa-js takes false
        ("editMessage", [tid, "see https://example.test/2", {}]),
        ("starMessage", [tid, True]),
        ("starMessage", [tid, False]),
        ("pinMsg", [tid, True, "ThirtyDays"]),  # WPP.whatsapp.PinExpiryDurationOption
        ("pinMsg", [tid, False]),
        ("deleteMessage", [PEER, lid, False, False]),
        ("deleteMessage", [PEER, tid, False, True]),
    ]
    # Our own poll comes back as a message with its options (as wa-js reports new messages).
    seen: list[EngineEvent] = []
    pump(engine, lambda e: e.kind is EventKind.MESSAGE and e.data["id"] == poll.message_id,
         seen=seen)
    created = [e for e in seen if e.kind is EventKind.MESSAGE and e.data["id"] == poll.message_id]
    assert created[0].data["type"] == "poll"
    assert created[0].data["content"]["options"] == ["pizza", "sushi"]
    assert created[0].data["content"]["multipleAnswers"] is False


def test_reactions_revokes_edits_and_votes_become_engine_events(
        make_engine: MakeEngine, standin: StandIn) -> None:  # noqa: F811 (the fixture)
    engine = make_engine("events")
    phone = "15551230002"
    link(engine, standin, phone)
    poll = engine.send_poll(PEER, "Lunch?", ["pizza", "sushi", "salad"], True,
                            message_id="3EB0B0000001")
    incoming = standin.incoming(phone, PEER.split("@")[0], "hello")

    standin.action_event("reaction", {"phone": phone, "chat": PEER, "messageId": poll.message_id,
                                      "from": PEER, "emoji": "❤️"})
    reaction = pump(engine, kind(EventKind.REACTION, messageId=poll.message_id)).data
    assert reaction == {"messageId": poll.message_id, "chatId": PEER, "from": PEER, "emoji": "❤️"}

    standin.action_event("edit", {"phone": phone, "chat": PEER, "messageId": incoming["id"],
                                  "body": "hello (edited)"})
    edited = pump(engine, kind(EventKind.EDITED, messageId=incoming["id"])).data
    assert edited["chatId"] == PEER and edited["body"] == "hello (edited)"
    assert isinstance(edited["timestamp"], int)

    standin.action_event("revoke", {"phone": phone, "chat": PEER, "messageId": incoming["id"]})
    revoked = pump(engine, kind(EventKind.REVOKED, messageId=incoming["id"])).data
    assert revoked["chatId"] == PEER

    standin.action_event("vote", {"phone": phone, "chat": PEER, "messageId": poll.message_id,
                                  "from": PEER, "selectedOptions": [2, 0]})
    vote = pump(engine, kind(EventKind.POLL_VOTE, messageId=poll.message_id)).data
    # Option ids become the poll's option names.
    assert vote["selectedOptions"] == ["salad", "pizza"]
    assert vote["chatId"] == PEER and vote["from"] == PEER
