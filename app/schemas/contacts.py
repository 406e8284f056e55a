"""Schemas of the contact, chat and group routes (what the engine returns)."""
from __future__ import annotations

from marshmallow import Schema, fields


class ContactSchema(Schema):
    id = fields.String()
    name = fields.String(allow_none=True)
    pushName = fields.String(allow_none=True)
    isBusiness = fields.Boolean()


class NumberCheckSchema(Schema):
    exists = fields.Boolean()
    whatsappId = fields.String(allow_none=True)
