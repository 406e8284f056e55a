"""Schemas of the chat, contact, presence and group routes (issue 13.2/3)."""
from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from app.schemas.common import ChatId, StrictBool, StrictSchema, Text

GROUP_ID_PATTERN = r"^[0-9]{5,20}(-[0-9]{5,20})?@g\.us$"
CONTACT_ID_PATTERN = r"^\+?[0-9][0-9 \-]{4,30}$|^[0-9]{5,20}@c\.us$"
INVITE_CODE_PATTERN = r"^[A-Za-z0-9_-]{6,64}$"
INVITE_LINK = "https://chat.whatsapp.com/{}"
PARTICIPANTS_MAX = 256
MUTE_MAX = 366 * 24 * 3600


class SuccessSchema(Schema):
    success = fields.Boolean(required=True)


# -- contacts ------------------------------------------------------------------------------
class ContactDetailSchema(Schema):
    id = fields.String()
    number = fields.String()
    name = fields.String(allow_none=True)
    pushName = fields.String(allow_none=True)
    isBusiness = fields.Boolean()
    isBlocked = fields.Boolean()
    about = fields.String(allow_none=True)


class PictureSchema(Schema):
    url = fields.String(required=True)


# -- chats ---------------------------------------------------------------------------------
class ChatSchema(Schema):
    id = fields.String()
    name = fields.String(allow_none=True)
    isGroup = fields.Function(lambda c: bool(c.get("isGroup", str(c.get("id", "")).endswith("@g.us"))))
    unreadCount = fields.Integer()
    timestamp = fields.Integer(allow_none=True)
    lastMessage = fields.Dict(allow_none=True)
    archived = fields.Boolean(dump_default=False)
    pinned = fields.Boolean(dump_default=False)
    muted = fields.Boolean(dump_default=False)


class ChatTargetSchema(StrictSchema):
    chatId = ChatId(required=True, data_key="chatId", attribute="chat_id")


class MuteSchema(ChatTargetSchema):
    duration = fields.Integer(strict=True, allow_none=True, validate=validate.Range(1, MUTE_MAX),
                              metadata={"description": "seconds; omitted or null: until unmuted"})


class PresenceSchema(StrictSchema):
    """Either ``{presence}`` for the account, or ``{chatId, state}`` for one chat."""

    presence = fields.String(validate=validate.OneOf(("available", "unavailable")))
    chatId = ChatId(data_key="chatId", attribute="chat_id")
    state = fields.String(validate=validate.OneOf(("typing", "recording", "paused")))

    @validates_schema
    def _one_form(self, data: dict[str, Any], **kwargs: Any) -> None:
        account = "presence" in data
        chat = "chat_id" in data or "state" in data
        if account == chat:
            raise ValidationError("give either presence, or chatId and state")
        if chat and not ("chat_id" in data and "state" in data):
            raise ValidationError("chatId and state go together")


# -- groups --------------------------------------------------------------------------------
class ParticipantSchema(Schema):
    id = fields.String()
    isAdmin = fields.Boolean()
    isSuperAdmin = fields.Boolean()


class GroupSettingsSchema(Schema):
    announce = fields.Boolean()
    restrict = fields.Boolean()


class GroupSchema(Schema):
    id = fields.String()
    name = fields.String(allow_none=True)
    subject = fields.String(allow_none=True)
    description = fields.String(allow_none=True)
    owner = fields.String(allow_none=True)
    creation = fields.Integer(allow_none=True)
    participants = fields.List(fields.Nested(ParticipantSchema))
    settings = fields.Nested(GroupSettingsSchema)


class ParticipantResultSchema(Schema):
    id = fields.String()
    success = fields.Boolean()
    code = fields.Integer()
    message = fields.String(allow_none=True)


class GroupCreatedSchema(GroupSchema):
    results = fields.List(fields.Nested(ParticipantResultSchema))


def _participant_list(required: bool = True) -> fields.List:
    return fields.List(ChatId(), required=required,
                       validate=validate.Length(1, PARTICIPANTS_MAX))


class GroupCreateSchema(StrictSchema):
    name = Text(required=True, validate=validate.Length(1, 100))
    participants = _participant_list()


class ParticipantsSchema(StrictSchema):
    participants = _participant_list()


class SubjectSchema(StrictSchema):
    subject = Text(required=True, validate=validate.Length(1, 100))


class DescriptionSchema(StrictSchema):
    description = Text(required=True, validate=validate.Length(0, 2048))


class GroupSettingsUpdateSchema(StrictSchema):
    announce = StrictBool()
    restrict = StrictBool()

    @validates_schema
    def _not_empty(self, data: dict[str, Any], **kwargs: Any) -> None:
        if not data:
            raise ValidationError("give announce, restrict or both")


class InviteCodeSchema(Schema):
    inviteCode = fields.String()
    inviteLink = fields.String()


class JoinSchema(StrictSchema):
    inviteCode = Text(required=True, data_key="inviteCode", attribute="invite_code",
                      validate=validate.Regexp(INVITE_CODE_PATTERN,
                                               error="must be an invite code"),
                      metadata={"description": "the code of a chat.whatsapp.com/<code> link"})


class JoinedSchema(Schema):
    groupId = fields.String()
