"""Schemas of the session routes."""
from __future__ import annotations

from marshmallow import Schema, fields, validate

from app.models import STATUSES
from app.schemas.common import StrictSchema, Text


class SessionSchema(Schema):
    """A session: never secrets or profile paths."""

    id = fields.String()
    name = fields.String()
    status = fields.String()
    phone = fields.String(allow_none=True)
    pushName = fields.String(attribute="push_name", allow_none=True)
    connectedAt = fields.DateTime(attribute="connected_at", allow_none=True)
    lastActive = fields.DateTime(attribute="last_active", allow_none=True)
    createdAt = fields.DateTime(attribute="created_at")
    updatedAt = fields.DateTime(attribute="updated_at")
    lastError = fields.String(attribute="last_error", allow_none=True)


class SessionCreateSchema(StrictSchema):
    name = Text(required=True, validate=validate.Regexp(
        r"^[A-Za-z0-9_-]{3,50}$", error="must be 3-50 characters of letters, digits, _ and -"))


class SessionListArgs(StrictSchema):
    status = fields.String(validate=validate.OneOf(STATUSES))


class QrArgs(StrictSchema):
    format = fields.String(load_default="image-data",
                           validate=validate.OneOf(("raw", "image", "image-data", "base64")))


class QrSchema(Schema):
    qrCode = fields.String()
    status = fields.String()


class RawQrSchema(Schema):
    qr = fields.String()


class PairingCodeRequestSchema(StrictSchema):
    phoneNumber = Text(required=True, data_key="phoneNumber", attribute="phone_number",
                       validate=validate.Regexp(r"^\+?[0-9]{6,20}$", error="must be a phone number"))


class PairingCodeSchema(Schema):
    pairingCode = fields.String()
    status = fields.String()
