"""Schemas of the media send routes (issue 12)."""
from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from app.schemas.common import ChatId, HttpUrl, StrictBool, StrictSchema, Text

#: base64 (standard alphabet, padded: groups of 4), optionally as a data: URL. The parts are
#: also what app/services/media/inline.py checks a streamed string against.
BASE64_BODY_CHARS = "A-Za-z0-9+/"
DATA_URL_PATTERN = r"data:[-\w.+/]+(?:;[-\w.+=]+)*;base64,"
BASE64_PATTERN = (rf"^(?:{DATA_URL_PATTERN})?"
                  rf"(?:[{BASE64_BODY_CHARS}]{{4}})*"
                  rf"(?:[{BASE64_BODY_CHARS}]{{2}}==|[{BASE64_BODY_CHARS}]{{3}}=)?$")
MIMETYPE_PATTERN = r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,62}/[a-z0-9][a-z0-9!#$&^_.+-]{0,62}$"


class SendMediaSchema(StrictSchema):
    """``chatId``, exactly one of ``url`` / ``base64``, ``mimetype?``, ``filename?``,
    ``caption?`` (≤ 1024)."""

    chatId = ChatId(required=True, data_key="chatId", attribute="chat_id")
    url = HttpUrl(validate=validate.Length(1, 2048))
    # A plain String: the pattern admits ASCII only (no NUL), and Text's UTF-8 check would
    # copy a 20 MB body once more.
    base64 = fields.String(validate=[validate.Length(min=4), validate.Regexp(BASE64_PATTERN)])
    mimetype = Text(validate=validate.Regexp(MIMETYPE_PATTERN, error="must be a MIME type like image/png"))
    filename = Text(validate=[validate.Length(1, 255),
                              validate.Regexp(r"^[^/\\\x00-\x1f]+$", error="must be a file name without slashes")])
    caption = Text(validate=validate.Length(1, 1024))
    quotedMessageId = Text(data_key="quotedMessageId", attribute="quoted_message_id",
                           validate=validate.Length(1, 200))

    @validates_schema
    def _one_source(self, data: dict[str, Any], **kwargs: Any) -> None:
        if bool(data.get("url")) == bool(data.get("base64")):
            raise ValidationError("give exactly one of url and base64", "_schema")


class SendAudioSchema(SendMediaSchema):
    ptt = StrictBool(load_default=False)


class SendStickerSchema(SendMediaSchema):
    class Meta:
        exclude = ("caption", "filename")


class IncomingMediaSchema(StrictSchema):
    """The mock's test hook: a contact sends this session a file."""

    chatId = ChatId(required=True, data_key="chatId", attribute="chat_id")
    type = fields.String(required=True, validate=validate.OneOf(("image", "video", "audio", "document", "sticker")))
    base64 = fields.String(required=True, validate=[validate.Length(min=4), validate.Regexp(BASE64_PATTERN)])
    mimetype = Text(required=True, validate=validate.Regexp(MIMETYPE_PATTERN))
    filename = Text(validate=validate.Length(1, 255))
    caption = Text(validate=validate.Length(1, 1024))


class IncomingMediaResultSchema(StrictSchema):
    messageId = fields.String()
