"""The mock engine's chats, contacts, presence and groups (issue 13.2/3): WhatsApp-like state
shared by the mock accounts of one deployment, and the events each member's device gets."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engines.base import EngineNotFound, EngineUnsupported, EventKind
from engines.mock import ECHO_ID, MockEngine, MockOptions
from tests.engines.test_mock import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def ready(tmp_path: Path, clock: FakeClock, session_id: str) -> MockEngine:
    engine = MockEngine(session_id, tmp_path / "sessions" / session_id,
                        MockOptions(ack_interval_seconds=0.1), clock=clock)
    engine.start()
    engine.simulate_scan()
    engine.poll()
    return engine


def events(engine: MockEngine, kind: EventKind) -> list[dict[str, Any]]:
    return [e.data for e in engine.poll() if e.kind is kind]


def me(engine: MockEngine) -> str:
    return f"{engine.phone}@c.us"


def test_a_created_group_lists_its_participants_and_admins_on_every_member(tmp_path, clock):
    alice, bob = ready(tmp_path, clock, "alice"), ready(tmp_path, clock, "bob")
    created = alice.create_group("Team", [me(bob), "15551230000"])
    assert [(r["id"], r["code"], r["success"]) for r in created["results"]] == [
        (me(bob), 200, True), ("15551230000@c.us", 404, False)]
    gid = created["id"]
    assert gid.endswith("@g.us") and created["subject"] == "Team" and created["owner"] == me(alice)
    info = bob.group_info(gid)
    assert info["participants"] == [
        {"id": me(alice), "isAdmin": True, "isSuperAdmin": True},
        {"id": me(bob), "isAdmin": False, "isSuperAdmin": False}]
    assert [g["id"] for g in bob.groups()] == [gid]
    joined = events(bob, EventKind.GROUP_JOIN)
    assert joined == [{"groupId": gid, "participants": [me(alice), me(bob)], "by": me(alice),
                       "action": "create", "subject": "Team"}]


def test_two_members_exchange_messages_and_see_admin_changes(tmp_path, clock):
    alice, bob = ready(tmp_path, clock, "alice"), ready(tmp_path, clock, "bob")
    gid = alice.create_group("Team", [me(bob)])["id"]
    bob.poll()
    alice.send_text(gid, "hello team", message_id="3EB0AAAA")
    got = events(bob, EventKind.MESSAGE)
    assert got[0]["chatId"] == gid and got[0]["from"] == me(alice) and got[0]["body"] == "hello team"
    bob.send_text(gid, "hi alice", message_id="3EB0BBBB")
    assert [m["body"] for m in events(alice, EventKind.MESSAGE)] == ["hi alice"]
    # promote: bob sees it, and may now change settings
    assert alice.change_participants(gid, "promote", [me(bob)])[0]["success"] is True
    assert events(bob, EventKind.GROUP_UPDATE) == [
        {"groupId": gid, "participants": [me(bob)], "by": me(alice), "action": "promote"}]
    bob.set_group_settings(gid, True, None)
    assert alice.group_info(gid)["settings"] == {"announce": True, "restrict": False}
    # demote: in an announce group bob may no longer send
    alice.change_participants(gid, "demote", [me(bob)])
    with pytest.raises(Exception, match="only admins"):
        bob.send_text(gid, "still here?", message_id="3EB0CCCC")
    # the creator cannot be removed; a non-member cannot be demoted
    results = alice.change_participants(gid, "remove", [me(alice), "15557654321"])
    assert [(r["code"], r["success"]) for r in results] == [(403, False), (404, False)]
    # remove: bob gets group_leave and loses the group
    alice.change_participants(gid, "remove", [me(bob)])
    assert events(bob, EventKind.GROUP_LEAVE)[-1]["participants"] == [me(bob)]
    with pytest.raises(EngineNotFound):
        bob.group_info(gid)


def test_subject_description_invite_join_and_leave(tmp_path, clock):
    alice, bob = ready(tmp_path, clock, "alice"), ready(tmp_path, clock, "bob")
    gid = alice.create_group("Old", [])["id"]
    alice.set_group_subject(gid, "New")
    alice.set_group_description(gid, "about us")
    info = alice.group_info(gid)
    assert (info["subject"], info["description"]) == ("New", "about us")
    code = alice.group_invite_code(gid, False)
    assert alice.group_invite_code(gid, False) == code
    fresh = alice.group_invite_code(gid, True)
    assert fresh != code
    with pytest.raises(EngineNotFound):
        bob.join_group(code)  # revoked
    assert bob.join_group(fresh) == gid
    assert events(alice, EventKind.GROUP_JOIN)[-1] == {
        "groupId": gid, "participants": [me(bob)], "by": me(bob), "action": "join"}
    bob.leave_group(gid)
    assert events(alice, EventKind.GROUP_LEAVE)[-1]["action"] == "leave"
    assert [p["id"] for p in alice.group_info(gid)["participants"]] == [me(alice)]


def test_chat_flags_read_unread_mute_and_delete(tmp_path, clock):
    alice = ready(tmp_path, clock, "alice")
    with pytest.raises(EngineNotFound):
        alice.archive_chat(ECHO_ID, True)  # no such chat yet
    alice.send_text(ECHO_ID, "ping", message_id="3EB0DDDD")
    clock.advance(1)
    alice.poll()  # the echo's reply: one unread
    chat = next(c for c in alice.chats() if c["id"] == ECHO_ID)
    assert chat["unreadCount"] == 1 and not chat["archived"] and not chat["isGroup"]
    alice.archive_chat(ECHO_ID, True)
    alice.pin_chat(ECHO_ID, True)
    alice.mute_chat(ECHO_ID, 60)
    alice.mark_chat_read(ECHO_ID, True)
    chat = next(c for c in alice.chats() if c["id"] == ECHO_ID)
    assert (chat["archived"], chat["pinned"], chat["muted"], chat["unreadCount"]) == (
        True, True, True, 0)
    clock.advance(61)
    assert next(c for c in alice.chats() if c["id"] == ECHO_ID)["muted"] is False
    alice.mute_chat(ECHO_ID, None)
    alice.mark_chat_read(ECHO_ID, False)
    chat = next(c for c in alice.chats() if c["id"] == ECHO_ID)
    assert chat["muted"] is True and chat["unreadCount"] == 1
    alice.delete_chat(ECHO_ID)
    assert all(c["id"] != ECHO_ID for c in alice.chats())


def test_contacts_block_presence_and_calls(tmp_path, clock):
    alice, bob = ready(tmp_path, clock, "alice"), ready(tmp_path, clock, "bob")
    contact = alice.contact(me(bob))
    assert contact["number"] == bob.phone and contact["isBlocked"] is False
    alice.block_contact(me(bob), True)
    assert alice.contact(me(bob))["isBlocked"] is True
    alice.block_contact(me(bob), False)
    assert alice.contact(me(bob))["isBlocked"] is False
    with pytest.raises(EngineNotFound):
        alice.contact("15551230000")
    assert alice.contact_picture(ECHO_ID).startswith("https://")
    assert alice.contact_picture(me(bob)) is None
    alice.set_chat_state(me(bob), "typing")
    assert events(bob, EventKind.PRESENCE) == [
        {"chatId": me(alice), "from": me(alice), "state": "typing"}]
    alice.send_text(me(bob), "hi", message_id="3EB0EEEE")
    alice.set_presence("unavailable")
    assert events(bob, EventKind.PRESENCE)[-1]["state"] == "unavailable"
    alice.simulate_incoming_call(me(bob), is_video=True)
    call = events(alice, EventKind.CALL)[0]
    assert call["from"] == me(bob) and call["isVideo"] is True


def test_an_engine_without_the_routines_says_unsupported(tmp_path):
    from engines.base import Engine

    class Bare(Engine):  # the protocol's defaults, nothing else
        name = "bare"

        def start(self) -> None:
            pass

        def close(self) -> None:
            pass

        def logout(self) -> None:
            pass

        def poll(self) -> list:  # type: ignore[type-arg]
            return []

        def send_text(self, chat_id, text, **kwargs):  # type: ignore[no-untyped-def]
            raise EngineUnsupported("no")

    from tasks.sessions import COMMAND_METHODS, QUERY_METHODS_CHATS

    bare = Bare("b", tmp_path, MockOptions())
    mock = MockEngine("m", tmp_path / "m", MockOptions())
    for method in sorted(COMMAND_METHODS | QUERY_METHODS_CHATS):
        function = getattr(bare, method)
        arity = function.__code__.co_argcount - 1
        with pytest.raises(EngineUnsupported):
            function(*["x"] * arity)
        # and the mock engine has its own implementation of every one
        assert getattr(MockEngine, method) is not getattr(Engine, method), method
        assert callable(getattr(mock, method))
