"""Every route of the session's engine surface is implemented by the mock engine or answers
501 ENGINE_UNSUPPORTED — never 404 or 500 (issue 13.6).

The walk is generic: it reads the OpenAPI document and calls every operation below
``/sessions/{sid}/`` that documents 501 (the engine's statuses), so a route added later is
walked too. Path parameters get real resources (a chat with traffic, a group the session
created, a message it sent); a body is the operation's documented ``example`` when it has
one, else it is built from the schema's required fields (by field name, then by type)."""
from __future__ import annotations

import base64
import struct
import zlib
from typing import Any

import pytest

from tests.integration.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ECHO = "15550000000@c.us"
METHODS = ("get", "post", "put", "patch", "delete")
#: Linking steps and test hooks: not part of what an engine does for a linked account.
NOT_SURFACE = ("/pairing-code", "/mock/", "/qr")
#: This issue's routes (api.md "Contacts, chats, groups"): all of them must be in the walk.
OWN_ROUTES = {
    ("get", "/contacts"), ("get", "/contacts/{contactId}"), ("get", "/contacts/{contactId}/picture"),
    ("get", "/contacts/check/{number}"), ("post", "/contacts/{contactId}/block"),
    ("post", "/contacts/{contactId}/unblock"), ("get", "/chats"), ("post", "/chats/read"),
    ("post", "/chats/unread"), ("post", "/chats/archive"), ("post", "/chats/unarchive"),
    ("post", "/chats/pin"), ("post", "/chats/unpin"), ("post", "/chats/mute"),
    ("post", "/chats/unmute"), ("delete", "/chats/{chatId}"), ("post", "/presence"),
    ("get", "/groups"), ("post", "/groups"), ("get", "/groups/{groupId}"),
    ("post", "/groups/{groupId}/participants"), ("delete", "/groups/{groupId}/participants"),
    ("post", "/groups/{groupId}/participants/promote"),
    ("post", "/groups/{groupId}/participants/demote"), ("put", "/groups/{groupId}/subject"),
    ("put", "/groups/{groupId}/description"), ("put", "/groups/{groupId}/settings"),
    ("get", "/groups/{groupId}/invite-code"), ("post", "/groups/{groupId}/invite-code"),
    ("post", "/groups/{groupId}/invite-code/revoke"), ("post", "/groups/join"),
    ("post", "/groups/{groupId}/leave")}


def engine_surface(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for path, item in document["paths"].items():
        if not path.startswith("/api/sessions/{sid}/") or any(p in path for p in NOT_SURFACE):
            continue
        for method in METHODS:
            operation = item.get(method)
            if operation is not None and "501" in operation.get("responses", {}):
                found.append((method, path, operation))
    return found


def _png(side: int = 16) -> bytes:
    """A real RGB PNG, written by hand (no imaging library needed)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + bytes((10, 120, 200)) * side for _ in range(side))
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


def media_bodies() -> dict[str, dict[str, Any]]:
    """Bodies of the media sends (issue 12): small real files of each kind, made here."""
    mp4 = struct.pack(">I", 24) + b"ftypisom" + b"\x00\x00\x02\x00" + b"isomiso2" + b"\x00" * 512
    ogg = (b"OggS" + b"\x00\x02" + b"\x00" * 8 + struct.pack("<I", 1) + b"\x00" * 8 + b"\x01\x13"
           + b"OpusHead" + b"\x00" * 512)
    pdf = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
    files = {"image": (_png(), "image/png"), "sticker": (_png(), "image/png"),
             "video": (mp4, "video/mp4"), "audio": (ogg, "audio/ogg"),
             "document": (pdf, "application/pdf")}
    return {f"send-{kind}": {"chatId": ECHO, "base64": base64.b64encode(data).decode(),
                             "mimetype": mime} for kind, (data, mime) in files.items()}


def destructive(method: str, path: str) -> bool:
    return method == "delete" or path.endswith(("/leave", "/delete", "/logout"))


class Bodies:
    """A valid body for an operation, from its example or its schema."""

    def __init__(self, document: dict[str, Any], values: dict[str, Any]) -> None:
        self.schemas = document.get("components", {}).get("schemas", {})
        self.values = values

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            schema = self.schemas[schema["$ref"].rsplit("/", 1)[1]]
        return schema

    def for_operation(self, operation: dict[str, Any]) -> Any:
        content = operation.get("requestBody", {}).get("content", {}).get("application/json")
        if content is None:
            return None
        if "example" in content:
            return content["example"]
        return self.build(content["schema"], None)

    def build(self, schema: dict[str, Any], name: str | None) -> Any:
        schema = self.resolve(schema)
        if name in self.values:
            return self.values[name]
        if "enum" in schema:
            return schema["enum"][0]
        kind = schema.get("type")
        if kind == "object" or "properties" in schema:
            properties = schema.get("properties", {})
            return {key: self.build(properties[key], key) for key in schema.get("required", [])}
        if kind == "array":
            item = self.build(schema.get("items", {}), None)
            return [item] * max(1, schema.get("minItems", 1))
        if kind == "integer":
            return int(schema.get("minimum", 1))
        if kind == "number":
            return float(schema.get("minimum", 1))
        if kind == "boolean":
            return False
        return "walk"


def test_every_engine_route_is_implemented_or_answers_501(platform):
    platform.start_host()
    platform.create_ready_session("walker")
    platform.create_ready_session("member")
    member = f"{platform.request('GET', '/sessions/member')[1]['phone']}@c.us"
    sent = platform.api("POST", "/sessions/walker/messages/send-text",
                        json={"chatId": ECHO, "text": "walk"})
    assert sent.status_code == 201, sent.get_json()
    wait_for(lambda: platform.request("GET", "/sessions/walker/messages?direction=incoming")[1][
        "total"], 20, 0.1, "the echo's reply")
    group = platform.api("POST", "/sessions/walker/groups",
                         json={"name": "Walk", "participants": [member]})
    assert group.status_code == 201, group.get_json()
    gid = group.get_json()["id"]
    code = platform.api("GET", f"/sessions/walker/groups/{gid}/invite-code").get_json()
    message_id = sent.get_json()["messageId"]
    path_values = {"sid": "walker", "chatId": ECHO, "contactId": ECHO, "groupId": gid,
                   "number": ECHO.split("@")[0], "messageId": message_id,
                   "message_id": message_id}
    body_values = {"chatId": ECHO, "toChatId": ECHO, "fromChatId": ECHO, "messageId": message_id,
                   "quotedMessageId": message_id, "participants": [member],
                   "inviteCode": code["inviteCode"], "text": "walk", "name": "walk",
                   "subject": "walk", "description": "walk", "contactName": "Walk",
                   "contactNumber": ECHO.split("@")[0], "latitude": 1.5, "longitude": 2.5,
                   "emoji": "👍", "options": ["a", "b"]}
    document = platform.api("GET", "/openapi.json").get_json()
    operations = engine_surface(document)
    assert len(operations) >= 25  # at least this issue's own routes
    bodies = Bodies(document, body_values)
    media = media_bodies()
    ordered = sorted(operations, key=lambda o: (destructive(o[0], o[1]), o[0] != "get",
                                                o[1].endswith("/leave"), o[1]))
    wrong = []
    for method, path, operation in ordered:
        url = path[len("/api"):]
        for name, value in path_values.items():
            url = url.replace("{" + name + "}", value)
        assert "{" not in url, f"no value for a parameter of {path}"
        body = media.get(path.rsplit("/", 1)[1]) or bodies.for_operation(operation)
        reply = platform.api(method.upper(), url, **({} if body is None else {"json": body}))
        if not (200 <= reply.status_code < 300 or reply.status_code == 501):
            wrong.append(f"{method.upper()} {path} {body}: {reply.status_code} {reply.get_json()}")
        elif reply.status_code == 501:
            assert reply.get_json()["code"] == "ENGINE_UNSUPPORTED"
    assert wrong == []
    walked = {(m, p[len("/api/sessions/{sid}"):]) for m, p, _ in ordered}
    assert OWN_ROUTES <= walked, sorted(OWN_ROUTES - walked)
