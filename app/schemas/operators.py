"""Schemas of the operators' routes: overview, audit log, infrastructure, deliveries."""
from __future__ import annotations

from datetime import timezone

from marshmallow import Schema, fields, validate

from app.schemas.common import StrictSchema


class DayVolumeSchema(Schema):
    date = fields.String(metadata={"description": "UTC day, YYYY-MM-DD"})
    incoming = fields.Integer()
    outgoing = fields.Integer()
    total = fields.Integer()


class OverviewSchema(Schema):
    total = fields.Integer()
    active = fields.Integer(metadata={"description": "sessions initializing, waiting for a QR, "
                                                     "authenticating or ready"})
    ready = fields.Integer()
    disconnected = fields.Integer()
    byStatus = fields.Dict(keys=fields.String(), values=fields.Integer())
    messagesToday = fields.Integer()
    messagesByDay = fields.List(fields.Nested(DayVolumeSchema),
                                metadata={"description": "the last 7 UTC days, oldest first"})


class AuditArgs(StrictSchema):
    action = fields.String(validate=validate.Length(1, 64), metadata={
        "description": "exact action, or a family ending with '.' or '*' (session.*)"})
    since = fields.AwareDateTime(default_timezone=timezone.utc)
    until = fields.AwareDateTime(default_timezone=timezone.utc)
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 500))
    offset = fields.Integer(load_default=0, validate=validate.Range(0, 10_000_000))


class AuditEntrySchema(Schema):
    id = fields.Integer()
    createdAt = fields.DateTime(attribute="created_at")
    action = fields.String()
    actorKeyId = fields.String(attribute="actor_key_id", allow_none=True)
    actorKeyPrefix = fields.String(attribute="actor_prefix", allow_none=True)
    ip = fields.String(allow_none=True)
    targetType = fields.String(attribute="target_type", allow_none=True)
    targetId = fields.String(attribute="target_id", allow_none=True)
    detail = fields.Dict(allow_none=True)


class AuditPageSchema(Schema):
    data = fields.List(fields.Nested(AuditEntrySchema))
    total = fields.Integer()


class BackupSchema(Schema):
    id = fields.String()
    status = fields.String()
    trigger = fields.String()
    storage = fields.String()
    location = fields.String()
    sizeBytes = fields.Integer(attribute="size_bytes", allow_none=True)
    error = fields.String(allow_none=True)
    startedAt = fields.DateTime(attribute="started_at")
    finishedAt = fields.DateTime(attribute="finished_at", allow_none=True)


class BackupQueuedSchema(Schema):
    id = fields.String(metadata={"description": "the Celery task id of the backup run"})
    status = fields.String(metadata={"description": "queued"})


class InfraStatusSchema(Schema):
    hosts = fields.List(fields.Dict())
    leases = fields.List(fields.Dict())
    queues = fields.Dict(keys=fields.String(), values=fields.Integer(allow_none=True))
    broker = fields.Dict()
    database = fields.Dict()
    storage = fields.Dict()
    lastBackup = fields.Nested(BackupSchema, allow_none=True)
    links = fields.Dict(keys=fields.String(), values=fields.String(allow_none=True))
    events = fields.Dict(metadata={"description": "/events clients of the API process that answered"})


class DeliveryArgs(StrictSchema):
    limit = fields.Integer(load_default=20, validate=validate.Range(1, 100))
