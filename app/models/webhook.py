"""Webhooks and their outbox: one delivery row per (event, webhook), written in the same
transaction as the change it reports, delivered in order by Celery, swept by beat."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, JSONType, UTCDateTime, new_id, utcnow

EVENTS: tuple[str, ...] = ("message.received", "message.sent", "message.ack", "message.failed",
                           "message.revoked", "message.reaction", "session.status", "session.qr",
                           "session.authenticated", "session.disconnected",
                           # -- chats, contacts, groups (issue 13.4) --
                           "presence.update", "group.join", "group.leave", "group.update", "call.received")
# -- bulk sends (issue 13.5) ---
EVENTS += ("batch.completed",)
# -- message actions (issue 13.1)
EVENTS += ("message.edited", "poll.vote")
PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"


class Webhook(Base):
    __tablename__ = "webhooks"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"),
                                            index=True)
    url: Mapped[str] = mapped_column(String(2048))
    events: Mapped[list[str]] = mapped_column(JSONType)
    # Write-only: encrypted at rest (app.crypto), never returned, never logged.
    secret_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    headers_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    retry_count: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # -- webhook filters (issue 13.4): AND of chatId, from, type, isGroup, fromMe, hasMedia,
    # bodyContains; None delivers every subscribed event --
    filters: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # -- media (issue 12.4): a message event's media up to INLINE_MEDIA_MAX_BYTES carries its
    # bytes as media.base64, read from storage when the delivery is made
    inline_media: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class WebhookDelivery(Base):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_queue", "webhook_id", "status", "seq"),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        # The head of each line (WEBHOOK_ORDER): min(seq) per order_key, read from the index.
        Index("ix_webhook_deliveries_lines", "webhook_id", "status", "order_key", "seq"),
    )

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(36), unique=True, default=new_id)  # deliveryId
    idempotency_key: Mapped[str] = mapped_column(String(36), default=new_id)
    webhook_id: Mapped[str] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    session_id: Mapped[str] = mapped_column(String(36))
    # Deliveries with the same key are made in order (the chat; "" for session events).
    order_key: Mapped[str] = mapped_column(String(100), default="", server_default="")
    event: Mapped[str] = mapped_column(String(40))
    data: Mapped[dict[str, Any]] = mapped_column(JSONType)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status: Mapped[str] = mapped_column(String(12), default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # A worker's claim while it delivers: renewed while the worker lives (WEBHOOK_LEASE).
    claim_token: Mapped[str | None] = mapped_column(String(36), nullable=True)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
