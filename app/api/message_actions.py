"""Message action routes (issue 13.1): the new sends (send-location, send-contact, send-poll,
reply, forward) and the actions that are not sends (react, delete, edit, star, unstar, pin,
unpin). They live on the messages blueprint; each segment is in ACTION_SEGMENTS there."""
from __future__ import annotations

from typing import Any

from flask import jsonify
from flask.views import MethodView
from marshmallow import Schema

from app.api.messages import IDEMPOTENCY_KEY_PATTERN, blp, idempotency_key
from app.auth import current_key, require
from app.models import Session
from app.schemas.messages import (
    ActionResultSchema,
    DeleteSchema,
    EditSchema,
    ForwardSchema,
    MessageTargetSchema,
    PinSchema,
    ReactSchema,
    ReplySchema,
    SendContactSchema,
    SendLocationSchema,
    SendPendingSchema,
    SendPollSchema,
    SendResultSchema,
)
from app.services import message_actions

#: The segments below /messages this module answers (app/api/messages.py ACTION_SEGMENTS).
SEND_SEGMENTS = {"send-location": ("location", SendLocationSchema, "Send a location"),
                 "send-contact": ("contact", SendContactSchema, "Send a contact card (vCard)"),
                 "send-poll": ("poll", SendPollSchema,
                               "Send a poll; votes arrive as poll.vote events"),
                 "reply": ("reply", ReplySchema, "Reply to a message (a text quoting it)"),
                 "forward": ("forward", ForwardSchema, "Forward a message to another chat")}
OTHER_SEGMENTS = {"react": (ReactSchema, 'React to a message ("" removes the reaction)'),
                  "delete": (DeleteSchema, "Delete a message for everyone or for me"),
                  "edit": (EditSchema, "Edit one of our messages (within WhatsApp's edit window)"),
                  "star": (MessageTargetSchema, "Star a message"),
                  "unstar": (MessageTargetSchema, "Unstar a message"),
                  "pin": (PinSchema, "Pin a message in its chat for durationSeconds"),
                  "unpin": (MessageTargetSchema, "Unpin a message")}
_IDEMPOTENCY_HEADER = [{"in": "header", "name": "Idempotency-Key", "required": False,
                        "schema": {"type": "string", "minLength": 1, "maxLength": 200,
                                   "pattern": IDEMPOTENCY_KEY_PATTERN}}]


def _answer(body: dict[str, Any], status: int) -> Any:
    if status == 202:
        response = jsonify(body)
        response.status_code = 202
        return response
    return body


def _send_view(kind: str, schema: type[Schema], summary: str) -> type[MethodView]:
    class SendView(MethodView):
        @require("operator", cached_session=True)
        @blp.arguments(schema)
        @blp.response(201, SendResultSchema)
        @blp.alt_response(202, schema=SendPendingSchema,
                          description="Not confirmed within SEND_WAIT_TIMEOUT; still sent later")
        @blp.doc(parameters=_IDEMPOTENCY_HEADER, summary=summary)
        def post(self, data: dict[str, Any], session: Session) -> Any:
            return _answer(*message_actions.send(session, current_key(), kind, data,
                                                 idempotency_key()))

    SendView.__name__ = SendView.__qualname__ = "Send" + kind.title().replace("-", "")
    return SendView


def _action_view(action: str, schema: type[Schema], summary: str) -> type[MethodView]:
    class ActionView(MethodView):
        @require("operator")
        @blp.arguments(schema)
        @blp.response(200, ActionResultSchema)
        @blp.alt_response(202, schema=SendPendingSchema,
                          description="Not confirmed within SEND_WAIT_TIMEOUT; still carried out")
        @blp.doc(parameters=_IDEMPOTENCY_HEADER, summary=summary)
        def post(self, data: dict[str, Any], session: Session) -> Any:
            return _answer(*message_actions.act(session, current_key(), action, data,
                                                idempotency_key()))

    ActionView.__name__ = ActionView.__qualname__ = "Message" + action.title()
    return ActionView


for _segment, (_kind, _schema, _summary) in SEND_SEGMENTS.items():
    blp.route(f"/<sid>/messages/{_segment}")(_send_view(_kind, _schema, _summary))
for _segment, (_schema, _summary) in OTHER_SEGMENTS.items():
    blp.route(f"/<sid>/messages/{_segment}")(_action_view(_segment, _schema, _summary))
