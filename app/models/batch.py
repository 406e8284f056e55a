"""Bulk sends: one batch row per ``send-bulk`` and one item row per message it asks for.

An item becomes a ``Message`` (the ordinary send lifecycle) under an id derived from the
batch and its position, so a batch task resumed after a kill finds what it already
enqueued and never creates or sends an item twice. The task that feeds a batch holds a
renewed claim on its row (``claim_token``/``claimed_until``): a second copy of the task (a
broker redelivery) waits for the claim to lapse instead of sending beside it.
"""
from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, JSONType, UTCDateTime, new_id, utcnow


class BatchStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"


#: A batch in one of these is over: nothing more is enqueued for it.
BATCH_FINAL = (BatchStatus.COMPLETED, BatchStatus.CANCELLED, BatchStatus.FAILED)


class ItemStatus(StrEnum):
    """Where an item is before it is a message: ``pending`` (not enqueued yet), ``queued``
    (its message exists: the message's status says the rest), ``cancelled``, or ``failed``
    (refused before it became a message)."""

    PENDING = "pending"
    QUEUED = "queued"
    CANCELLED = "cancelled"
    FAILED = "failed"


class Batch(Base):
    __tablename__ = "batches"
    __table_args__ = (
        UniqueConstraint("api_key_id", "idempotency_key"),
        Index("ix_batches_session_created", "session_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"))
    api_key_id: Mapped[str | None] = mapped_column(
        ForeignKey("api_keys.id", ondelete="SET NULL"), nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=BatchStatus.QUEUED)
    total: Mapped[int] = mapped_column(Integer)
    delay_ms: Mapped[int] = mapped_column(Integer)
    randomize_delay: Mapped[bool] = mapped_column(Boolean, default=False)
    stop_on_error: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: The earliest time the next item may be enqueued (the delay, kept across a resume).
    next_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    claim_token: Mapped[str | None] = mapped_column(String(36), nullable=True)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class BatchItem(Base):
    __tablename__ = "batch_items"

    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"),
                                          primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    chat_id: Mapped[str] = mapped_column(String(100))
    type: Mapped[str] = mapped_column(String(20))
    content: Mapped[dict[str, Any]] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(String(16), default=ItemStatus.PENDING)
    message_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
