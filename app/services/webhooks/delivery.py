"""Delivery: workers claim the heads of a webhook's lines and POST them.

A *line* is a chat (``WEBHOOK_ORDER=chat``, the default; events about the session form a
line of their own) or the whole webhook (``WEBHOOK_ORDER=webhook``). Only a line's oldest
pending delivery, its head, may be attempted, so a later event never overtakes an earlier
one of its line; a head waiting for its retry holds its line and nothing else.

A drain claims the heads of a few lines (``LINES_PER_CLAIM``) with a lease on the rows,
posts them one after the other, and after a success takes the next row of the same line
in the transaction that records the outcome. Any number of drains (worker threads or
processes) run at once on one webhook, each on other lines; a drain that claims a full
set of lines asks for one more drain, so the work spreads over the worker's threads.
A drain re-reads its webhook every ``WEBHOOK_RELOAD_S``, not at every claim.

The lease (``WEBHOOK_LEASE`` s) is renewed by a thread while the drain runs: a killed
worker's rows are free again within one lease, and beat's sweep picks them up. Each
attempt is counted in the transaction committed just before its POST, so
``X-OpenWA-Retry-Count`` counts real attempts even across a kill.
"""
from __future__ import annotations

import functools
import logging
import random
import threading
import time
from collections import deque
from datetime import timedelta
from typing import Any

from flask import Flask
from sqlalchemy import (
    BigInteger,
    Integer,
    Row,
    String,
    Table,
    Text,
    and_,
    bindparam,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.sql.elements import ColumnElement

from app import metrics
from app.config import Config
from app.extensions import current_flask_app, db
from app.models import Webhook, WebhookDelivery, utcnow
from app.models.base import UTCDateTime, affected_rows, new_id
from app.models.webhook import DEAD, DELIVERED, PENDING
from app.services.webhooks import inline
from app.services.webhooks.common import config
from app.services.webhooks.http import UNBUILDABLE, post_envelope, unbuildable
from app.services.webhooks.outbox import kick

log = logging.getLogger(__name__)

D = WebhookDelivery
#: Lines one drain holds at a time; more lines are left to other drains (worker threads).
LINES_PER_CLAIM = 4
#: A retry due sooner than this gets its own delayed drain; later ones wait for the sweep
#: (a broker holds a delayed task only for its visibility timeout).
RETRY_KICK_WITHIN_S = 30.0
#: How often a long drain re-reads its webhook (URL, secret, headers, active).
WEBHOOK_RELOAD_S = 2.0
_COLUMNS = ("seq", "id", "idempotency_key", "session_id", "event", "order_key", "data",
            "occurred_at", "attempts")


def backoff(attempt: int, base_ms: int, cap_ms: int = 3_600_000) -> float:
    """Seconds before retry ``attempt`` (1-based): exponential, ±20 % jitter, capped."""
    return float(min(cap_ms, base_ms * 2 ** min(attempt - 1, 40)) / 1000 * random.uniform(0.8, 1.2))


@functools.cache
def _statements(per_chat: bool) -> dict[str, Any]:
    """The drain's statements for one ordering, built once (Core, bound parameters)."""
    table: Table = WebhookDelivery.__table__  # type: ignore[assignment]
    c = table.c
    now = bindparam("now", type_=UTCDateTime())
    token = bindparam("token", type_=String())
    seq = bindparam("seq_", type_=BigInteger())
    returned = [c[name] for name in _COLUMNS]

    def claimable(t: Any) -> ColumnElement[bool]:
        """Pending, due, and held by no live drain."""
        return and_(t.c.status == PENDING, t.c.next_attempt_at <= now,
                    or_(t.c.claimed_until.is_(None), t.c.claimed_until < now))

    def claim(where: ColumnElement[bool]) -> Any:
        # The claim conditions are repeated on the row itself: on PostgreSQL a concurrent
        # drain that claimed it first makes the UPDATE skip it when it re-checks the row.
        return (update(table).where(where, claimable(table))
                .values(claim_token=token, claimed_until=bindparam("until", type_=UTCDateTime()))
                .returning(*returned))

    line, head = table.alias("line"), table.alias("head")
    heads = select(func.min(line.c.seq)).where(line.c.webhook_id == bindparam("webhook"),
                                               line.c.status == PENDING)
    if per_chat:
        heads = heads.group_by(line.c.order_key)
    chosen = (select(head.c.seq).where(head.c.seq.in_(heads), claimable(head),
                                       head.c.order_key.notin_(bindparam("skip", expanding=True)))
              .order_by(head.c.seq).limit(LINES_PER_CLAIM))
    following = select(func.min(line.c.seq)).where(line.c.webhook_id == bindparam("webhook"),
                                                   line.c.status == PENDING)
    if per_chat:
        following = following.where(line.c.order_key == bindparam("key"))
    return {
        "heads": claim(c.seq.in_(chosen)),
        "next": claim(c.seq == following.scalar_subquery()),
        "start": update(table).where(c.seq == seq, c.claim_token == token, c.status == PENDING)
        .values(attempts=c.attempts + 1),
        "outcome": update(table).where(c.seq == seq, c.claim_token == token).values(
            status=bindparam("status_", type_=String()),
            last_status_code=bindparam("code", type_=Integer()),
            last_error=bindparam("error", type_=Text()),
            delivered_at=bindparam("delivered", type_=UTCDateTime()),
            next_attempt_at=bindparam("next_at", type_=UTCDateTime()),
            claim_token=None, claimed_until=None),
    }


def _claim_heads(webhook_id: str, token: str, lease_s: float, per_chat: bool,
                 skip: set[str]) -> list[Row[Any]]:
    """Claim the heads of up to LINES_PER_CLAIM lines that are free and due, except the lines
    in ``skip`` (uncommitted)."""
    now = utcnow()
    claimed = db.session.execute(_statements(per_chat)["heads"], {
        "webhook": webhook_id, "now": now, "token": token, "skip": sorted(skip),
        "until": now + timedelta(seconds=lease_s)})
    return sorted(claimed, key=lambda row: row.seq)


def _claim_next(webhook_id: str, key: str, token: str, lease_s: float,
                per_chat: bool) -> Row[Any] | None:
    """Claim the new head of this line, if it is free and due (uncommitted)."""
    now = utcnow()
    params = {"webhook": webhook_id, "now": now, "token": token,
              "until": now + timedelta(seconds=lease_s)}
    if per_chat:
        params["key"] = key
    return db.session.execute(_statements(per_chat)["next"], params).first()


def _start(row: Row[Any], token: str, per_chat: bool) -> bool:
    """Count the attempt about to be made and commit it (with the previous outcome)."""
    started = db.session.execute(_statements(per_chat)["start"], {"seq_": row.seq, "token": token})
    db.session.commit()
    return affected_rows(started) == 1


def _release(token: str) -> None:
    """Let go of the rows this drain claimed but did not attempt."""
    db.session.execute(update(D).where(D.claim_token == token, D.status == PENDING)
                       .values(claim_token=None, claimed_until=None)
                       .execution_options(synchronize_session=False))
    db.session.commit()


class _Renewal:
    """Renews a drain's lease every third of WEBHOOK_LEASE, on its own connection."""

    def __init__(self, app: Flask, token: str, lease_s: float) -> None:
        self.app, self.token, self.lease_s = app, token, lease_s
        self.stopped = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, name="webhook-lease", daemon=True)
            self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        if self.thread is not None:
            self.thread.join(10)

    def _run(self) -> None:
        with self.app.app_context():
            try:
                # Rows the drain is writing right now are skipped, not waited for (PostgreSQL:
                # waiting could deadlock with the drain); the next beat renews them.
                mine = (select(D.seq).where(D.claim_token == self.token, D.status == PENDING)
                        .with_for_update(skip_locked=True))
                while not self.stopped.wait(self.lease_s / 3):
                    try:
                        db.session.execute(
                            update(D).where(D.seq.in_(mine))
                            .values(claimed_until=utcnow() + timedelta(seconds=self.lease_s))
                            .execution_options(synchronize_session=False))
                        db.session.commit()
                    except Exception as error:  # the database is away: try again next beat
                        db.session.rollback()
                        log.warning("could not renew a webhook lease: %s", type(error).__name__)
            finally:
                db.session.remove()


def _load(webhook_id: str) -> Webhook | None:
    """The webhook as it is now, detached: commits do not expire it, deletes do not break it."""
    webhook = db.session.get(Webhook, webhook_id, populate_existing=True)
    if webhook is not None:
        db.session.expunge(webhook)
    return webhook


def drain(webhook_id: str, budget_seconds: float = 60.0) -> dict[str, int]:
    """Deliver this webhook's due deliveries, oldest first in each line, until no line it
    can take has one due or the budget is spent."""
    cfg = config()
    per_chat = cfg.webhook_order == "chat"
    token = new_id()
    counts = {"delivered": 0, "retried": 0, "dead": 0}
    failed: set[str] = set()  # lines this drain leaves alone: their head waits for a retry
    retry_in = float("inf")
    deadline = time.monotonic() + budget_seconds
    renewal = _Renewal(current_flask_app(), token, cfg.webhook_lease_s)
    webhook: Webhook | None = None
    loaded = -WEBHOOK_RELOAD_S
    try:
        while time.monotonic() < deadline:
            if webhook is None or time.monotonic() - loaded > WEBHOOK_RELOAD_S:
                webhook, loaded = _load(webhook_id), time.monotonic()
            if webhook is None or not webhook.active:
                break
            queue = deque(_claim_heads(webhook_id, token, cfg.webhook_lease_s, per_chat, failed))
            if not queue:  # on PostgreSQL, a drain may have claimed the same heads first:
                db.session.commit()  # look again, past its claims
                queue.extend(_claim_heads(webhook_id, token, cfg.webhook_lease_s, per_chat, failed))
            if not queue:
                break
            renewal.start()
            if len(queue) == LINES_PER_CLAIM:
                # More lines may be free: another thread can take them. (Asking only once per
                # drain saved CPU but delivered fewer per second with a failing receiver.)
                kick([webhook_id])
            while queue and time.monotonic() < deadline:
                row = queue.popleft()
                if time.monotonic() - loaded > WEBHOOK_RELOAD_S:
                    db.session.commit()
                    webhook, loaded = _load(webhook_id), time.monotonic()
                    if webhook is None or not webhook.active:
                        break
                if not _start(row, token, per_chat):
                    continue  # deleted with its webhook, or no longer ours
                outcome, wait_s = _attempt(webhook, row, token, cfg, per_chat)
                if outcome in counts:
                    counts[outcome] += 1
                if outcome == "retried":
                    failed.add(row.order_key)  # its retry is another drain's to make
                    retry_in = min(retry_in, wait_s)
                    if not per_chat:
                        break
                elif outcome in ("delivered", "dead"):
                    following = _claim_next(webhook_id, row.order_key, token,
                                            cfg.webhook_lease_s, per_chat)
                    if following is not None:
                        queue.append(following)
            db.session.commit()
    finally:
        renewal.stop()
        db.session.rollback()
        _release(token)
    if failed and retry_in < RETRY_KICK_WITHIN_S:  # a drain when the retry is due, not at
        kick([webhook_id], after_s=retry_in)       # the next sweep
    return counts


def _post(webhook: Webhook, row: Row[Any], cfg: Config) -> tuple[bool, int | None, str | None]:
    """One POST of the delivery; with ``inlineMedia``, its media's bytes are read from storage
    first (issue 12.4), so the outbox row never holds them. A storage that cannot be read
    fails the attempt like a failed POST (retried, then a dead letter): the bytes are not
    silently dropped while they may come back."""
    if not webhook.inline_media or unbuildable(webhook):  # a hopeless request reads nothing
        return post_envelope(webhook, row, row.attempts)
    try:
        data = inline.with_media(cfg, row)
    except inline.MediaUnreadable as failure:
        return False, None, f"media storage: {failure}"
    return post_envelope(webhook, row, row.attempts, data)


def _attempt(webhook: Webhook, row: Row[Any], token: str, cfg: Config,
             per_chat: bool) -> tuple[str, float]:
    """POST one delivery and record the outcome (uncommitted): delivered, dead, retried (and
    in how many seconds), or lost (the row went away with its webhook, or another drain
    took it over)."""
    started = time.perf_counter()
    ok, code, error = _post(webhook, row, cfg)
    metrics.webhook_delivery_duration_seconds.labels(row.event).observe(
        time.perf_counter() - started)
    # A request that cannot be built never will: a dead letter now, so its line moves on.
    hopeless = bool(error and error.startswith(UNBUILDABLE))
    attempts = row.attempts + 1
    now = utcnow()
    wait_s = 0.0
    values: dict[str, Any] = {"seq_": row.seq, "token": token, "code": code, "error": error,
                              "delivered": None, "next_at": now}
    retries = cfg.webhook_retry_count if webhook.retry_count is None else webhook.retry_count
    if ok:
        outcome, label = "delivered", "success"
        values.update(status_=DELIVERED, delivered=now)
    elif attempts > retries or hopeless:
        outcome, label = "dead", "dead"
        values.update(status_=DEAD)
        log.warning("webhook %s: delivery %s is dead after %d attempts: %s",
                    webhook.id, row.id, attempts, error)
    else:
        outcome, label = "retried", "retry"
        wait_s = backoff(attempts, cfg.webhook_retry_delay_ms, cfg.webhook_retry_max_delay_ms)
        values.update(status_=PENDING, next_at=now + timedelta(seconds=wait_s))
    metrics.webhook_deliveries_total.labels(row.event, label).inc()
    recorded = db.session.execute(_statements(per_chat)["outcome"], values)
    return (outcome if affected_rows(recorded) == 1 else "lost"), wait_s
