"""Webhook delivery on the `webhooks` queue, and the beat sweep of the outbox."""
from __future__ import annotations

from typing import Any

from app.common.names import Tasks
from app.services import webhooks
from tasks.base import openwa_task


@openwa_task(Tasks.WEBHOOK_DELIVER)
def deliver(webhook_id: str) -> dict[str, int]:
    """Drain one webhook's due deliveries, oldest first (a no-op if another task is on it)."""
    return webhooks.drain(webhook_id)


@openwa_task(Tasks.WEBHOOK_SWEEP)
def sweep() -> dict[str, Any]:
    """Enqueue a drain for every webhook with a due delivery: a lost broker message or a
    killed worker only delays a delivery."""
    due = webhooks.due_webhooks()
    webhooks.kick(due)
    return {"webhooks": len(due)}
