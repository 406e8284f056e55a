"""Schemas of the contact, chat and group routes (what the engine returns)."""
from __future__ import annotations

from marshmallow import Schema, fields


class ContactSchema(Schema):
    id = fields.String()
    name = fields.String(allow_none=True)
    pushName = fields.String(allow_none=True)
    isBusiness = fields.Boolean()


class ChatSchema(Schema):
    id = fields.String()
    name = fields.String(allow_none=True)
    unreadCount = fields.Integer()
    timestamp = fields.Integer(allow_none=True)


class GroupSchema(Schema):
    id = fields.String()
    name = fields.String(allow_none=True)
    participants = fields.List(fields.String())


class NumberCheckSchema(Schema):
    exists = fields.Boolean()
    whatsappId = fields.String(allow_none=True)
