"""Schemas of the message routes."""
from __future__ import annotations

import re
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from app.schemas.common import ChatId, StrictBool, StrictSchema, Text


class SendTextSchema(StrictSchema):
    chatId = ChatId(required=True, data_key="chatId", attribute="chat_id")
    text = Text(required=True, validate=validate.Length(1, 4096))
    quotedMessageId = Text(data_key="quotedMessageId", attribute="quoted_message_id",
                           validate=validate.Length(1, 200))
    mentions = fields.List(ChatId(), validate=validate.Length(max=256))
    # message actions (issue 13.1): a preview of the first link in the text
    linkPreview = StrictBool(data_key="linkPreview", attribute="link_preview")


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
    # -- message actions (issue 13.1): what later actions and events changed
    content = fields.Dict(allow_none=True, metadata={
        "description": "location, contact, poll (with its votes) or forward details"})
    reactions = fields.Dict(keys=fields.String(), values=fields.String(), allow_none=True,
                            metadata={"description": "emoji by sender"})
    edited = fields.Method("_edited", metadata={"type": "boolean"})
    editedAt = fields.Integer(attribute="edited_at", allow_none=True)
    revoked = fields.Method("_revoked", metadata={"type": "boolean"})
    deleted = fields.String(allow_none=True, metadata={"enum": ["everyone", "me", None]})
    starred = fields.Boolean()
    pinnedUntil = fields.Integer(attribute="pinned_until", allow_none=True)

    def _edited(self, message: Any) -> bool:
        return getattr(message, "edited_at", None) is not None

    def _revoked(self, message: Any) -> bool:
        return getattr(message, "deleted", None) == "everyone"


class MessageListSchema(Schema):
    messages = fields.List(fields.Nested(MessageSchema))
    total = fields.Integer()


#: Largest millisecond timestamp accepted (2**53 - 1: exact in JSON, fits every database).
MAX_TIMESTAMP_MS = 2 ** 53 - 1


class HistoryArgs(StrictSchema):
    chatId = ChatId(data_key="chatId", attribute="chat_id")
    direction = fields.String(validate=validate.OneOf(("incoming", "outgoing")))
    type = fields.String(validate=validate.OneOf(
        ("text", "image", "video", "audio", "document", "location", "contact", "reaction",
         "poll", "forward")))  # poll, forward: message actions (issue 13.1)
    since = fields.Integer(validate=validate.Range(min=0, max=MAX_TIMESTAMP_MS))
    until = fields.Integer(validate=validate.Range(min=0, max=MAX_TIMESTAMP_MS))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=100))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=1_000_000))
    after = Text(validate=validate.Length(1, 200))


# -- message actions (issue 13.1) ---------------------------------------------------------------
class StrictNumber(fields.Float):
    """A JSON number (not a string holding one), finite."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(allow_nan=False, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValidationError("must be a number")
        return float(super()._deserialize(value, attr, data, **kwargs))


#: A WhatsApp message id as the API takes it (ours or WhatsApp's serialized one).
MESSAGE_ID_PATTERN = r"^[\x21-\x7e]{1,200}$"


class FullMatch(validate.Regexp):
    """``Regexp`` over the whole value: Python's ``$`` also matches before a final newline,
    JSON Schema's does not; the document and the rule must agree."""

    def __call__(self, value: Any) -> Any:
        if not isinstance(value, str) or re.fullmatch(str(self.regex.pattern), value) is None:
            raise ValidationError(self._format_error(value))
        return value


def MessageIdField(**kwargs: Any) -> Text:  # noqa: N802 - a field factory reads like a field
    return Text(validate=FullMatch(MESSAGE_ID_PATTERN, error="must be a message id "
                                   "(1-200 visible ASCII characters)"),
                **kwargs)


#: "" removes a reaction; otherwise an emoji: no ASCII letters, no white space or controls.
EMOJI_PATTERN = r"^[^\x00-\x20\x7f-\xa0A-Za-z]{0,32}$"  # the same in JSON Schema and Python
PIN_DURATIONS = (86400, 604800, 2592000)
#: A person's number or id: CHAT_ID_PATTERN without groups (a contact card names a person).
PERSON_ID_PATTERN = r"^(?:\+?[0-9](?:[ -]*[0-9]){4,19}[ -]*|[0-9]{5,20}@c\.us)$"


class SendLocationSchema(StrictSchema):
    chatId = ChatId(required=True, data_key="chatId", attribute="chat_id")
    latitude = StrictNumber(required=True, validate=validate.Range(-90, 90))
    longitude = StrictNumber(required=True, validate=validate.Range(-180, 180))
    description = Text(validate=validate.Length(1, 256))
    address = Text(validate=validate.Length(1, 512))


class SendContactSchema(StrictSchema):
    chatId = ChatId(required=True, data_key="chatId", attribute="chat_id")
    contactName = Text(required=True, data_key="contactName", attribute="contact_name",
                       validate=validate.Length(1, 256))
    contactNumber = ChatId(required=True, data_key="contactNumber", attribute="contact_number",
                           metadata={"pattern": PERSON_ID_PATTERN})

    @validates_schema
    def _a_person(self, data: dict[str, Any], **kwargs: Any) -> None:
        if str(data.get("contact_number", "")).endswith("@g.us"):
            raise ValidationError("must be a phone number, not a group", "contactNumber")


class SendPollSchema(StrictSchema):
    chatId = ChatId(required=True, data_key="chatId", attribute="chat_id")
    name = Text(required=True, validate=validate.Length(1, 255))
    options = fields.List(Text(validate=validate.Length(1, 100)), required=True,
                          validate=validate.Length(2, 12), metadata={"uniqueItems": True})
    multipleAnswers = StrictBool(data_key="multipleAnswers", attribute="multiple_answers",
                                 load_default=False)

    @validates_schema
    def _distinct(self, data: dict[str, Any], **kwargs: Any) -> None:
        options = data.get("options") or []
        if len(set(options)) != len(options):
            raise ValidationError("options must be distinct", "options")


class ReplySchema(StrictSchema):
    chatId = ChatId(required=True, data_key="chatId", attribute="chat_id")
    quotedMessageId = MessageIdField(required=True, data_key="quotedMessageId",
                                     attribute="quoted_message_id")
    text = Text(required=True, validate=validate.Length(1, 4096))
    mentions = fields.List(ChatId(), validate=validate.Length(max=256))
    linkPreview = StrictBool(data_key="linkPreview", attribute="link_preview")


class ForwardSchema(StrictSchema):
    fromChatId = ChatId(required=True, data_key="fromChatId", attribute="from_chat_id")
    toChatId = ChatId(required=True, data_key="toChatId", attribute="chat_id")
    messageId = MessageIdField(required=True, data_key="messageId", attribute="message_id")


class MessageTargetSchema(StrictSchema):
    """star, unstar, unpin: the message acted on."""

    chatId = ChatId(required=True, data_key="chatId", attribute="chat_id")
    messageId = MessageIdField(required=True, data_key="messageId", attribute="message_id")


class ReactSchema(MessageTargetSchema):
    emoji = fields.String(required=True, validate=FullMatch(
        EMOJI_PATTERN, error='must be an emoji, or "" to remove the reaction'))


class DeleteSchema(MessageTargetSchema):
    forEveryone = StrictBool(data_key="forEveryone", attribute="for_everyone", load_default=False)


class EditSchema(MessageTargetSchema):
    text = Text(required=True, validate=validate.Length(1, 4096))


class PinSchema(MessageTargetSchema):
    durationSeconds = fields.Integer(data_key="durationSeconds", attribute="duration_seconds",
                                     strict=True, load_default=604800,
                                     validate=validate.OneOf(PIN_DURATIONS))


class ActionResultSchema(Schema):
    """200: the engine carried the action out."""

    success = fields.Boolean(required=True)
