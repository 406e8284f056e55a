"""Message actions (issue 13.1) across real processes on the mock engine: API → session queue →
session host → engine → stored history → webhook, between two mock accounts that see each
other's messages, reactions, edits and revokes."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.conftest import wait_for
from tests.webhooks.receiver import Receiver

pytestmark = pytest.mark.integration

KEY = "actions-encryption-key-abcdefgh"
ENV = {"WEBHOOK_ALLOW_PRIVATE": "true", "WEBHOOK_RETRY_DELAY": "200",
       "WEBHOOK_SWEEP_INTERVAL": "1", "WEBHOOK_TIMEOUT": "2000", "ENCRYPTION_KEY": KEY}


def actions_of(platform, session_id: str) -> list[dict]:
    """What the mock engine of a session was asked to do (its actions.jsonl)."""
    path = Path(platform.app.config["OPENWA"].session_data_path) / session_id / "actions.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def message(platform, sid: str, message_id: str) -> dict:
    reply = platform.api("GET", f"/sessions/{sid}/messages/{message_id}")
    assert reply.status_code == 200, reply.get_json()
    return reply.get_json()


def incoming(platform, sid: str, type_: str) -> dict:
    def found():
        data = platform.api("GET", f"/sessions/{sid}/messages?direction=incoming&type={type_}")
        return data.get_json()["messages"] if data.status_code == 200 else None

    return wait_for(found, 15, message=f"an incoming {type_} at {sid}")[0]  # type: ignore[no-any-return]


@pytest.fixture
def pair(platform):
    """Two ready mock sessions, alice and bob, each with a webhook for every event."""
    config = platform.app.config["OPENWA"]
    config.webhook_allow_private, config.encryption_key = True, KEY
    platform.env.update(ENV)
    receiver = Receiver().start()
    platform.start_host()
    platform.start("worker")
    alice = platform.create_ready_session("alice")
    bob = platform.create_ready_session("bob")
    for sid in ("alice", "bob"):
        hook = platform.api("POST", f"/sessions/{sid}/webhooks",
                            json={"url": f"http://127.0.0.1:{receiver.port}/{sid}", "events": ["*"]})
        assert hook.status_code == 201, hook.get_json()
    yield platform, receiver, alice, bob
    receiver.stop()


def hooked(receiver, sid: str, event: str) -> list[dict]:
    """The deliveries of ``event`` to the webhook of session ``sid``."""
    with receiver.lock:
        bodies = [json.loads(r["body"]) for r in receiver.requests if r["path"] == f"/{sid}"]
    return [body for body in bodies if body["event"] == event]


def test_each_action_end_to_end_between_two_mock_accounts(pair):
    platform, receiver, alice, bob = pair

    # -- sends: location, contact, poll, reply, forward -------------------------------------
    loc = platform.api("POST", "/sessions/alice/messages/send-location", json={
        "chatId": bob["phone"], "latitude": -22.95, "longitude": -43.21,
        "description": "Cristo", "address": "Rio"})
    assert loc.status_code == 201, loc.get_json()
    stored = message(platform, "alice", loc.get_json()["messageId"])
    assert stored["type"] == "location" and stored["content"]["latitude"] == -22.95
    at_bob = incoming(platform, "bob", "location")
    assert at_bob["content"]["longitude"] == -43.21 and at_bob["body"] == "Cristo"

    card = platform.api("POST", "/sessions/alice/messages/send-contact", json={
        "chatId": bob["phone"], "contactName": "Ana Lima", "contactNumber": "+55 11 99999 0000"})
    assert card.status_code == 201, card.get_json()
    stored = message(platform, "alice", card.get_json()["messageId"])
    assert "TEL;TYPE=CELL;WAID=5511999990000:+5511999990000" in stored["content"]["vcard"]
    assert incoming(platform, "bob", "contact")["content"]["contactName"] == "Ana Lima"

    poll = platform.api("POST", "/sessions/alice/messages/send-poll", json={
        "chatId": bob["phone"], "name": "Lunch?", "options": ["pizza", "sushi"],
        "multipleAnswers": True})
    assert poll.status_code == 201, poll.get_json()
    poll_id = poll.get_json()["messageId"]
    assert incoming(platform, "bob", "poll")["content"]["options"] == ["pizza", "sushi"]

    text = platform.api("POST", "/sessions/alice/messages/send-text", json={
        "chatId": bob["phone"], "text": "see https://example.test", "linkPreview": True})
    assert text.status_code == 201
    text_id = text.get_json()["messageId"]
    reply = platform.api("POST", "/sessions/alice/messages/reply", json={
        "chatId": bob["phone"], "quotedMessageId": text_id, "text": "about that"})
    assert reply.status_code == 201
    assert message(platform, "alice", reply.get_json()["messageId"])["quotedMessageId"] == text_id

    forward = platform.api("POST", "/sessions/alice/messages/forward", json={
        "fromChatId": bob["phone"], "toChatId": "15550000000", "messageId": text_id})
    assert forward.status_code == 201, forward.get_json()
    fwd = message(platform, "alice", forward.get_json()["messageId"])
    assert fwd["type"] == "forward" and fwd["content"]["messageId"] == text_id

    asked = actions_of(platform, alice["id"])
    kinds = [a["action"] for a in asked]
    assert kinds == ["location", "contact", "poll", "linkPreview", "forward"]
    assert asked[2]["options"] == ["pizza", "sushi"] and asked[2]["multipleAnswers"] is True

    # -- bob reacts to alice's text: stored on both sides, reported to both ------------------
    bob_text = wait_for(lambda: [m for m in platform.api(
        "GET", "/sessions/bob/messages?direction=incoming&type=text").get_json()["messages"]
        if m["body"] == "see https://example.test"], 15, message="the text at bob")[0]
    react = platform.api("POST", "/sessions/bob/messages/react", json={
        "chatId": alice["phone"], "messageId": bob_text["messageId"], "emoji": "👍"})
    assert react.status_code == 200 and react.get_json() == {"success": True}
    bob_jid, alice_jid = f"{bob['phone']}@c.us", f"{alice['phone']}@c.us"
    assert message(platform, "bob", bob_text["id"])["reactions"] == {bob_jid: "👍"}
    wait_for(lambda: message(platform, "alice", text_id)["reactions"] == {bob_jid: "👍"}, 15,
             message="bob's reaction stored at alice")
    wait_for(lambda: hooked(receiver, "alice", "message.reaction"), 15,
             message="message.reaction delivered to alice's webhook")
    event = hooked(receiver, "alice", "message.reaction")[0]["data"]
    assert event["messageId"] == text_id and event["emoji"] == "👍" and event["from"] == bob_jid
    assert event["id"] == message(platform, "alice", text_id)["id"]
    # "" removes it.
    assert platform.api("POST", "/sessions/bob/messages/react", json={
        "chatId": alice["phone"], "messageId": bob_text["messageId"], "emoji": ""}).status_code == 200
    wait_for(lambda: message(platform, "alice", text_id)["reactions"] is None, 15,
             message="the reaction removed at alice")

    # -- alice edits, then deletes for everyone: bob's copy follows --------------------------
    edit = platform.api("POST", "/sessions/alice/messages/edit", json={
        "chatId": bob["phone"], "messageId": text_id, "text": "see https://example.test/2"})
    assert edit.status_code == 200, edit.get_json()
    mine = message(platform, "alice", text_id)
    assert mine["body"] == "see https://example.test/2" and mine["edited"] is True
    wait_for(lambda: message(platform, "bob", bob_text["id"])["edited"], 15, message="edit at bob")
    assert message(platform, "bob", bob_text["id"])["body"] == "see https://example.test/2"
    wait_for(lambda: hooked(receiver, "bob", "message.edited"), 15, message="message.edited")
    edited = hooked(receiver, "bob", "message.edited")[0]["data"]
    assert edited["previousBody"] == "see https://example.test" and edited["id"] == bob_text["id"]

    delete = platform.api("POST", "/sessions/alice/messages/delete", json={
        "chatId": bob["phone"], "messageId": text_id, "forEveryone": True})
    assert delete.status_code == 200
    assert message(platform, "alice", text_id)["revoked"] is True
    wait_for(lambda: message(platform, "bob", bob_text["id"])["revoked"], 15, message="revoke at bob")
    assert message(platform, "bob", bob_text["id"])["body"] is None
    wait_for(lambda: hooked(receiver, "bob", "message.revoked"), 15, message="message.revoked")

    # -- star, pin, unpin, delete for me ------------------------------------------------------
    loc_id = loc.get_json()["messageId"]
    target = {"chatId": bob["phone"], "messageId": loc_id}
    assert platform.api("POST", "/sessions/alice/messages/star", json=target).status_code == 200
    assert message(platform, "alice", loc_id)["starred"] is True
    assert platform.api("POST", "/sessions/alice/messages/pin",
                        json={**target, "durationSeconds": 86400}).status_code == 200
    pinned = message(platform, "alice", loc_id)
    assert pinned["pinnedUntil"] - pinned["timestamp"] >= 86400 - 5
    assert platform.api("POST", "/sessions/alice/messages/unpin", json=target).status_code == 200
    assert platform.api("POST", "/sessions/alice/messages/unstar", json=target).status_code == 200
    after = message(platform, "alice", loc_id)
    assert after["pinnedUntil"] is None and after["starred"] is False
    assert platform.api("POST", "/sessions/alice/messages/delete", json=target).status_code == 200
    assert message(platform, "alice", loc_id)["deleted"] == "me"
    tail = [a["action"] for a in actions_of(platform, alice["id"])][-7:]
    assert tail == ["edit", "delete", "star", "pin", "pin", "star", "delete"]
    assert actions_of(platform, alice["id"])[-4]["durationSeconds"] == 86400

    # -- a peer votes on the poll; the phone revokes a message bob received ------------------
    vote = platform.api("POST", "/sessions/alice/mock/event", json={"kind": "poll_vote", "data": {
        "messageId": poll_id, "chatId": bob_jid, "from": bob_jid, "selectedOptions": ["sushi"]}})
    assert vote.status_code == 200, vote.get_json()
    wait_for(lambda: message(platform, "alice", poll_id)["content"]["votes"] == {bob_jid: ["sushi"]},
             15, message="the vote stored on the poll")
    wait_for(lambda: hooked(receiver, "alice", "poll.vote"), 15, message="poll.vote")
    voted = hooked(receiver, "alice", "poll.vote")[0]["data"]
    assert voted["messageId"] == poll_id and voted["poll"]["name"] == "Lunch?"
    bob_loc = incoming(platform, "bob", "location")
    assert platform.api("POST", "/sessions/bob/mock/event", json={"kind": "revoked", "data": {
        "messageId": bob_loc["messageId"], "chatId": alice_jid, "from": alice_jid}}).status_code == 200
    wait_for(lambda: message(platform, "bob", bob_loc["id"])["revoked"], 15,
             message="the revoke from the phone stored")


def test_actions_are_idempotent_validated_and_refused_when_not_ready(platform):
    platform.start_host()
    alice = platform.create_ready_session("solo")
    sent = platform.api("POST", "/sessions/solo/messages/send-text",
                        json={"chatId": "15550000000", "text": "hi"})
    wa_id = sent.get_json()["messageId"]
    body = {"chatId": "15550000000", "messageId": wa_id, "emoji": "🎉"}
    first = platform.api("POST", "/sessions/solo/messages/react", json=body,
                         headers={"Idempotency-Key": "react-1"})
    again = platform.api("POST", "/sessions/solo/messages/react", json=body,
                         headers={"Idempotency-Key": "react-1"})
    assert first.status_code == again.status_code == 200
    assert [a["action"] for a in actions_of(platform, alice["id"])] == ["react"]
    other = platform.api("POST", "/sessions/solo/messages/react", json={**body, "emoji": "😀"},
                         headers={"Idempotency-Key": "react-1"})
    assert other.status_code == 409 and other.get_json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    # A send's key is not reused for an action either.
    platform.api("POST", "/sessions/solo/messages/send-text", headers={"Idempotency-Key": "k2"},
                 json={"chatId": "15550000000", "text": "x"})
    reused = platform.api("POST", "/sessions/solo/messages/star", headers={"Idempotency-Key": "k2"},
                          json={"chatId": "15550000000", "messageId": wa_id})
    assert reused.status_code == 409
    # Nor an action's key for a send.
    sent_again = platform.api("POST", "/sessions/solo/messages/send-text",
                              headers={"Idempotency-Key": "react-1"},
                              json={"chatId": "15550000000", "text": "x"})
    assert sent_again.status_code == 409
    # Same poll twice with one key: one message.
    poll = {"chatId": "15550000000", "name": "Q", "options": ["a", "b"]}
    p1 = platform.api("POST", "/sessions/solo/messages/send-poll", json=poll,
                      headers={"Idempotency-Key": "poll-1"})
    p2 = platform.api("POST", "/sessions/solo/messages/send-poll", json=poll,
                      headers={"Idempotency-Key": "poll-1"})
    assert p1.status_code == p2.status_code == 201 and p1.get_json() == p2.get_json()
    assert [a["action"] for a in actions_of(platform, alice["id"])].count("poll") == 1

    # The engine's refusals: editing someone else's message, an unknown message id.
    echo = wait_for(lambda: platform.api("GET", "/sessions/solo/messages?direction=incoming")
                    .get_json()["messages"], 10, message="the echo")[0]
    edit = platform.api("POST", "/sessions/solo/messages/edit", json={
        "chatId": "15550000000", "messageId": echo["messageId"], "text": "no"})
    assert edit.status_code == 502 and edit.get_json()["code"] == "ENGINE_ERROR"
    unknown = platform.api("POST", "/sessions/solo/messages/star", json={
        "chatId": "15550000000", "messageId": "nonsense"})
    assert unknown.status_code == 502

    bad = [("pin", {"chatId": "15550000000", "messageId": wa_id, "durationSeconds": 1234}),
           ("react", {"chatId": "15550000000", "messageId": wa_id, "emoji": "abc"}),
           ("react", {"chatId": "15550000000", "messageId": wa_id, "emoji": "👍", "extra": 1}),
           ("send-poll", {"chatId": "15550000000", "name": "Q", "options": ["a"]}),
           ("send-poll", {"chatId": "15550000000", "name": "Q", "options": ["a", "a"]}),
           ("send-location", {"chatId": "15550000000", "latitude": "1", "longitude": 2}),
           ("send-location", {"chatId": "15550000000", "latitude": 91, "longitude": 2}),
           ("send-contact", {"chatId": "15550000000", "contactName": "x",
                             "contactNumber": "123456789-123456@g.us"}),
           ("delete", {"chatId": "15550000000", "messageId": wa_id, "forEveryone": "yes"})]
    for segment, payload in bad:
        reply = platform.api("POST", f"/sessions/solo/messages/{segment}", json=payload)
        assert reply.status_code == 400, (segment, payload, reply.get_json())
        assert reply.get_json()["statusCode"] == 400

    assert platform.api("POST", "/sessions/solo/stop").status_code == 200
    platform.wait_status("solo", "disconnected")
    refused = platform.api("POST", "/sessions/solo/messages/react", json=body)
    assert refused.status_code == 409 and refused.get_json()["code"] == "SESSION_NOT_READY"


def test_actions_keep_their_place_in_the_sessions_queue(platform):
    """Sends and actions answered 202 (not waited for) are carried out in the order they were
    made: each reaction, made right after the send of its message and naming it by our id,
    finds the message sent and is stored on it."""
    platform.start_host()
    platform.create_ready_session("order")
    platform.app.config["OPENWA"].send_wait_timeout = 0  # answer at once: 202 unless already sent
    ids, pending = [], 0
    for n in range(15):
        sent = platform.api("POST", "/sessions/order/messages/send-text",
                            json={"chatId": "15550000000", "text": f"m{n}"})
        assert sent.status_code in (201, 202)
        pending += sent.status_code == 202
        our_id = sent.get_json().get("id") or message(platform, "order", sent.get_json()["messageId"])["id"]
        reacted = platform.api("POST", "/sessions/order/messages/react", json={
            "chatId": "15550000000", "messageId": our_id, "emoji": "👍"})
        assert reacted.status_code in (200, 202), reacted.get_json()
        ids.append(our_id)

    def all_reacted():
        return all(message(platform, "order", i)["reactions"] for i in ids)

    assert pending > 0  # the API did not wait: only the queue kept the order
    wait_for(all_reacted, 30, message="every reaction stored on its message")
    assert all(message(platform, "order", i)["status"] in ("sent", "delivered", "read") for i in ids)
