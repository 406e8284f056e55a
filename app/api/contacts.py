"""Contacts, answered by the session's engine (501 where it cannot); chats and groups are in
app/api/chats.py and app/api/groups.py."""
from __future__ import annotations

import re
from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from app.api.chats import chat_id_param, engine_route
from app.auth import current_key, require
from app.errors import BadRequest, NotFound
from app.models import Session
from app.schemas.chats import ContactDetailSchema, PictureSchema, SuccessSchema
from app.schemas.contacts import ContactSchema, NumberCheckSchema
from app.services import chats, engine_calls

blp = Blueprint("contacts", __name__, description="Contacts")


@blp.route("/<sid>/contacts")
class Contacts(MethodView):
    @require("viewer")
    @blp.response(200, ContactSchema(many=True))
    def get(self, session: Session) -> Any:
        """The account's contacts"""
        return chats.filter_chats(current_key(), engine_calls.call(session, "contacts", []))


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


# -- chats, contacts, groups (issue 13.2/3): one contact, its picture, block/unblock ------------
def _contact_id(value: str) -> str:
    chat = chat_id_param(value, "contactId")
    if not chat.endswith("@c.us"):
        raise BadRequest(["contactId: must be a phone number or <digits>@c.us"])
    return chat


@blp.route("/<sid>/contacts/<contact_id:contactId>")
class Contact(MethodView):
    @engine_route
    @require("viewer")
    @blp.response(200, ContactDetailSchema)
    def get(self, session: Session, contactId: str) -> Any:  # noqa: N803 (the path's name)
        """One contact: number, name, pushName, isBusiness, isBlocked, about"""
        return chats.read(session, "contact", [_contact_id(contactId)])


@blp.route("/<sid>/contacts/<contact_id:contactId>/picture")
class ContactPicture(MethodView):
    @engine_route
    @require("viewer")
    @blp.response(200, PictureSchema)
    def get(self, session: Session, contactId: str) -> Any:  # noqa: N803
        """The contact's profile picture URL (404 when there is none)"""
        url = chats.read(session, "contact_picture", [_contact_id(contactId)])
        if not url:
            raise NotFound(f"Contact '{contactId}' has no profile picture")
        return {"url": url}


def _block_route(action: str, block: bool) -> None:
    def post(self: Any, session: Session, contactId: str) -> Any:  # noqa: N803
        chats.command(session, "block_contact", [_contact_id(contactId), block])
        return {"success": True}

    post.__doc__ = f"{action.title()} a contact"
    view = engine_route(require("operator")(blp.response(200, SuccessSchema)(post)))
    name = f"Contact{action.title()}"
    blp.route(f"/<sid>/contacts/<contact_id:contactId>/{action}", endpoint=name)(
        type(name, (MethodView,), {"post": view}))


_block_route("block", True)
_block_route("unblock", False)
