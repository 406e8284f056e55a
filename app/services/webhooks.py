"""Webhooks: registration (with an SSRF guard), the outbox, and in-order delivery.

Every event is written to the outbox in the transaction of the change it reports (one
row per matching webhook). A Celery task drains one webhook's outbox at a time, oldest
first, under a lock on the webhook row: a later event never overtakes an earlier one
still being retried. Beat sweeps what is due, so a lost broker message or a dead worker
only delays a delivery.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import random
import socket
import time
from datetime import timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

import requests
from flask import current_app
from sqlalchemy import bindparam
from sqlalchemy import event as sa_event
from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import SessionTransaction

from app import live, metrics
from app.common.names import Queues, Tasks
from app.config import Config
from app.crypto import Box
from app.errors import BadRequest, Conflict, NotFound
from app.extensions import db
from app.models import EVENTS, Webhook, WebhookDelivery, utcnow
from app.models.base import new_id
from app.models.webhook import DEAD, DELIVERED, PENDING
from app.services import audit, dispatch

log = logging.getLogger(__name__)

MAX_PER_SESSION = 16
DELIVER_TASK = Tasks.WEBHOOK_DELIVER
USER_AGENT = "OpenWA-Webhook/1.0"
RESERVED_HEADERS = {"content-type", "user-agent", "x-openwa-event", "x-openwa-delivery-id",
                    "x-openwa-idempotency-key", "x-openwa-retry-count", "x-openwa-signature",
                    "host", "content-length"}
METADATA_HOSTS = {"metadata.google.internal", "metadata"}


def config() -> Config:
    return current_app.config["OPENWA"]  # type: ignore[no-any-return]


def box() -> Box:
    return Box.from_config(config())


# -- the SSRF guard -------------------------------------------------------------------
class UnsafeUrl(ValueError):
    pass


def check_url(url: str, allow_private: bool) -> None:
    """Refuse credentials, non-HTTP schemes, and hosts resolving to internal addresses."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeUrl("must be an http or https URL")
    if parts.username or parts.password:
        raise UnsafeUrl("must not contain credentials")
    if allow_private:
        return
    host = parts.hostname.lower()
    if host in METADATA_HOSTS:
        raise UnsafeUrl("resolves to a cloud metadata address")
    try:
        infos = socket.getaddrinfo(host, parts.port or (443 if parts.scheme == "https" else 80),
                                   type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise UnsafeUrl(f"host {host!r} does not resolve") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        if (address.is_private or address.is_loopback or address.is_link_local
                or address.is_multicast or address.is_reserved or address.is_unspecified):
            raise UnsafeUrl(f"resolves to a non-public address ({address})")


# -- registration ------------------------------------------------------------------
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


# -- the outbox ------------------------------------------------------------------------
def emit(session_id: str, event: str, data: dict[str, Any]) -> list[str]:
    """Add one delivery per matching active webhook to the current transaction.

    The caller commits (with the change the event reports) and then calls ``kick``.
    """
    # The same event goes live to /events clients once this transaction commits.
    live.publish_after_commit(session_id, event, data)
    hooks = _active_hooks(session_id)
    targets = [hook_id for hook_id, events in hooks if "*" in events or event in events]
    for hook_id in targets:
        db.session.add(WebhookDelivery(webhook_id=hook_id, session_id=session_id, event=event,
                                       data=data, occurred_at=utcnow(), next_attempt_at=utcnow()))
    return targets


_HOOKS_MEMO = "openwa.active_webhooks"
_ACTIVE_HOOKS = select(Webhook.id, Webhook.events).where(
    Webhook.session_id == bindparam("session_id"), Webhook.active.is_(True))


def _active_hooks(session_id: str) -> list[tuple[str, list[str]]]:
    """The session's active webhooks, read once per transaction: a burst of events applied
    together (a drained batch of acks) costs one query, not one per event."""
    memo: dict[str, list[tuple[str, list[str]]]] = db.session.info.setdefault(_HOOKS_MEMO, {})
    hooks = memo.get(session_id)
    if hooks is None:
        hooks = memo[session_id] = [
            (hook_id, events)
            for hook_id, events in db.session.execute(_ACTIVE_HOOKS, {"session_id": session_id})]
    return hooks


@sa_event.listens_for(OrmSession, "after_transaction_end")
def _forget_hooks(session: OrmSession, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_HOOKS_MEMO, None)


def kick(webhook_ids: list[str]) -> None:
    """Ask a worker to drain these webhooks now; if the broker is down, beat will."""
    for webhook_id in set(webhook_ids):
        try:
            dispatch.send(DELIVER_TASK, [webhook_id], Queues.WEBHOOKS)
        except Exception as error:  # ServiceUnavailable or anything from the broker
            log.warning("could not enqueue a webhook delivery (the sweep will): %s",
                        type(error).__name__)


def due_webhooks(limit: int = 500) -> list[str]:
    now = utcnow()
    return list(db.session.scalars(
        select(WebhookDelivery.webhook_id).where(WebhookDelivery.status == PENDING,
                                                 WebhookDelivery.next_attempt_at <= now)
        .group_by(WebhookDelivery.webhook_id).limit(limit)))


# -- delivery --------------------------------------------------------------------------
def envelope(delivery: WebhookDelivery) -> bytes:
    """The exact bytes that are sent and signed."""
    body = {"event": delivery.event,
            "timestamp": delivery.occurred_at.astimezone(timezone.utc).isoformat().replace("+00:00", "Z"),
            "sessionId": delivery.session_id, "idempotencyKey": delivery.idempotency_key,
            "deliveryId": delivery.id, "data": delivery.data}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post(webhook: Webhook, event: str, body: bytes, delivery_id: str, idempotency_key: str,
         retry: int) -> tuple[bool, int | None, str | None]:
    """One attempt: (success, status code, error). Redirects are not followed."""
    cfg = config()
    try:
        check_url(webhook.url, cfg.webhook_allow_private)  # again: DNS may have changed
    except UnsafeUrl as error:
        return False, None, f"refused: {error}"
    opened = box()
    headers = json.loads(opened.decrypt(webhook.headers_enc)) if webhook.headers_enc else {}
    headers = {k: v for k, v in headers.items() if k.lower() not in RESERVED_HEADERS}
    headers.update({"Content-Type": "application/json", "User-Agent": USER_AGENT,
                    "X-OpenWA-Event": event, "X-OpenWA-Delivery-Id": delivery_id,
                    "X-OpenWA-Idempotency-Key": idempotency_key,
                    "X-OpenWA-Retry-Count": str(retry)})
    if webhook.secret_enc:
        headers["X-OpenWA-Signature"] = sign(opened.decrypt(webhook.secret_enc), body)
    try:
        reply = requests.post(webhook.url, data=body, headers=headers, allow_redirects=False,
                              timeout=cfg.webhook_timeout_ms / 1000)
    except requests.Timeout:
        return False, None, f"timed out after {cfg.webhook_timeout_ms} ms"
    except requests.RequestException as error:
        return False, None, f"{type(error).__name__}"
    if 200 <= reply.status_code < 300:
        return True, reply.status_code, None
    return False, reply.status_code, f"HTTP {reply.status_code}"


def backoff(attempt: int, base_ms: int, cap_ms: int = 3_600_000) -> float:
    """Seconds before retry ``attempt`` (1-based): exponential, ±20 % jitter, capped."""
    return min(cap_ms, base_ms * 2 ** min(attempt - 1, 40)) / 1000 * random.uniform(0.8, 1.2)


def _lock(webhook_id: str, seconds: float) -> bool:
    now = utcnow()
    result = db.session.execute(
        update(Webhook).where(Webhook.id == webhook_id,
                              or_(Webhook.locked_until.is_(None), Webhook.locked_until < now))
        .values(locked_until=now + timedelta(seconds=seconds))
        .execution_options(synchronize_session=False))
    db.session.commit()
    return result.rowcount == 1  # type: ignore[attr-defined]


def _extend(webhook_id: str, seconds: float) -> None:
    db.session.execute(update(Webhook).where(Webhook.id == webhook_id)
                       .values(locked_until=utcnow() + timedelta(seconds=seconds))
                       .execution_options(synchronize_session=False))
    db.session.commit()


def _unlock(webhook_id: str) -> None:
    db.session.execute(update(Webhook).where(Webhook.id == webhook_id).values(locked_until=None)
                       .execution_options(synchronize_session=False))
    db.session.commit()


def drain(webhook_id: str, budget_seconds: float = 60.0) -> dict[str, int]:
    """Deliver this webhook's due outbox rows in order until one fails or none is due."""
    cfg = config()
    hold = cfg.webhook_timeout_ms / 1000 + 15  # outlives one attempt; expires if we die
    if not _lock(webhook_id, hold):
        return {"delivered": 0, "busy": 1}
    delivered = 0
    deadline = time.monotonic() + budget_seconds
    while True:
        try:
            count, caught_up = _deliver_due(webhook_id, deadline, hold)
            delivered += count
        finally:
            db.session.rollback()
            _unlock(webhook_id)
        # A row committed while we held the lock had its own drain turned away as busy:
        # look once more now that the lock is free, or it would wait for the sweep.
        if not (caught_up and time.monotonic() < deadline and _has_due(webhook_id)
                and _lock(webhook_id, hold)):
            return {"delivered": delivered, "busy": 0}


def _has_due(webhook_id: str) -> bool:
    return db.session.scalar(
        select(WebhookDelivery.seq).where(WebhookDelivery.webhook_id == webhook_id,
                                          WebhookDelivery.status == PENDING,
                                          WebhookDelivery.next_attempt_at <= utcnow()).limit(1)) is not None


DRAIN_BATCH = 50


def _deliver_due(webhook_id: str, deadline: float, hold: float) -> tuple[int, bool]:
    """Under the lock: (deliveries made, whether it stopped because none was left).

    Due rows are read DRAIN_BATCH at a time and each outcome is committed on its own; the lock is
    extended only when it would run out within one more attempt."""
    cfg = config()
    attempt_s = cfg.webhook_timeout_ms / 1000
    lock_ends = time.monotonic() + hold
    delivered = 0
    session = db.session()
    expire, session.expire_on_commit = session.expire_on_commit, False  # the batch stays loaded
    try:
        while time.monotonic() < deadline:
            webhook = db.session.get(Webhook, webhook_id, populate_existing=True)
            if webhook is None or not webhook.active:
                return delivered, False
            batch = list(db.session.scalars(
                select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook_id,
                                              WebhookDelivery.status == PENDING)
                .order_by(WebhookDelivery.seq).limit(DRAIN_BATCH)))
            if not batch:
                return delivered, True
            for delivery in batch:
                if time.monotonic() >= deadline:
                    return delivered, False
                if delivery.next_attempt_at > utcnow():
                    return delivered, False  # the oldest is backing off: nothing may overtake it
                if lock_ends - time.monotonic() < attempt_s + 5:
                    _extend(webhook_id, hold)
                    lock_ends = time.monotonic() + hold
                outcome = _attempt(webhook, delivery, cfg)
                db.session.commit()
                if outcome == "retry":
                    return delivered, False
                delivered += outcome == "delivered"
        return delivered, False
    finally:
        session.expire_on_commit = expire


def _attempt(webhook: Webhook, delivery: WebhookDelivery, cfg: Config) -> str:
    """POST one delivery and record the outcome (uncommitted): delivered, dead or retry."""
    started = time.perf_counter()
    ok, code, error = post(webhook, delivery.event, envelope(delivery), delivery.id,
                           delivery.idempotency_key, delivery.attempts)
    metrics.webhook_delivery_duration_seconds.labels(delivery.event).observe(
        time.perf_counter() - started)
    delivery.attempts += 1
    delivery.last_status_code, delivery.last_error = code, error
    if ok:
        delivery.status, delivery.delivered_at = DELIVERED, utcnow()
        metrics.webhook_deliveries_total.labels(delivery.event, "success").inc()
        return "delivered"
    retries = cfg.webhook_retry_count if webhook.retry_count is None else webhook.retry_count
    if delivery.attempts > retries:
        delivery.status = DEAD
        metrics.webhook_deliveries_total.labels(delivery.event, "dead").inc()
        log.warning("webhook %s: delivery %s is dead after %d attempts: %s",
                    webhook.id, delivery.id, delivery.attempts, error)
        return "dead"  # a dead letter no longer holds the line
    delivery.next_attempt_at = utcnow() + timedelta(
        seconds=backoff(delivery.attempts, cfg.webhook_retry_delay_ms, cfg.webhook_retry_max_delay_ms))
    metrics.webhook_deliveries_total.labels(delivery.event, "retry").inc()
    return "retry"


def send_test(webhook: Webhook) -> dict[str, Any]:
    """POST event `test` now, outside the outbox."""
    delivery = WebhookDelivery(id=new_id(), webhook_id=webhook.id,
                               session_id=webhook.session_id, event="test",
                               data={"message": "OpenWA webhook test"}, occurred_at=utcnow())
    delivery.idempotency_key = delivery.id
    ok, code, error = post(webhook, "test", envelope(delivery), delivery.id, delivery.id, 0)
    metrics.webhook_deliveries_total.labels("test", "success" if ok else "failed").inc()
    if ok:
        return {"success": True, "statusCode": code}
    return {"success": False, "error": error, **({"statusCode": code} if code else {})}


# -- dead letters ----------------------------------------------------------------------
def dead_letters(limit: int, offset: int) -> list[WebhookDelivery]:
    return list(db.session.scalars(select(WebhookDelivery).where(WebhookDelivery.status == DEAD)
                                   .order_by(WebhookDelivery.seq.desc()).limit(limit).offset(offset)))


def redrive(delivery_id: str) -> WebhookDelivery:
    delivery = db.session.scalar(select(WebhookDelivery).where(WebhookDelivery.id == delivery_id))
    if delivery is None or delivery.status != DEAD:
        raise NotFound(f"Dead letter '{delivery_id}' not found")
    delivery.status, delivery.attempts, delivery.next_attempt_at = PENDING, 0, utcnow()
    delivery.last_error = None
    audit.record("webhook.redriven", "delivery", delivery.id, webhookId=delivery.webhook_id)
    db.session.commit()
    kick([delivery.webhook_id])
    return delivery


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
