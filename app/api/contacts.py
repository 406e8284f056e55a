"""Contacts, chats and groups, answered by the session's engine (501 where it cannot)."""
from __future__ import annotations

import re
from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from app.auth import require
from app.errors import BadRequest
from app.models import Session
from app.schemas.contacts import ChatSchema, ContactSchema, GroupSchema, NumberCheckSchema
from app.services import engine_calls

blp = Blueprint("contacts", __name__, description="Contacts, chats and groups")


@blp.route("/<sid>/contacts")
class Contacts(MethodView):
    @require("viewer")
    @blp.response(200, ContactSchema(many=True))
    def get(self, session: Session) -> Any:
        """The account's contacts"""
        return engine_calls.call(session, "contacts", [])


@blp.route("/<sid>/contacts/check/<number>")
class CheckNumber(MethodView):
    @require("viewer")
    @blp.response(200, NumberCheckSchema)
    def get(self, session: Session, number: str) -> Any:
        """Whether a number has WhatsApp"""
        digits = re.sub(r"[^0-9]", "", number.split("@")[0])
        if not 5 <= len(digits) <= 20:
            raise BadRequest(["number: must be a phone number of 5-20 digits"])
        return engine_calls.call(session, "check_number", [digits])


@blp.route("/<sid>/chats")
class Chats(MethodView):
    @require("viewer")
    @blp.response(200, ChatSchema(many=True))
    def get(self, session: Session) -> Any:
        """The account's chats"""
        return engine_calls.call(session, "chats", [])


@blp.route("/<sid>/groups")
class Groups(MethodView):
    @require("viewer")
    @blp.response(200, GroupSchema(many=True))
    def get(self, session: Session) -> Any:
        """The account's groups"""
        return engine_calls.call(session, "groups", [])
