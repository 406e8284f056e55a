"""Chat routes and presence (issue 13.2): the chat list, read/unread, archive, pin, mute,
delete, and the account's presence or typing in a chat.

Reads are engine queries, writes engine commands on the session's queue
(:mod:`app.services.chats`); an engine that cannot do one answers 501 ENGINE_UNSUPPORTED.
A key with ``allowedChats`` reaches only those chats (:func:`guard_chats`).
"""
from __future__ import annotations

import copy
import re
from typing import Any, Callable, TypeVar

from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint
from werkzeug.routing import BaseConverter

from app.auth import current_key, presented_key, require
from app.config import settings
from app.errors import BadRequest, Forbidden
from app.models import Session
from app.schemas.chats import (
    ChatSchema,
    ChatTargetSchema,
    MuteSchema,
    PresenceSchema,
    SuccessSchema,
)
from app.schemas.common import CHAT_ID_PATTERN
from app.services import chats

F = TypeVar("F", bound=Callable[..., Any])

blp = Blueprint("chats", __name__, description="Chats and presence")

_CHAT_ID = re.compile(CHAT_ID_PATTERN)
_GROUP_ID = re.compile(r"^[0-9]{5,20}(-[0-9]{5,20})?@g\.us$")


# -- path converters: a chat, contact or group id segment, never an action's name ---------------
#: ``/chats/archive`` is an action, not ``DELETE /chats/<chatId>`` of a chat named "archive";
#: ``/groups/join`` is not a group. Ids that do not match are no route (404).
CONTACT_ID_PART = r"\+?[0-9]{5,20}|[0-9]{5,20}@c\.us"
GROUP_ID_PART = r"[0-9]{5,20}(?:-[0-9]{5,20})?@g\.us"


def _converter(name: str, part: str) -> type[BaseConverter]:
    def parameter_schema(converter: BaseConverter) -> dict[str, Any]:
        return {"type": "string", "pattern": f"^(?:{part})$", "maxLength": 64}

    return type(name, (BaseConverter,), {"regex": f"(?:{part})",
                                         "parameter_schema": staticmethod(parameter_schema)})


ContactIdConverter = _converter("ContactIdConverter", CONTACT_ID_PART)
GroupIdConverter = _converter("GroupIdConverter", GROUP_ID_PART)
ChatIdConverter = _converter("ChatIdConverter", f"{CONTACT_ID_PART}|{GROUP_ID_PART}")
CONVERTERS = {"contact_id": ContactIdConverter, "group_id": GroupIdConverter,
              "chat_id": ChatIdConverter}


def install_converters(app: Any, api: Any) -> None:
    """Called by the app factory before the blueprints are registered."""
    for name, converter in CONVERTERS.items():
        app.url_map.converters[name] = converter
        api.register_converter(converter, getattr(converter, "parameter_schema"))


def engine_route(view: F) -> F:
    """Mark an operation as part of the session's engine surface (x-openwa-engine): the
    document then lists the engine's statuses (409, 501-504), and the walk test proves it
    is implemented or answers 501."""
    apidoc = copy.deepcopy(getattr(view, "_apidoc", {}))
    apidoc.setdefault("manual_doc", {})["x-openwa-engine"] = True
    view._apidoc = apidoc  # type: ignore[attr-defined]
    return view


def chat_id_param(value: str, name: str = "chatId") -> str:
    """A path segment naming a chat: a phone number or a WhatsApp id (400 otherwise)."""
    if len(value) > 64 or not _CHAT_ID.match(value):
        raise BadRequest([f"{name}: must be a phone number or a WhatsApp id "
                          "(<digits>@c.us or <id>@g.us)"])
    return value if "@" in value else re.sub(r"[^0-9]", "", value) + "@c.us"


def group_id_param(value: str) -> str:
    if len(value) > 64 or not _GROUP_ID.match(value):
        raise BadRequest(["groupId: must be a group id (<id>@g.us)"])
    return value


# -- allowedChats: the third scope of a key -------------------------------------------------
#: Routes below /sessions/<sid>/ that touch chats; a key with allowedChats may use them only
#: for its chats (default-deny: a route that names no chat is refused, but for the lists,
#: which are filtered).
_CHAT_ROUTE = re.compile(r"^/sessions/[^/]+/(messages|chats|contacts|groups|presence)(/.*)?$")
_FILTERED_LISTS = re.compile(r"^/sessions/[^/]+/(chats|contacts|groups)$")
_BODY_FIELDS = ("chatId", "toChatId", "fromChatId")
_PATH_FIELDS = ("chatId", "groupId", "contactId", "number")


def _named_chats() -> list[str] | None:
    """The chats a request names (body, path, query); None if one cannot be read."""
    named: list[str] = []
    body = request.get_json(silent=True) if request.is_json else None
    values: list[Any] = []
    if isinstance(body, dict):
        values += [body[f] for f in _BODY_FIELDS if f in body]
    values += [(request.view_args or {})[f] for f in _PATH_FIELDS if f in (request.view_args or {})]
    if "chatId" in request.args:
        values.append(request.args["chatId"])
    for value in values:
        if not isinstance(value, str) or len(value) > 64 or not _CHAT_ID.match(value.strip()):
            return None
        value = value.strip()
        named.append(value if "@" in value else re.sub(r"[^0-9]", "", value) + "@c.us")
    return named


@blp.before_app_request
def guard_chats() -> None:
    """403 for a key with allowedChats on a chat route outside its chats."""
    path = request.path
    prefix = settings().api_prefix
    if not path.startswith(prefix + "/sessions/") or not presented_key():
        return
    below = path[len(prefix):]
    if not _CHAT_ROUTE.match(below):
        return
    try:
        key = current_key()
    except Exception:  # noqa: BLE001 - the view answers the same refusal (401/403)
        return
    allowed = key.allowed_chats
    if not allowed:
        return
    named = _named_chats()
    if named is None:
        return  # malformed: the view answers 400
    if named:
        refused = [chat for chat in named if chat not in allowed]
        if refused:
            raise Forbidden(f"API key may not access chat '{refused[0]}'")
        return
    if request.method == "GET" and _FILTERED_LISTS.match(below):
        return
    raise Forbidden("API key is limited to its allowedChats; this route names no chat")


# -- routes ----------------------------------------------------------------------------------
@blp.route("/<sid>/chats")
class Chats(MethodView):
    @require("viewer")
    @blp.response(200, ChatSchema(many=True))
    def get(self, session: Session) -> Any:
        """The account's chats: id, name, isGroup, unreadCount, lastMessage?, archived,
        pinned, muted"""
        return chats.filter_chats(current_key(), chats.read(session, "chats", []))


def _chat_action(path: str, method: str, summary: str,
                 build: Callable[[dict[str, Any]], list[Any]]) -> None:
    """One POST {chatId} route that runs engine command ``method``."""

    def post(self: Any, data: dict[str, Any], session: Session) -> Any:
        chats.command(session, method, build(data))
        return {"success": True}

    post.__doc__ = summary
    schema = MuteSchema if path == "mute" else ChatTargetSchema
    view = engine_route(require("operator")(blp.arguments(schema)(
        blp.response(200, SuccessSchema)(post))))
    name = "Chat" + "".join(part.title() for part in path.split("-"))
    blp.route(f"/<sid>/chats/{path}", endpoint=name)(type(name, (MethodView,), {"post": view}))


_chat_action("read", "mark_chat_read", "Mark a chat read (sends read receipts)",
             lambda d: [d["chat_id"], True])
_chat_action("unread", "mark_chat_read", "Mark a chat unread", lambda d: [d["chat_id"], False])
_chat_action("archive", "archive_chat", "Archive a chat", lambda d: [d["chat_id"], True])
_chat_action("unarchive", "archive_chat", "Unarchive a chat", lambda d: [d["chat_id"], False])
_chat_action("pin", "pin_chat", "Pin a chat", lambda d: [d["chat_id"], True])
_chat_action("unpin", "pin_chat", "Unpin a chat", lambda d: [d["chat_id"], False])
_chat_action("mute", "mute_chat", "Mute a chat for `duration` seconds (none: until unmuted)",
             lambda d: [d["chat_id"], d.get("duration")])
_chat_action("unmute", "mute_chat", "Unmute a chat", lambda d: [d["chat_id"], 0])


@blp.route("/<sid>/chats/<chat_id:chatId>")
class Chat(MethodView):
    @engine_route
    @require("operator")
    @blp.response(200, SuccessSchema)
    def delete(self, session: Session, chatId: str) -> Any:  # noqa: N803 (the path's name)
        """Delete (clear) a chat on the device"""
        chats.command(session, "delete_chat", [chat_id_param(chatId)])
        return {"success": True}


@blp.route("/<sid>/presence")
class Presence(MethodView):
    @engine_route
    @require("operator")
    @blp.arguments(PresenceSchema, example={"chatId": "15550000000@c.us", "state": "typing"})
    @blp.response(200, SuccessSchema)
    def post(self, data: dict[str, Any], session: Session) -> Any:
        """Set the account's presence (available/unavailable), or typing/recording/paused in
        a chat"""
        if "presence" in data:
            chats.command(session, "set_presence", [data["presence"]])
        else:
            chats.command(session, "set_chat_state", [data["chat_id"], data["state"]])
        return {"success": True}
