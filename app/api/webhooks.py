"""Webhook routes: per-session CRUD and test, the list of all, and dead letters (admin)."""
from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from app.auth import current_key, require
from app.models import Session
from app.schemas.webhooks import (
    DeliverySchema,
    PageArgs,
    TestResultSchema,
    WebhookCreateSchema,
    WebhookSchema,
    WebhookUpdateSchema,
)
from app.services import sessions, webhooks

blp = Blueprint("webhooks", __name__, description="Webhooks")
session_blp = Blueprint("session_webhooks", __name__, description="Webhooks of a session")


@blp.route("")
class AllWebhooks(MethodView):
    @require("operator")
    @blp.response(200, WebhookSchema(many=True))
    def get(self) -> Any:
        """All webhooks of the sessions this key may see"""
        allowed = current_key().allowed_sessions
        ids = None if not allowed else [s.id for s in sessions.list_sessions(allowed, None)]
        return webhooks.list_for(ids)


@blp.route("/delivery-failures")
class DeadLetters(MethodView):
    @require("admin")
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, DeliverySchema(many=True))
    def get(self, args: dict[str, Any]) -> Any:
        """Deliveries that exhausted their retries (dead letters), newest first"""
        return webhooks.dead_letters(args["limit"], args["offset"])


@blp.route("/delivery-failures/<delivery_id>/redrive")
class Redrive(MethodView):
    @require("admin")
    @blp.response(200, DeliverySchema)
    def post(self, delivery_id: str) -> Any:
        """Deliver a dead letter again (same delivery id and idempotency key)"""
        return webhooks.redrive(delivery_id)


@session_blp.route("/<sid>/webhooks")
class SessionWebhooks(MethodView):
    @require("operator")
    @session_blp.response(200, WebhookSchema(many=True))
    def get(self, session: Session) -> Any:
        """Webhooks of a session"""
        return webhooks.list_for([session.id])

    @require("operator")
    @session_blp.arguments(WebhookCreateSchema)
    @session_blp.response(201, WebhookSchema)
    def post(self, data: dict[str, Any], session: Session) -> Any:
        """Register a webhook (secret and headers are write-only)"""
        return webhooks.create(session.id, data)


@session_blp.route("/<sid>/webhooks/<webhook_id>")
class SessionWebhookById(MethodView):
    @require("operator")
    @session_blp.response(200, WebhookSchema)
    def get(self, session: Session, webhook_id: str) -> Any:
        """One webhook"""
        return webhooks.get(session.id, webhook_id)

    @require("operator")
    @session_blp.arguments(WebhookUpdateSchema)
    @session_blp.response(200, WebhookSchema)
    def put(self, data: dict[str, Any], session: Session, webhook_id: str) -> Any:
        """Change a webhook (partial), including `active`"""
        return webhooks.update_webhook(webhooks.get(session.id, webhook_id), data)

    @require("operator")
    @session_blp.response(204)
    def delete(self, session: Session, webhook_id: str) -> None:
        """Delete a webhook and its pending deliveries"""
        webhooks.delete(webhooks.get(session.id, webhook_id))


@session_blp.route("/<sid>/webhooks/<webhook_id>/test")
class TestWebhook(MethodView):
    @require("operator")
    @session_blp.response(200, TestResultSchema)
    def post(self, session: Session, webhook_id: str) -> Any:
        """Send event `test` to the webhook now"""
        return webhooks.send_test(webhooks.get(session.id, webhook_id))
