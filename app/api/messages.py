"""Message routes: send-text and the stored history."""
from __future__ import annotations

import re
from typing import Any

from flask import jsonify, request
from flask.views import MethodView
from flask_smorest import Blueprint
from werkzeug.routing import BaseConverter

from app.auth import current_key, require
from app.errors import BadRequest
from app.models import Session
from app.schemas.messages import (
    HistoryArgs,
    MessageListSchema,
    MessageSchema,
    SendPendingSchema,
    SendResultSchema,
    SendTextSchema,
)
from app.services import messages

#: Path segments below /messages that are actions, never message ids: with the plain
#: string converter, `GET .../messages/send-text` was a message look-up (and OPTIONS on
#: send-text advertised GET).
ACTION_SEGMENTS: tuple[str, ...] = ("send-text",)
# -- media (issue 12)
ACTION_SEGMENTS += ("send-image", "send-video", "send-audio", "send-document", "send-sticker")
# -- bulk sends (issue 13.5) ---
ACTION_SEGMENTS += ("send-bulk", "batch")
# -- message actions (issue 13.1): app/api/message_actions.py
ACTION_SEGMENTS += ("send-location", "send-contact", "send-poll", "reply", "forward", "react",
                    "delete", "edit", "star", "unstar", "pin", "unpin")


class MessageIdConverter(BaseConverter):
    """A message id: any path segment but an action's name."""

    regex = r"(?!(?:" + "|".join(ACTION_SEGMENTS) + r")$)[^/]+"

    @staticmethod
    def parameter_schema(converter: BaseConverter) -> dict[str, Any]:
        return {"type": "string", "minLength": 1, "not": {"enum": list(ACTION_SEGMENTS)}}


blp = Blueprint("messages", __name__, description="Messages")


#: An Idempotency-Key: 1-200 visible ASCII characters (inner spaces allowed), as documented.
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e](?:[\x20-\x7e]{0,198}[\x21-\x7e])?$"
_IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)


def idempotency_key() -> str | None:
    value = request.headers.get("Idempotency-Key")
    if value is None:
        return None
    if not _IDEMPOTENCY_KEY.match(value):
        raise BadRequest(["Idempotency-Key: must be 1-200 visible ASCII characters"])
    return value


@blp.route("/<sid>/messages/send-text")
class SendText(MethodView):
    @require("operator", cached_session=True)
    @blp.arguments(SendTextSchema)
    @blp.response(201, SendResultSchema)
    @blp.alt_response(202, schema=SendPendingSchema,
                      description="Not confirmed within SEND_WAIT_TIMEOUT; still sent later")
    @blp.doc(parameters=[{"in": "header", "name": "Idempotency-Key", "required": False,
                          "schema": {"type": "string", "minLength": 1, "maxLength": 200,
                                     "pattern": IDEMPOTENCY_KEY_PATTERN}}])
    def post(self, data: dict[str, Any], session: Session) -> Any:
        """Send a text message"""
        body, status = messages.send(session, current_key(), "text", data, idempotency_key())
        if status == 202:
            response = jsonify(body)
            response.status_code = 202
            return response
        return body


@blp.route("/<sid>/messages")
class History(MethodView):
    @require("viewer")
    @blp.arguments(HistoryArgs, location="query")
    @blp.response(200, MessageListSchema)
    def get(self, args: dict[str, Any], session: Session) -> Any:
        """Stored message history, newest first"""
        found, total = messages.history(session, args)
        return {"messages": found, "total": total}


@blp.route("/<sid>/messages/<message_id:message_id>")
class MessageById(MethodView):
    @require("viewer")
    @blp.response(200, MessageSchema)
    def get(self, session: Session, message_id: str) -> Any:
        """One stored message with its status"""
        return messages.get_message(session, message_id)


# -- message actions (issue 13.1): their routes join this blueprint ---------------------------
from app.api import message_actions as _message_actions  # noqa: E402,F401  (registers routes)
