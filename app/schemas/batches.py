"""Schemas of the bulk-send routes (send-bulk, batch status, cancel)."""
from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from app.schemas.common import ChatId, StrictBool, StrictSchema, Text
from app.services.batches import DEFAULT_DELAY_MS, ITEM_TYPES, MAX_ITEMS

#: The longest delay between two items: an hour.
MAX_DELAY_MS = 3_600_000


class BulkItemSchema(StrictSchema):
    chatId = ChatId(required=True, data_key="chatId", attribute="chat_id")
    type = Text(required=True, validate=validate.OneOf(
        tuple(ITEM_TYPES), error="unknown message type '{input}'; use one of: {choices}"))
    content = fields.Dict(required=True, keys=fields.String(), metadata={
        "description": "What the item sends, as the body of the matching send route without "
                       "chatId: for `text`, `{text, quotedMessageId?, mentions?}`."})

    @validates_schema
    def _content_fits_its_type(self, data: dict[str, Any], **kwargs: Any) -> None:
        item_type = ITEM_TYPES.get(data.get("type", ""))
        if item_type is None or "content" not in data:
            return  # reported by the type or content field itself
        errors = item_type.content.validate(data["content"])
        if errors:
            raise ValidationError({"content": errors})

    @post_load
    def _load_content(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        data["content"] = ITEM_TYPES[data["type"]].content.load(data["content"])
        return data


def item_component(item_type: str) -> str:
    """The OpenAPI component documenting items of ``item_type``."""
    return "BulkItem" + "".join(part.title() for part in item_type.replace("-", "_").split("_"))


def item_schema(item_type: str) -> type[Schema]:
    """An item of ``item_type`` as the document states it: its type, and its content's
    schema (the matching send route's body without chatId)."""
    return type(item_component(item_type), (StrictSchema,), {
        "chatId": ChatId(required=True, data_key="chatId"),
        "type": fields.String(required=True, metadata={"enum": [item_type]}),
        "content": fields.Nested(ITEM_TYPES[item_type].content, required=True),
    })


def document(spec: Any) -> None:
    """Register one component per item type (``BulkItems`` documents the list as a oneOf
    of them): called once per app, after the blueprint."""
    for item_type, entry in ITEM_TYPES.items():
        spec.components.schema(item_component(item_type) + "Content", schema=entry.content)
        spec.components.schema(item_component(item_type), schema=item_schema(item_type))


class BulkItems(fields.Field):
    """The items of a batch: loaded by ``BulkItemSchema``; documented as an array of one of
    the per-type item schemas, so the document pairs each type with its content."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(metadata={
            "type": "array", "minItems": 1, "maxItems": MAX_ITEMS,
            "items": {"oneOf": [{"$ref": f"#/components/schemas/{item_component(name)}"}
                                for name in ITEM_TYPES]}}, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, list):
            raise ValidationError("Not a valid list.")
        if not 1 <= len(value) <= MAX_ITEMS:
            raise ValidationError(f"Length must be between 1 and {MAX_ITEMS}.")
        return BulkItemSchema(many=True).load(value)


class BulkOptionsSchema(StrictSchema):
    delayBetweenMessages = fields.Integer(
        strict=True, data_key="delayBetweenMessages", attribute="delay_ms",
        load_default=DEFAULT_DELAY_MS, validate=validate.Range(min=0, max=MAX_DELAY_MS),
        metadata={"description": "milliseconds between two items (default 3000)"})
    randomizeDelay = StrictBool(data_key="randomizeDelay", attribute="randomize_delay",
                                load_default=False, metadata={
                                    "description": "each delay is drawn from 0.5x-1.5x the delay"})
    stopOnError = StrictBool(data_key="stopOnError", attribute="stop_on_error",
                             load_default=False, metadata={
                                 "description": "a failed item cancels the items after it"})


class SendBulkSchema(StrictSchema):
    messages = BulkItems(required=True)
    options = fields.Nested(BulkOptionsSchema)


class BatchAcceptedSchema(Schema):
    """202: the batch is recorded and its task enqueued."""

    batchId = fields.String()
    status = fields.String()
    totalMessages = fields.Integer()
    statusUrl = fields.String()


class BatchProgressSchema(Schema):
    sent = fields.Integer()
    failed = fields.Integer()
    pending = fields.Integer()
    cancelled = fields.Integer()


class BatchResultSchema(Schema):
    index = fields.Integer()
    chatId = fields.String()
    type = fields.String()
    status = fields.String(metadata={
        "description": "pending (not enqueued yet), cancelled, or the message's status: "
                       "pending, sending, sent, delivered, read, failed"})
    id = fields.String(metadata={"description": "our message id, once the item is a message"})
    messageId = fields.String(allow_none=True, metadata={"description": "the WhatsApp id once sent"})
    error = fields.String()


class BatchSchema(Schema):
    batchId = fields.String()
    status = fields.String(metadata={"enum": ["queued", "running", "completed", "cancelled",
                                              "failed"]})
    totalMessages = fields.Integer()
    progress = fields.Nested(BatchProgressSchema)
    results = fields.List(fields.Nested(BatchResultSchema))
    createdAt = fields.DateTime()
    finishedAt = fields.DateTime(allow_none=True)
