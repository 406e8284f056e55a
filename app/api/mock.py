"""Mock-engine controls; registered only when ENGINE_TYPE=mock."""
from __future__ import annotations

from typing import Any

from flask import jsonify
from flask.views import MethodView
from flask_smorest import Blueprint

from app.auth import require
from app.models import Session
from app.services import engine_calls, sessions

blp = Blueprint("mock", __name__, description="Mock engine controls (ENGINE_TYPE=mock only)")


@blp.route("/<sid>/mock/scan")
class MockScan(MethodView):
    @require("operator")
    def post(self, session: Session) -> Any:
        """Scan the pending QR code as if with a phone (a no-op once the session is ready)"""
        if session.status != "ready":
            engine_calls.call(session, "simulate_scan", [], require_ready=False)
        return jsonify({"success": True, "status": sessions.get(session.id).status})


@blp.route("/<sid>/mock/disconnect")
class MockDisconnect(MethodView):
    @require("operator")
    def post(self, session: Session) -> Any:
        """Drop the engine's connection as if the network went away"""
        engine_calls.call(session, "simulate_disconnect", [], require_ready=False)
        return jsonify({"success": True})
