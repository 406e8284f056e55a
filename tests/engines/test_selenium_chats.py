"""The selenium engine's chats, contacts, presence and groups (issue 13.2/3) through real
Chromium on the stand-in: each routine makes the wa-js call it should, with the right
arguments (the stand-in records them), and each wa-js event becomes the right engine event."""
from __future__ import annotations

import pytest

from engines import EngineNotFound, EventKind
from tests.engines.test_selenium import make_engine  # noqa: F401 (the fixture, used below)
from tests.engines.test_selenium import MakeEngine, kind, link, pump
from tests.standin import StandIn

pytestmark = pytest.mark.selenium

PHONE = "15551110001"
ME = f"{PHONE}@c.us"
BOB = "15552220002@c.us"


@pytest.fixture
def engines(make_engine: MakeEngine) -> MakeEngine:  # noqa: F811 (the imported fixture)
    return make_engine


def test_chat_contact_and_presence_routines_call_wa_js(engines: MakeEngine, standin: StandIn):
    engine = engines("chats")
    link(engine, standin, PHONE)
    standin.incoming(PHONE, "15552220002", "hello")
    pump(engine, kind(EventKind.MESSAGE))
    engine.archive_chat(BOB, True)
    engine.pin_chat(BOB, True)
    engine.mute_chat(BOB, 3600)
    chat = next(c for c in engine.chats() if c["id"] == BOB)
    assert (chat["archived"], chat["pinned"], chat["muted"], chat["isGroup"]) == (
        True, True, True, False)
    assert chat["unreadCount"] == 1
    engine.mark_chat_read(BOB, True)
    assert next(c for c in engine.chats() if c["id"] == BOB)["unreadCount"] == 0
    engine.mark_chat_read(BOB, False)
    assert next(c for c in engine.chats() if c["id"] == BOB)["unreadCount"] == 1
    engine.archive_chat(BOB, False)
    engine.pin_chat(BOB, False)
    engine.mute_chat(BOB, None)
    engine.mute_chat(BOB, 0)
    engine.delete_chat(BOB)
    engine.set_presence("available")
    engine.set_presence("unavailable")
    for state in ("typing", "recording", "paused"):
        engine.set_chat_state(BOB, state)
    assert standin.calls_named("chat.archive") == [[BOB, True], [BOB, False]]
    assert standin.calls_named("chat.pin") == [[BOB, True], [BOB, False]]
    assert standin.calls_named("chat.mute") == [[BOB, {"duration": 3600}], [BOB, {"expiration": -1}]]
    assert standin.calls_named("chat.unmute") == [[BOB]]
    assert standin.calls_named("chat.markIsRead") == [[BOB]]
    assert standin.calls_named("chat.markIsUnread") == [[BOB]]
    assert standin.calls_named("chat.delete") == [[BOB]]
    assert standin.calls_named("conn.markAvailable") == [[True], [False]]
    assert standin.calls_named("chat.markIsComposing") == [[BOB]]
    assert standin.calls_named("chat.markIsRecording") == [[BOB]]
    assert standin.calls_named("chat.markIsPaused") == [[BOB]]
    assert all(c["id"] != BOB for c in engine.chats())

    contact = engine.contact("15552220002")
    assert contact == {"id": BOB, "number": "15552220002", "name": "Contact 15552220002",
                       "pushName": "Push 15552220002", "isBusiness": False, "isBlocked": False,
                       "about": "busy"}
    with pytest.raises(EngineNotFound):
        engine.contact("15552220000")
    assert engine.contact_picture(BOB) == f"https://pps.whatsapp.net/{BOB}.jpg"
    assert engine.contact_picture("15559990001") is None
    assert standin.calls_named("contact.getProfilePictureUrl")[0] == [BOB, True]
    engine.block_contact(BOB, True)
    assert engine.contact(BOB)["isBlocked"] is True
    engine.block_contact(BOB, False)
    assert standin.calls_named("blocklist.blockContact") == [[BOB]]
    assert standin.calls_named("blocklist.unblockContact") == [[BOB]]


def test_group_routines_call_wa_js(engines: MakeEngine, standin: StandIn):
    engine = engines("groups")
    link(engine, standin, "15551110002")
    me = "15551110002@c.us"
    created = engine.create_group("Team", [BOB, "15553330000"])
    gid = created["id"]
    assert standin.calls_named("group.create") == [["Team", [BOB, "15553330000@c.us"]]]
    assert created["subject"] == "Team" and created["owner"] == me
    assert [(r["id"], r["code"], r["success"]) for r in created["results"]] == [
        (BOB, 200, True), ("15553330000@c.us", 403, False)]
    assert created["participants"] == [
        {"id": me, "isAdmin": True, "isSuperAdmin": True},
        {"id": BOB, "isAdmin": False, "isSuperAdmin": False}]
    assert [g["id"] for g in engine.groups()] == [gid]
    carol = "15554440004@c.us"
    added = engine.change_participants(gid, "add", [carol, BOB])
    assert [(r["id"], r["code"]) for r in added] == [(carol, 200), (BOB, 409)]
    engine.change_participants(gid, "promote", [carol])
    engine.change_participants(gid, "demote", [carol])
    engine.change_participants(gid, "remove", [carol])
    assert standin.calls_named("group.addParticipants") == [[gid, [carol, BOB]]]
    assert standin.calls_named("group.promoteParticipants") == [[gid, [carol]]]
    assert standin.calls_named("group.demoteParticipants") == [[gid, [carol]]]
    assert standin.calls_named("group.removeParticipants") == [[gid, [carol]]]
    engine.set_group_subject(gid, "Team 2")
    engine.set_group_description(gid, "about")
    engine.set_group_settings(gid, True, None)
    engine.set_group_settings(gid, None, False)
    assert standin.calls_named("group.setSubject") == [[gid, "Team 2"]]
    assert standin.calls_named("group.setDescription") == [[gid, "about"]]
    assert standin.calls_named("group.setProperty") == [[gid, "announcement", True],
                                                        [gid, "restrict", False]]
    info = engine.group_info(gid)
    assert (info["subject"], info["description"], info["settings"]) == (
        "Team 2", "about", {"announce": True, "restrict": False})
    code = engine.group_invite_code(gid, False)
    fresh = engine.group_invite_code(gid, True)
    assert code != fresh and standin.calls_named("group.revokeInviteCode") == [[gid]]
    assert engine.join_group(fresh) == gid
    assert standin.calls_named("group.join") == [[fresh]]
    engine.leave_group(gid)
    assert standin.calls_named("group.leave") == [[gid]]
    with pytest.raises(EngineNotFound):
        engine.group_info("120363999999999999@g.us")


def test_group_presence_and_call_events_are_mapped(engines: MakeEngine, standin: StandIn):
    engine = engines("events")
    phone = "15551110003"
    link(engine, standin, phone)
    gid = "120363000000000042@g.us"

    def push(name: str, value: dict) -> None:
        standin.push(standin.device_for(phone=phone), {"type": "wpp", "name": name, "value": value})

    push("group.participant_changed", {"groupId": gid, "action": "add", "operation": "add",
                                       "author": BOB, "participants": [f"{phone}@c.us"]})
    joined = pump(engine, kind(EventKind.GROUP_JOIN))
    assert joined.data == {"groupId": gid, "participants": [f"{phone}@c.us"], "by": BOB,
                           "action": "add"}
    push("group.participant_changed", {"groupId": gid, "action": "leaver", "operation": "remove",
                                       "participants": [BOB]})
    left = pump(engine, kind(EventKind.GROUP_LEAVE))
    assert left.data["action"] == "leave" and left.data["participants"] == [BOB]
    push("group.participant_changed", {"groupId": gid, "action": "promote", "author": BOB,
                                       "operation": "promote", "participants": [BOB]})
    assert pump(engine, kind(EventKind.GROUP_UPDATE)).data["action"] == "promote"
    push("chat.new_message", {"id": f"false_{gid}_3A01_{BOB}", "from": gid, "to": f"{phone}@c.us",
                              "author": BOB, "type": "gp2", "subtype": "subject", "body": "New name",
                              "t": 1700000000})
    renamed = pump(engine, kind(EventKind.GROUP_UPDATE, action="subject"))
    assert renamed.data == {"groupId": gid, "participants": [], "by": BOB, "action": "subject",
                            "subject": "New name"}
    push("chat.new_message", {"id": f"false_{gid}_3A02_{BOB}", "from": gid, "author": BOB,
                              "type": "gp2", "subtype": "announce", "body": "on", "t": 1700000001})
    settings = pump(engine, kind(EventKind.GROUP_UPDATE, action="settings"))
    assert settings.data["changed"] == "announce" and settings.data["groupId"] == gid
    push("chat.presence_change", {"id": BOB, "isOnline": True, "isGroup": False, "isUser": True,
                                  "shortName": "Bob", "state": "typing", "t": 1})
    assert pump(engine, kind(EventKind.PRESENCE)).data == {"chatId": BOB, "from": BOB,
                                                           "state": "typing"}
    push("chat.presence_change", {"id": gid, "isOnline": True, "isGroup": True, "isUser": False,
                                  "shortName": "Team", "state": "available", "t": 1,
                                  "participants": [{"id": BOB, "state": "recording",
                                                    "shortName": "Bob"}]})
    assert pump(engine, kind(EventKind.PRESENCE, chatId=gid)).data == {
        "chatId": gid, "from": BOB, "state": "recording"}
    push("call.incoming_call", {"id": "CALL1", "isGroup": False, "isVideo": True,
                                "offerTime": 1700000000, "sender": BOB, "peerJid": BOB})
    assert pump(engine, kind(EventKind.CALL)).data == {
        "callId": "CALL1", "from": BOB, "isVideo": True, "isGroup": False,
        "timestamp": 1700000000}
