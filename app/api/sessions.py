"""Session routes: create, list, start/stop/restart/logout, QR and pairing code."""
from __future__ import annotations

import base64
from typing import Any

from flask import Response, jsonify
from flask.views import MethodView
from flask_smorest import Blueprint

from app.auth import current_key, require
from app.errors import Forbidden
from app.models import Session
from app.schemas.sessions import (
    PairingCodeRequestSchema,
    PairingCodeSchema,
    QrArgs,
    QrSchema,
    SessionCreateSchema,
    SessionListArgs,
    SessionSchema,
)
from app.services import engine_calls, sessions
from engines.qr import data_url, render_png

blp = Blueprint("sessions", __name__, description="WhatsApp sessions")


@blp.route("")
class Sessions(MethodView):
    @require("viewer")
    @blp.arguments(SessionListArgs, location="query")
    @blp.response(200, SessionSchema(many=True))
    def get(self, args: dict[str, Any]) -> Any:
        """List the sessions this key may see"""
        return sessions.list_sessions(current_key().allowed_sessions, args.get("status"))

    @require("operator")
    @blp.arguments(SessionCreateSchema)
    @blp.response(201, SessionSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Create a session (status created)"""
        allowed = current_key().allowed_sessions
        if allowed and data["name"] not in allowed:
            # A scoped key would create a session it could then neither see nor manage.
            raise Forbidden(f"API key may not access session '{data['name']}'")
        return sessions.create(data["name"])


@blp.route("/<sid>")
class SessionById(MethodView):
    @require("viewer")
    @blp.response(200, SessionSchema)
    def get(self, session: Session) -> Any:
        """Get a session by id or name"""
        return session

    @require("operator")
    @blp.response(204)
    def delete(self, session: Session) -> None:
        """Delete a session: stops its browser, then removes its rows and profile"""
        sessions.delete(session)


@blp.route("/<sid>/start")
class StartSession(MethodView):
    @require("operator")
    @blp.response(200, SessionSchema)
    def post(self, session: Session) -> Any:
        """Start a session on a session host with free capacity"""
        return sessions.start(session)


@blp.route("/<sid>/stop")
class StopSession(MethodView):
    @require("operator")
    @blp.response(200, SessionSchema)
    def post(self, session: Session) -> Any:
        """Stop a session, keeping its credentials"""
        return sessions.stop(session)


@blp.route("/<sid>/restart")
class RestartSession(MethodView):
    @require("operator")
    @blp.response(200, SessionSchema)
    def post(self, session: Session) -> Any:
        """Stop then start a session, keeping its credentials"""
        return sessions.restart(session)


@blp.route("/<sid>/logout")
class LogoutSession(MethodView):
    @require("operator")
    @blp.response(200, SessionSchema)
    def post(self, session: Session) -> Any:
        """Unlink the device and wipe the profile; the next start needs a QR"""
        return sessions.logout(session)


@blp.route("/<sid>/qr")
class SessionQr(MethodView):
    @require("operator")
    @blp.arguments(QrArgs, location="query")
    @blp.response(200, QrSchema)
    @blp.alt_response(200, description="`?format=raw`: {qr}; `?format=image`: image/png",
                      content_type="image/png", success=True)
    def get(self, args: dict[str, Any], session: Session) -> Any:
        """The pending QR code: data URL (default), raw string, or PNG"""
        raw = sessions.pending_qr(session)
        if args["format"] == "raw":
            return jsonify({"qr": raw})
        png = render_png(raw)
        if args["format"] == "image":
            return Response(png, mimetype="image/png", headers={"Cache-Control": "no-store"})
        if args["format"] == "base64":
            return {"qrCode": base64.b64encode(png).decode(), "status": session.status}
        return {"qrCode": data_url(png), "status": session.status}


@blp.route("/<sid>/pairing-code")
class PairingCode(MethodView):
    @require("operator")
    @blp.arguments(PairingCodeRequestSchema)
    @blp.response(201, PairingCodeSchema)
    def post(self, data: dict[str, Any], session: Session) -> Any:
        """Link by pairing code where the engine supports it (else 501)"""
        code = engine_calls.call(session, "request_pairing_code", [data["phone_number"]],
                                 require_ready=False)
        return {"pairingCode": code, "status": sessions.get(session.id).status}
