"""Fields and bases shared by the schemas."""
from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields

from engines.base import normalise_chat_id


class StrictSchema(Schema):
    """Unknown fields are an error (400), as in OpenWA."""

    class Meta:
        unknown = RAISE


class Text(fields.String):
    """A string without NUL bytes (PostgreSQL cannot store them, and nobody means them)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        result = super()._deserialize(value, attr, data, **kwargs)
        if "\x00" in result:
            raise ValidationError("must not contain NUL bytes")
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
    message = fields.Raw(required=True, metadata={"description": "string, or a list of field messages"})
    error = fields.String(required=True)
    code = fields.String()
