"""Bulk sends: send-bulk, a batch's status and progress, and cancelling it."""
from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from app.api.messages import IDEMPOTENCY_KEY_PATTERN, idempotency_key
from app.auth import current_key, require
from app.models import Session
from app.schemas.batches import BatchAcceptedSchema, BatchSchema, SendBulkSchema, document
from app.services import batches

blp = Blueprint("batches", __name__, description="Bulk sends")

__all__ = ["blp", "document"]


@blp.route("/<sid>/messages/send-bulk")
class SendBulk(MethodView):
    @require("operator")
    @blp.arguments(SendBulkSchema)
    @blp.response(202, BatchAcceptedSchema)
    @blp.doc(parameters=[{"in": "header", "name": "Idempotency-Key", "required": False,
                          "schema": {"type": "string", "minLength": 1, "maxLength": 200,
                                     "pattern": IDEMPOTENCY_KEY_PATTERN}}])
    def post(self, data: dict[str, Any], session: Session) -> Any:
        """Send up to 100 messages as one batch, one after another with a delay"""
        return batches.create(session, current_key(), data, idempotency_key())


@blp.route("/<sid>/messages/batch/<batch_id>")
class BatchById(MethodView):
    @require("viewer")
    @blp.response(200, BatchSchema)
    def get(self, session: Session, batch_id: str) -> Any:
        """A batch's status, progress and per-item results"""
        return batches.view(batches.get(session, batch_id))


@blp.route("/<sid>/messages/batch/<batch_id>/cancel")
class CancelBatch(MethodView):
    @require("operator")
    @blp.response(200, BatchSchema)
    def post(self, session: Session, batch_id: str) -> Any:
        """Cancel what a batch has not enqueued yet"""
        return batches.cancel(session, batch_id)
