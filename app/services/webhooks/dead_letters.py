"""Dead letters: deliveries that used up their retries, listed and redriven by an admin."""
from __future__ import annotations

from sqlalchemy import select

from app.errors import NotFound
from app.extensions import db
from app.models import WebhookDelivery, utcnow
from app.models.webhook import DEAD, PENDING
from app.services import audit
from app.services.webhooks.outbox import kick


def dead_letters(limit: int, offset: int) -> list[WebhookDelivery]:
    return list(db.session.scalars(select(WebhookDelivery).where(WebhookDelivery.status == DEAD)
                                   .order_by(WebhookDelivery.seq.desc()).limit(limit).offset(offset)))


def redrive(delivery_id: str) -> WebhookDelivery:
    """Back in the outbox, at its old place in its line, with its retries reset."""
    delivery = db.session.scalar(select(WebhookDelivery).where(WebhookDelivery.id == delivery_id))
    if delivery is None or delivery.status != DEAD:
        raise NotFound(f"Dead letter '{delivery_id}' not found")
    delivery.status, delivery.attempts, delivery.next_attempt_at = PENDING, 0, utcnow()
    delivery.last_error = None
    delivery.claim_token = delivery.claimed_until = None
    audit.record("webhook.redriven", "delivery", delivery.id, webhookId=delivery.webhook_id)
    db.session.commit()
    kick([delivery.webhook_id])
    return delivery
