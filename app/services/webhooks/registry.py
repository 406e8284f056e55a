"""Registering webhooks: create, read, update, delete, and re-encrypting their secrets."""
from __future__ import annotations

import json
from typing import Any

from sqlalchemy import func, select

from app.errors import BadRequest, Conflict, NotFound
from app.extensions import db
from app.models import EVENTS, Webhook
from app.services import audit
from app.services.ssrf import UnsafeUrl, check_url
from app.services.webhooks.common import box, config
from app.services.webhooks.http import RESERVED_HEADERS

MAX_PER_SESSION = 16


def normalise_events(events: list[str] | None) -> list[str]:
    if not events:
        return ["message.received"]
    if "*" in events:
        return ["*"]
    unknown = sorted(set(events) - set(EVENTS))
    if unknown:
        raise BadRequest([f"events: unknown event(s) {', '.join(unknown)}; use {', '.join(EVENTS)} or *"])
    return sorted(set(events))


def _apply(webhook: Webhook, data: dict[str, Any]) -> None:
    if "url" in data:
        try:
            check_url(data["url"], config().webhook_allow_private)
        except UnsafeUrl as error:
            raise BadRequest([f"url: {error}"]) from None
        webhook.url = data["url"]
    if "events" in data or webhook.events is None:
        webhook.events = normalise_events(data.get("events"))
    if "secret" in data:
        webhook.secret_enc = box().encrypt(data["secret"]) if data["secret"] else None
    if "headers" in data:
        headers = data["headers"] or {}
        reserved = sorted(h for h in headers if h.lower() in RESERVED_HEADERS)
        if reserved:
            raise BadRequest([f"headers: {', '.join(reserved)} cannot be set"])
        webhook.headers_enc = box().encrypt(json.dumps(headers)) if headers else None
    if "retry_count" in data:
        webhook.retry_count = data["retry_count"]
    if "active" in data:
        webhook.active = data["active"]
    if "inline_media" in data:  # issue 12.4
        webhook.inline_media = data["inline_media"]
    if "filters" in data:  # issue 13.4: the fields given; an empty object removes them
        webhook.filters = {k: v for k, v in (data["filters"] or {}).items() if v is not None} or None


def create(session_id: str, data: dict[str, Any]) -> Webhook:
    count = db.session.scalar(select(func.count()).select_from(Webhook)
                              .where(Webhook.session_id == session_id)) or 0
    if count >= MAX_PER_SESSION:
        raise Conflict(f"A session has at most {MAX_PER_SESSION} webhooks", code="WEBHOOK_LIMIT")
    webhook = Webhook(session_id=session_id)
    _apply(webhook, data)
    db.session.add(webhook)
    db.session.flush()
    audit.record("webhook.created", "webhook", webhook.id, sessionId=session_id, url=webhook.url)
    db.session.commit()
    return webhook


def update_webhook(webhook: Webhook, data: dict[str, Any]) -> Webhook:
    _apply(webhook, data)
    audit.record("webhook.updated", "webhook", webhook.id, fields=sorted(data))
    db.session.commit()
    return webhook


def get(session_id: str, webhook_id: str) -> Webhook:
    webhook = db.session.scalar(select(Webhook).where(Webhook.id == webhook_id,
                                                      Webhook.session_id == session_id))
    if webhook is None:
        raise NotFound(f"Webhook '{webhook_id}' not found")
    return webhook


def list_for(session_ids: list[str] | None) -> list[Webhook]:
    query = select(Webhook).order_by(Webhook.created_at)
    if session_ids is not None:
        query = query.where(Webhook.session_id.in_(session_ids))
    return list(db.session.scalars(query))


def delete(webhook: Webhook) -> None:
    audit.record("webhook.deleted", "webhook", webhook.id, sessionId=webhook.session_id)
    db.session.delete(webhook)
    db.session.commit()


def reencrypt_all() -> int:
    """Rewrite every stored secret under the current ENCRYPTION_KEY."""
    opened, changed = box(), 0
    for webhook in db.session.scalars(select(Webhook)):
        for column in ("secret_enc", "headers_enc"):
            token = getattr(webhook, column)
            if token and not opened.is_current(token):
                setattr(webhook, column, opened.encrypt(opened.decrypt(token)))
                changed += 1
    db.session.commit()
    return changed
