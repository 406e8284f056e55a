"""Fields and bases shared by the schemas."""
from __future__ import annotations

import re
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validates_schema

from engines.base import normalise_chat_id


class StrictSchema(Schema):
    """Unknown fields are an error (400), as in OpenWA."""

    class Meta:
        unknown = RAISE


#: An HTTP header name (RFC 9110 token) and a value HTTP can carry: Latin-1 text without
#: control characters (so no CR/LF), no leading or trailing white space.
HTTP_TOKEN = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"
HTTP_HEADER_VALUE = (r"^(?:[\x21-\x7e\xa0-\xff]"
                     r"(?:[\t\x20-\x7e\xa0-\xff]*[\x21-\x7e\xa0-\xff])?)?$")


class PartialUpdateSchema(StrictSchema):
    """A PUT body that changes some fields: at least one must be given (the document says
    so with ``minProperties``)."""

    @validates_schema(pass_original=True)
    def _not_empty(self, data: Any, original: Any, **kwargs: Any) -> None:
        if not isinstance(original, dict) or not original:
            raise ValidationError("the body must change at least one field")


class Text(fields.String):
    """A string that is valid Unicode text without NUL bytes (PostgreSQL cannot store
    them, and nobody means them); a lone surrogate is refused here too, not only at the
    request edge (app/hygiene.py), for strings that arrive another way."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        result = super()._deserialize(value, attr, data, **kwargs)
        if "\x00" in result:
            raise ValidationError("must not contain NUL bytes")
        try:
            result.encode("utf-8")
        except UnicodeEncodeError:
            raise ValidationError("must be valid UTF-8 text") from None
        return result


class HttpUrl(Text):
    """An http(s) URL without white space or control characters (documented as a URI)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("metadata", {})
        kwargs["metadata"] = {"format": "uri", "pattern": r"^https?://[^\s]+$",
                              **kwargs["metadata"]}
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        result = super()._deserialize(value, attr, data, **kwargs)
        if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7f for ch in result):
            raise ValidationError("must not contain white space or control characters")
        if not re.match(r"^https?://", result, re.IGNORECASE):
            raise ValidationError("must be an http or https URL")
        return result


class ChatId(Text):
    """A phone number or WhatsApp id, normalised to ``<digits>@c.us`` / ``<id>@g.us``."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        result = super()._deserialize(value, attr, data, **kwargs)
        try:
            return normalise_chat_id(result)
        except ValueError as error:
            raise ValidationError(str(error)) from None


class ErrorSchema(Schema):
    """The OpenWA error body."""

    statusCode = fields.Integer(required=True)
    message = fields.Raw(required=True, metadata={
        "description": "string, or a list of field messages",
        "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]})
    error = fields.String(required=True)
    code = fields.String()
