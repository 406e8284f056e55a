"""Chats, contacts, presence and groups through real processes on the mock engine (issue
13.2/3/4/7): API → session queue → host → engine → mock network → the other session's host →
stored history and webhooks (with filters); allowedChats refusals."""
from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import _key, auth
from tests.integration.conftest import wait_for
from tests.webhooks.receiver import Receiver

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KEY = "groups-encryption-key-abcdefghij"
ENV = {"WEBHOOK_ALLOW_PRIVATE": "true", "WEBHOOK_RETRY_DELAY": "200",
       "WEBHOOK_SWEEP_INTERVAL": "1", "WEBHOOK_TIMEOUT": "2000", "ENCRYPTION_KEY": KEY}
ECHO = "15550000000@c.us"


@pytest.fixture
def pair(platform):
    config = platform.app.config["OPENWA"]
    config.webhook_allow_private, config.encryption_key = True, KEY
    platform.env.update(ENV)
    receiver = Receiver().start()
    platform.start_host()
    platform.start("worker")
    alice = platform.create_ready_session("alice")
    bob = platform.create_ready_session("bob")
    yield platform, receiver, f"{alice['phone']}@c.us", f"{bob['phone']}@c.us"
    receiver.stop()


def ok(reply: Any, status: int = 200) -> Any:
    assert reply.status_code == status, reply.get_json()
    return reply.get_json()


def test_two_sessions_in_one_group_exchange_messages_and_admin_changes(pair):
    platform, receiver, alice, bob = pair
    # bob hears group events only (filters: isGroup), not his 1:1 chats
    ok(platform.api("POST", "/sessions/bob/webhooks", json={
        "url": receiver.url, "filters": {"isGroup": True},
        "events": ["group.join", "group.update", "group.leave", "message.received",
                   "presence.update"]}), 201)
    created = ok(platform.api("POST", "/sessions/alice/groups", json={
        "name": "Team", "participants": [bob, "15551230000"]}), 201)
    gid = created["id"]
    assert [(r["id"], r["success"], r["code"]) for r in created["results"]] == [
        (bob, True, 200), ("15551230000@c.us", False, 404)]
    info = ok(platform.api("GET", f"/sessions/bob/groups/{gid}"))
    assert {p["id"]: p["isAdmin"] for p in info["participants"]} == {alice: True, bob: False}
    assert info["owner"] == alice and info["subject"] == "Team"
    assert [g["id"] for g in ok(platform.api("GET", "/sessions/bob/groups"))] == [gid]

    joined = wait_for(lambda: receiver.events("group.join"), 20, 0.05, "group.join at bob")
    assert joined[0]["data"]["groupId"] == gid and joined[0]["data"]["action"] == "create"

    # a group message: stored in bob's history, delivered to his webhook
    ok(platform.api("POST", "/sessions/alice/messages/send-text",
                    json={"chatId": gid, "text": "hello team"}), 201)
    message = wait_for(lambda: receiver.events("message.received"), 20, 0.05, "group message")
    assert message[0]["data"]["chatId"] == gid and message[0]["data"]["from"] == alice
    history = ok(platform.api("GET", f"/sessions/bob/messages?chatId={gid}"))
    assert [m["body"] for m in history["messages"]] == ["hello team"]

    # admin changes reach bob
    results = ok(platform.api("POST", f"/sessions/alice/groups/{gid}/participants/promote",
                              json={"participants": [bob]}))
    assert results == [{"id": bob, "success": True, "code": 200, "message": "promoted"}]
    update = wait_for(lambda: [e for e in receiver.events("group.update")
                               if e["data"]["action"] == "promote"], 20, 0.05, "promote")
    assert update[0]["data"]["participants"] == [bob] and update[0]["data"]["by"] == alice
    ok(platform.api("PUT", f"/sessions/bob/groups/{gid}/subject", json={"subject": "Team 2"}))
    assert ok(platform.api("GET", f"/sessions/alice/groups/{gid}"))["subject"] == "Team 2"

    # typing: in the group it reaches bob's webhook; in the 1:1 chat the filter holds it back
    ok(platform.api("POST", "/sessions/alice/presence", json={"chatId": bob, "state": "typing"}))
    ok(platform.api("POST", "/sessions/alice/presence", json={"chatId": gid, "state": "recording"}))
    typing = wait_for(lambda: receiver.events("presence.update"), 20, 0.05, "presence")
    assert [(e["data"]["chatId"], e["data"]["state"]) for e in typing] == [(gid, "recording")]

    # invite code, revoke, leave
    code = ok(platform.api("GET", f"/sessions/alice/groups/{gid}/invite-code"))
    assert code["inviteLink"].endswith(code["inviteCode"])
    fresh = ok(platform.api("POST", f"/sessions/alice/groups/{gid}/invite-code/revoke"))
    assert fresh["inviteCode"] != code["inviteCode"]
    ok(platform.api("POST", f"/sessions/bob/groups/{gid}/leave"))
    left = wait_for(lambda: ok(platform.api("GET", f"/sessions/alice/groups/{gid}"))
                    if len(ok(platform.api("GET", f"/sessions/alice/groups/{gid}"))["participants"]) == 1
                    else None, 20, 0.1, "bob gone")
    assert left["participants"][0]["id"] == alice
    assert platform.api("GET", f"/sessions/bob/groups/{gid}").status_code == 404
    joined_again = ok(platform.api("POST", "/sessions/bob/groups/join",
                                   json={"inviteCode": fresh["inviteCode"]}))
    assert joined_again == {"groupId": gid}
    assert platform.api("POST", "/sessions/bob/groups/join",
                        json={"inviteCode": code["inviteCode"]}).status_code == 404  # revoked


def test_chat_actions_contacts_and_allowed_chats(pair):
    platform, _, alice, bob = pair
    ok(platform.api("POST", "/sessions/alice/messages/send-text",
                    json={"chatId": ECHO, "text": "ping"}), 201)

    # the echo's reply is stored before the chat list is read (lists are cached CACHE_TTL)
    wait_for(lambda: ok(platform.api("GET", "/sessions/alice/messages?direction=incoming"))[
        "total"], 20, 0.1, "the echo's reply")
    chat = [c for c in ok(platform.api("GET", "/sessions/alice/chats")) if c["id"] == ECHO][0]
    assert chat["unreadCount"] == 1
    assert chat == {**chat, "isGroup": False, "archived": False, "pinned": False, "muted": False}
    for action in ("archive", "pin", "read"):
        assert ok(platform.api("POST", f"/sessions/alice/chats/{action}",
                               json={"chatId": ECHO})) == {"success": True}
    ok(platform.api("POST", "/sessions/alice/chats/mute", json={"chatId": ECHO, "duration": 3600}))
    chat = [c for c in ok(platform.api("GET", "/sessions/alice/chats")) if c["id"] == ECHO][0]
    assert (chat["archived"], chat["pinned"], chat["muted"], chat["unreadCount"]) == (
        True, True, True, 0)
    for action in ("unarchive", "unpin", "unmute", "unread"):
        ok(platform.api("POST", f"/sessions/alice/chats/{action}", json={"chatId": ECHO}))
    chat = [c for c in ok(platform.api("GET", "/sessions/alice/chats")) if c["id"] == ECHO][0]
    assert (chat["archived"], chat["pinned"], chat["muted"], chat["unreadCount"]) == (
        False, False, False, 1)
    assert platform.api("POST", "/sessions/alice/chats/archive",
                        json={"chatId": "15557777777"}).status_code == 404  # no such chat
    assert platform.api("POST", "/sessions/alice/chats/mute",
                        json={"chatId": ECHO, "duration": -5}).status_code == 400
    ok(platform.api("DELETE", f"/sessions/alice/chats/{ECHO}"))
    assert all(c["id"] != ECHO for c in ok(platform.api("GET", "/sessions/alice/chats")))

    # contacts
    contact = ok(platform.api("GET", f"/sessions/alice/contacts/{bob}"))
    assert contact["number"] == bob.split("@")[0] and contact["isBlocked"] is False
    assert platform.api("GET", "/sessions/alice/contacts/15551230000").status_code == 404
    assert platform.api("GET", f"/sessions/alice/contacts/{bob}/picture").status_code == 404
    assert ok(platform.api("GET", f"/sessions/alice/contacts/{ECHO}/picture"))["url"]
    ok(platform.api("POST", f"/sessions/alice/contacts/{bob}/block"))
    assert ok(platform.api("GET", f"/sessions/alice/contacts/{bob}"))["isBlocked"] is True
    ok(platform.api("POST", f"/sessions/alice/contacts/{bob}/unblock"))
    assert platform.api("GET", "/sessions/alice/contacts/not-a-number").status_code == 404  # no route
    ok(platform.api("POST", "/sessions/alice/presence", json={"presence": "available"}))
    assert platform.api("POST", "/sessions/alice/presence",
                        json={"presence": "available", "state": "typing"}).status_code == 400

    # allowedChats: only bob's chat for this key
    scoped = _key(platform.app, "operator", allowed_chats=[bob])
    headers = auth(scoped)
    client = platform.client

    def status(method: str, path: str, **kwargs: Any) -> int:
        return client.open(f"/api{path}", method=method, headers=headers, **kwargs).status_code

    assert status("POST", "/sessions/alice/messages/send-text",
                  json={"chatId": ECHO, "text": "no"}) == 403
    assert status("POST", "/sessions/alice/messages/send-text",
                  json={"chatId": bob, "text": "yes"}) == 201
    assert status("GET", f"/sessions/alice/contacts/{bob}") == 200
    assert status("GET", f"/sessions/alice/contacts/{ECHO}") == 403
    assert status("POST", "/sessions/alice/chats/archive", json={"chatId": ECHO}) == 403
    assert status("GET", "/sessions/alice/messages") == 403  # names no chat: default-deny
    assert status("POST", "/sessions/alice/groups", json={"name": "x", "participants": [bob]}) == 403
    listed = client.get("/api/sessions/alice/chats", headers=headers).get_json()
    assert [c["id"] for c in listed] == [bob]
    contacts = client.get("/api/sessions/alice/contacts", headers=headers).get_json()
    assert [c["id"] for c in contacts] == [bob]
    key = client.post("/api/auth/validate", headers=headers).get_json()
    assert key["scoped"] is True
