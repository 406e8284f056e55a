"""Mock-engine controls; registered only when ENGINE_TYPE=mock."""
from __future__ import annotations

from typing import Any

from flask import jsonify
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields, validate

from app.auth import require
from app.models import Session, SessionStatus
from app.schemas.common import StrictSchema, Text
from app.services import engine_calls, sessions

blp = Blueprint("mock", __name__, description="Mock engine controls (ENGINE_TYPE=mock only)")


@blp.route("/<sid>/mock/scan")
class MockScan(MethodView):
    @require("operator")
    def post(self, session: Session) -> Any:
        """Scan the pending QR code as if with a phone (a no-op once the session is ready)"""
        if session.status != SessionStatus.READY:
            engine_calls.call(session, "simulate_scan", [], require_ready=False)
        return jsonify({"success": True, "status": sessions.get(session.id).status})


class DisconnectSchema(StrictSchema):
    reason = Text(load_default="connection lost", validate=validate.Length(1, 200))
    failReconnects = fields.Integer(load_default=0, data_key="failReconnects",
                                    validate=validate.Range(0, 1000))


@blp.route("/<sid>/mock/disconnect")
class MockDisconnect(MethodView):
    @require("operator")
    @blp.arguments(DisconnectSchema, required=False)
    def post(self, data: dict[str, Any], session: Session) -> Any:
        """Drop the engine's connection as if the network went away (and keep it down for
        `failReconnects` attempts)"""
        engine_calls.call(session, "simulate_disconnect",
                          [data.get("reason", "connection lost"), data.get("failReconnects", 0)],
                          require_ready=False)
        return jsonify({"success": True})
