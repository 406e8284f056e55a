"""Schemas of the webhook routes. `secret` and `headers` are write-only."""
from __future__ import annotations

from marshmallow import Schema, fields, validate

from app.models import EVENTS
from app.schemas.common import (
    HTTP_HEADER_VALUE,
    HTTP_TOKEN,
    ChatId,
    HttpUrl,
    PartialUpdateSchema,
    StrictBool,
    StrictSchema,
    Text,
)

EVENT_CHOICES = (*EVENTS, "*")
# -- media (issue 12.4) --
INLINE_MEDIA_DESCRIPTION = (
    "When true, a message event whose `media` was stored (message.received, message.sent, "
    "and any other event whose data carries `media`) and is at most 1 MiB (1,048,576 bytes) "
    "carries `media.base64`: the standard, padded base64 of the stored bytes, read from "
    "storage when the delivery is made (the outbox keeps no bytes) and covered by "
    "`X-OpenWA-Signature` like the rest of the body. Without it, `media.base64Error` says "
    "why: `MEDIA_TOO_LARGE` (over 1 MiB: fetch `media.url`) or `MEDIA_GONE` (the file was "
    "pruned or never stored). When the storage cannot be read (bucket or disk unavailable) "
    "the attempt fails and is retried like a failed delivery, then dead-lettered. "
    "Default false.")


class WebhookSchema(Schema):
    id = fields.String()
    sessionId = fields.String(attribute="session_id")
    url = fields.String()
    events = fields.List(fields.String())
    active = fields.Boolean()
    retryCount = fields.Integer(attribute="retry_count", allow_none=True)
    filters = fields.Dict(allow_none=True)  # issue 13.4
    inlineMedia = fields.Boolean(attribute="inline_media",
                                 metadata={"description": INLINE_MEDIA_DESCRIPTION})
    hasSecret = fields.Function(lambda w: bool(w.secret_enc))
    createdAt = fields.DateTime(attribute="created_at")
    updatedAt = fields.DateTime(attribute="updated_at")


class WebhookFiltersSchema(StrictSchema):
    """Webhook filters (issue 13.4): all given conditions must hold for an event to be sent."""

    chatId = ChatId(allow_none=True)
    from_ = ChatId(data_key="from", attribute="from", allow_none=True)
    type = Text(allow_none=True, validate=validate.Length(1, 40))
    isGroup = StrictBool(allow_none=True)
    fromMe = StrictBool(allow_none=True)
    hasMedia = StrictBool(allow_none=True)
    bodyContains = Text(allow_none=True, validate=validate.Length(1, 500))


class _WebhookFields(StrictSchema):
    url = HttpUrl(validate=validate.Length(1, 2048))
    events = fields.List(fields.String(validate=validate.OneOf(EVENT_CHOICES)),
                         validate=validate.Length(1, len(EVENT_CHOICES)))
    secret = Text(load_only=True, allow_none=True, validate=validate.Length(16, 256))
    headers = fields.Dict(keys=Text(validate=[validate.Length(1, 100), validate.Regexp(
                              HTTP_TOKEN, error="must be an HTTP header name (token)")]),
                          values=Text(validate=[validate.Length(max=2000), validate.Regexp(
                              HTTP_HEADER_VALUE,
                              error="must be Latin-1 text without control characters")]),
                          load_only=True,
                          allow_none=True, validate=validate.Length(max=20))
    retryCount = fields.Integer(data_key="retryCount", attribute="retry_count", strict=True,
                                validate=validate.Range(0, 20))
    filters = fields.Nested(WebhookFiltersSchema, allow_none=True)  # issue 13.4
    inlineMedia = StrictBool(attribute="inline_media",
                             metadata={"description": INLINE_MEDIA_DESCRIPTION})


class WebhookCreateSchema(_WebhookFields):
    url = HttpUrl(required=True, validate=validate.Length(1, 2048))


class WebhookUpdateSchema(_WebhookFields, PartialUpdateSchema):
    active = StrictBool()


class TestResultSchema(Schema):
    success = fields.Boolean()
    statusCode = fields.Integer()
    error = fields.String()


class DeliverySchema(Schema):
    id = fields.String()
    webhookId = fields.String(attribute="webhook_id")
    sessionId = fields.String(attribute="session_id")
    event = fields.String()
    idempotencyKey = fields.String(attribute="idempotency_key")
    status = fields.String()
    attempts = fields.Integer()
    lastStatusCode = fields.Integer(attribute="last_status_code", allow_none=True)
    lastError = fields.String(attribute="last_error", allow_none=True)
    occurredAt = fields.DateTime(attribute="occurred_at")
    createdAt = fields.DateTime(attribute="created_at")


class PageArgs(StrictSchema):
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 100))
    offset = fields.Integer(load_default=0, validate=validate.Range(0, 1_000_000))
