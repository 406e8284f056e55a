"""Mock-engine controls; registered only when ENGINE_TYPE=mock."""
from __future__ import annotations

from typing import Any

from flask import jsonify
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from app.auth import require
from app.models import Session, SessionStatus
from app.schemas.common import ChatId, StrictSchema, Text
from app.services import engine_calls, sessions

blp = Blueprint("mock", __name__, description="Mock engine controls (ENGINE_TYPE=mock only)")


class MockResultSchema(Schema):
    success = fields.Boolean(required=True)
    status = fields.String()


@blp.route("/<sid>/mock/scan")
class MockScan(MethodView):
    @require("operator")
    @blp.response(200, MockResultSchema)
    def post(self, session: Session) -> Any:
        """Scan the pending QR code as if with a phone (a no-op once the session is ready)"""
        if session.status != SessionStatus.READY:
            engine_calls.call(session, "simulate_scan", [], require_ready=False)
        return jsonify({"success": True, "status": sessions.get(session.id).status})


class DisconnectSchema(StrictSchema):
    reason = Text(load_default="connection lost", validate=validate.Length(1, 200))
    failReconnects = fields.Integer(load_default=0, data_key="failReconnects", strict=True,
                                    validate=validate.Range(0, 1000))


@blp.route("/<sid>/mock/disconnect")
class MockDisconnect(MethodView):
    @require("operator")
    @blp.arguments(DisconnectSchema, required=False)
    @blp.response(200, MockResultSchema)
    def post(self, data: dict[str, Any], session: Session) -> Any:
        """Drop the engine's connection as if the network went away (and keep it down for
        `failReconnects` attempts)"""
        engine_calls.call(session, "simulate_disconnect",
                          [data.get("reason", "connection lost"), data.get("failReconnects", 0)],
                          require_ready=False)
        return jsonify({"success": True})


# -- message actions (issue 13.1) ---------------------------------------------------------------
class MockEventDataSchema(StrictSchema):
    """An event as an engine reports it (engines/base.py EventKind)."""

    messageId = Text(required=True, validate=validate.Length(1, 200))
    chatId = ChatId()
    from_ = ChatId(data_key="from", attribute="from")
    emoji = Text(validate=validate.Length(0, 32))
    body = Text(validate=validate.Length(0, 4096))
    selectedOptions = fields.List(Text(validate=validate.Length(1, 100)),
                                  validate=validate.Length(max=12))
    timestamp = fields.Integer(strict=True, validate=validate.Range(0, 2 ** 40))


class MockEventSchema(StrictSchema):
    kind = fields.String(required=True, validate=validate.OneOf(
        ("revoked", "reaction", "edited", "poll_vote")))
    data = fields.Nested(MockEventDataSchema, required=True)


@blp.route("/<sid>/mock/event")
class MockEvent(MethodView):
    @require("operator")
    @blp.arguments(MockEventSchema)
    @blp.response(200, MockResultSchema)
    def post(self, data: dict[str, Any], session: Session) -> Any:
        """Report an event as if the phone or a peer had acted: a revoke from the phone, a
        peer's reaction, edit or poll vote (`data` as the engine reports it)"""
        engine_calls.call(session, "simulate_event", [data["kind"], data["data"]])
        return jsonify({"success": True})
