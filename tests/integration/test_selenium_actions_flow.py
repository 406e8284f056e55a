"""Message actions (issue 13.1) end to end on the selenium engine: the API, a real Celery
session host, real Chromium with the wa-js bundle, and the WhatsApp Web stand-in; what the
page reports (a peer's reaction, vote, edit, revoke) is stored on the message."""
from __future__ import annotations

from typing import Any

import pytest

from tests.integration.conftest import Platform, wait_for
from tests.integration.test_selenium_flow import link, selenium_env
from tests.standin import StandIn

pytestmark = [pytest.mark.selenium, pytest.mark.integration,
              pytest.mark.parametrize("backend", ["sqlite"], indirect=True)]

PHONE = "15557000002"
PEER = "15557001111@c.us"


def stored(platform: Platform, message_id: str) -> dict[str, Any]:
    reply = platform.api("GET", f"/sessions/acts/messages/{message_id}")
    assert reply.status_code == 200, reply.get_json()
    return reply.get_json()  # type: ignore[no-any-return]


def test_actions_through_the_api_reach_wajs_and_page_events_are_stored(
        platform: Platform, standin: StandIn, chromium: dict[str, str]) -> None:
    # A Chromium start on a busy machine can outlast the fixture's 6 s lease (the host holds
    # no lease while it starts the browser): give it room, this test is not about failover.
    platform.app.config["OPENWA"].session_lease_ttl = 30
    platform.start_host(**selenium_env(chromium, standin), SESSION_LEASE_TTL="30")
    link(platform, standin, "acts", PHONE)
    device = standin.device_for(phone=PHONE)
    assert device is not None

    poll = platform.api("POST", "/sessions/acts/messages/send-poll", json={
        "chatId": PEER, "name": "Lunch?", "options": ["pizza", "sushi"]})
    assert poll.status_code == 201, poll.get_json()
    poll_id = poll.get_json()["messageId"]
    ours = stored(platform, poll_id)
    assert poll_id == f"true_{PEER}_{ours['id']}" and ours["type"] == "poll"
    made = [a for a in standin.actions if a["device"] == device.id]
    assert made[-1]["call"] == "sendCreatePollMessage"
    assert made[-1]["args"][1:3] == ["Lunch?", ["pizza", "sushi"]]

    react = platform.api("POST", "/sessions/acts/messages/react", json={
        "chatId": PEER, "messageId": ours["id"], "emoji": "🎉"})  # by our id
    assert react.status_code == 200, react.get_json()
    assert standin.actions[-1]["call"] == "sendReactionToMessage"
    assert standin.actions[-1]["args"] == [poll_id, "🎉"]
    assert stored(platform, poll_id)["reactions"] == {f"{PHONE}@c.us": "🎉"}

    # The peer reacts and votes: stored on the poll.
    standin.action_event("reaction", {"phone": PHONE, "chat": PEER, "messageId": poll_id,
                                      "from": PEER, "emoji": "❤️"})
    standin.action_event("vote", {"phone": PHONE, "chat": PEER, "messageId": poll_id,
                                  "from": PEER, "selectedOptions": [1]})
    wait_for(lambda: stored(platform, poll_id)["content"]["votes"] == {PEER: ["sushi"]}, 15,
             message="the peer's vote on the poll")
    assert stored(platform, poll_id)["reactions"] == {f"{PHONE}@c.us": "🎉", PEER: "❤️"}

    # The peer edits, then revokes, a message we received.
    incoming = standin.incoming(PHONE, PEER.split("@")[0], "typo")
    wait_for(lambda: platform.api("GET", f"/sessions/acts/messages/{incoming['id']}")
             .status_code == 200, 15, message="the incoming message")
    standin.action_event("edit", {"phone": PHONE, "chat": PEER, "messageId": incoming["id"],
                                  "body": "fixed"})
    wait_for(lambda: stored(platform, incoming["id"])["body"] == "fixed", 15, message="the edit")
    assert stored(platform, incoming["id"])["edited"] is True
    standin.action_event("revoke", {"phone": PHONE, "chat": PEER, "messageId": incoming["id"]})
    wait_for(lambda: stored(platform, incoming["id"])["revoked"], 15, message="the revoke")
