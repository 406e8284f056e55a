"""Schemas of the API-key routes."""
from __future__ import annotations

from datetime import timezone

from marshmallow import Schema, fields, validate

from app.models import ROLES
from app.schemas.common import (
    IP_OR_CIDR_PATTERN,
    ChatId,
    PartialUpdateSchema,
    StrictBool,
    StrictSchema,
    Text,
)


class ApiKeySchema(Schema):
    """An API key as listed: never the key or its hash."""

    id = fields.String()
    name = fields.String()
    keyPrefix = fields.String(attribute="key_prefix")
    role = fields.String()
    allowedSessions = fields.List(fields.String(), attribute="allowed_sessions", allow_none=True)
    allowedIps = fields.List(fields.String(), attribute="allowed_ips", allow_none=True)
    allowedChats = fields.List(fields.String(), attribute="allowed_chats", allow_none=True)  # 13.7
    isActive = fields.Boolean(attribute="is_active")
    expiresAt = fields.DateTime(attribute="expires_at", allow_none=True)
    lastUsedAt = fields.DateTime(attribute="last_used_at", allow_none=True)
    usageCount = fields.Integer(attribute="usage_count")
    createdAt = fields.DateTime(attribute="created_at")
    updatedAt = fields.DateTime(attribute="updated_at")


class ApiKeyCreatedSchema(ApiKeySchema):
    """A created or rotated key: the plaintext ``apiKey`` appears here once."""

    apiKey = fields.String(attribute="api_key")


class _ApiKeyFields(StrictSchema):
    name = Text(validate=validate.Length(1, 100))
    role = fields.String(validate=validate.OneOf(ROLES))
    allowedSessions = fields.List(Text(validate=validate.Length(1, 50)), data_key="allowedSessions",
                                  attribute="allowed_sessions", allow_none=True,
                                  validate=validate.Length(max=1000))
    allowedIps = fields.List(Text(validate=[validate.Length(1, 64), validate.Regexp(
                                 IP_OR_CIDR_PATTERN, error="must be an IP address or CIDR")]),
                             data_key="allowedIps",
                             attribute="allowed_ips", allow_none=True,
                             validate=validate.Length(max=100))
    expiresAt = fields.AwareDateTime(data_key="expiresAt", attribute="expires_at", allow_none=True,
                                     default_timezone=timezone.utc)
    # -- chats, contacts, groups (issue 13.7): the third scope --
    allowedChats = fields.List(ChatId(), data_key="allowedChats", attribute="allowed_chats",
                               allow_none=True, validate=validate.Length(max=1000))


class ApiKeyCreateSchema(_ApiKeyFields):
    name = Text(required=True, validate=validate.Length(1, 100))


class ApiKeyUpdateSchema(_ApiKeyFields, PartialUpdateSchema):
    isActive = StrictBool(data_key="isActive", attribute="is_active")


class ValidateResultSchema(Schema):
    valid = fields.Boolean()
    role = fields.String()
    scoped = fields.Boolean()
