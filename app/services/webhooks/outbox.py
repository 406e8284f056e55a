"""The outbox: events written with the change they report, and the nudge to deliver them.

Every event is written to the outbox in the transaction of the change it reports (one row
per matching webhook), keyed by its chat for ordering. The caller commits and then calls
``kick``; beat's sweep (``due_webhooks``) finds whatever a lost broker message or a dead
worker left behind.
"""
from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import bindparam
from sqlalchemy import event as sa_event
from sqlalchemy import or_, select
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import SessionTransaction

from app import live
from app.common.names import Queues, Tasks
from app.extensions import celery_app, db
from app.models import Webhook, WebhookDelivery, utcnow
from app.models.webhook import PENDING
from app.services import dispatch
from app.services.webhooks.filters import matches

log = logging.getLogger(__name__)

DELIVER_TASK = Tasks.WEBHOOK_DELIVER
ORDER_KEY_LENGTH = 100


def order_key(data: dict[str, Any]) -> str:
    """The line an event waits in: its chat; events about the session have a line of their own."""
    chat = data.get("chatId")
    return str(chat)[:ORDER_KEY_LENGTH] if chat else ""


def emit(session_id: str, event: str, data: dict[str, Any]) -> list[str]:
    """Add one delivery per matching active webhook to the current transaction.

    The caller commits (with the change the event reports) and then calls ``kick``.
    """
    # The same event goes live to /events clients once this transaction commits.
    live.publish_after_commit(session_id, event, data)
    hooks = _active_hooks(session_id)
    targets = [hook_id for hook_id, events, filters in hooks
               if ("*" in events or event in events) and matches(filters, data)]
    key = order_key(data)
    for hook_id in targets:
        db.session.add(WebhookDelivery(webhook_id=hook_id, session_id=session_id, event=event,
                                       order_key=key, data=data, occurred_at=utcnow(),
                                       next_attempt_at=utcnow()))
    return targets


_HOOKS_MEMO = "openwa.active_webhooks"
_ACTIVE_HOOKS = select(Webhook.id, Webhook.events, Webhook.filters).where(
    Webhook.session_id == bindparam("session_id"), Webhook.active.is_(True))


def _active_hooks(session_id: str) -> list[tuple[str, list[str], dict[str, Any] | None]]:
    """The session's active webhooks, read once per transaction: a burst of events applied
    together (a drained batch of acks) costs one query, not one per event."""
    memo: dict[str, list[tuple[str, list[str], dict[str, Any] | None]]] = \
        db.session.info.setdefault(_HOOKS_MEMO, {})
    hooks = memo.get(session_id)
    if hooks is None:
        hooks = memo[session_id] = [
            (hook_id, events, filters) for hook_id, events, filters
            in db.session.execute(_ACTIVE_HOOKS, {"session_id": session_id})]
    return hooks


def _forget_hooks(session: OrmSession, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_HOOKS_MEMO, None)


def install() -> None:
    """Forget the memo of active webhooks when a transaction ends (a webhook created or
    changed in between is seen by the next one). Called by the app factory, once per process."""
    if not sa_event.contains(OrmSession, "after_transaction_end", _forget_hooks):
        sa_event.listen(OrmSession, "after_transaction_end", _forget_hooks)


def kick(webhook_ids: list[str], after_s: float | None = None) -> None:
    """Ask a worker to drain these webhooks now (or in ``after_s`` seconds, when a retry is
    due); if the broker is down, beat's sweep will."""
    for webhook_id in set(webhook_ids):
        try:
            if after_s is None:
                dispatch.send(DELIVER_TASK, [webhook_id], Queues.WEBHOOKS)
            else:
                celery_app.send_task(DELIVER_TASK, args=[webhook_id], queue=Queues.WEBHOOKS,
                                     countdown=after_s)
        except Exception as error:  # ServiceUnavailable or anything from the broker
            log.warning("could not enqueue a webhook delivery (the sweep will): %s",
                        type(error).__name__)


def due_webhooks(limit: int = 500) -> list[str]:
    """Webhooks with a delivery due now that no live worker holds (a dead worker's claim
    has run out)."""
    now = utcnow()
    return list(db.session.scalars(
        select(WebhookDelivery.webhook_id).where(
            WebhookDelivery.status == PENDING, WebhookDelivery.next_attempt_at <= now,
            or_(WebhookDelivery.claimed_until.is_(None), WebhookDelivery.claimed_until < now))
        .group_by(WebhookDelivery.webhook_id).limit(limit)))
