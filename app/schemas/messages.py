"""Schemas of the message routes."""
from __future__ import annotations

from marshmallow import Schema, fields, validate

from app.schemas.common import ChatId, StrictSchema, Text


class SendTextSchema(StrictSchema):
    chatId = ChatId(required=True, data_key="chatId", attribute="chat_id")
    text = Text(required=True, validate=validate.Length(1, 4096))
    quotedMessageId = Text(data_key="quotedMessageId", attribute="quoted_message_id",
                           validate=validate.Length(1, 200))
    mentions = fields.List(ChatId(), validate=validate.Length(max=256))


class SendResultSchema(Schema):
    """201: the engine accepted the message."""

    messageId = fields.String()
    timestamp = fields.Integer()


class SendPendingSchema(Schema):
    """202: not confirmed within SEND_WAIT_TIMEOUT; the send still completes."""

    id = fields.String()
    status = fields.String()


class MediaSchema(Schema):
    mimetype = fields.String()
    filename = fields.String(allow_none=True)
    size = fields.Integer()
    url = fields.String()


class MessageSchema(Schema):
    id = fields.String()
    messageId = fields.String(attribute="wa_message_id", allow_none=True)
    sessionId = fields.String(attribute="session_id")
    chatId = fields.String(attribute="chat_id")
    from_ = fields.String(attribute="sender", data_key="from", allow_none=True)
    to = fields.String(attribute="recipient", allow_none=True)
    fromMe = fields.Boolean(attribute="from_me")
    direction = fields.String()
    type = fields.String()
    body = fields.String(allow_none=True)
    caption = fields.String(allow_none=True)
    media = fields.Nested(MediaSchema, allow_none=True)
    quotedMessageId = fields.String(attribute="quoted_message_id", allow_none=True)
    status = fields.String()
    timestamp = fields.Integer()
    createdAt = fields.DateTime(attribute="created_at")


class MessageListSchema(Schema):
    messages = fields.List(fields.Nested(MessageSchema))
    total = fields.Integer()


#: Largest millisecond timestamp accepted (2**53 - 1: exact in JSON, fits every database).
MAX_TIMESTAMP_MS = 2 ** 53 - 1


class HistoryArgs(StrictSchema):
    chatId = ChatId(data_key="chatId", attribute="chat_id")
    direction = fields.String(validate=validate.OneOf(("incoming", "outgoing")))
    type = fields.String(validate=validate.OneOf(
        ("text", "image", "video", "audio", "document", "location", "contact", "reaction")))
    since = fields.Integer(validate=validate.Range(min=0, max=MAX_TIMESTAMP_MS))
    until = fields.Integer(validate=validate.Range(min=0, max=MAX_TIMESTAMP_MS))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=100))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=1_000_000))
    after = Text(validate=validate.Length(1, 200))
