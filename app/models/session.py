"""WhatsApp sessions, their desired state and the lease of the host that holds them."""
from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.common.names import session_queue
from app.models.base import Base, UTCDateTime, new_id, utcnow


class SessionStatus(StrEnum):
    """What a session's engine is doing, as the API reports it. Stored as its string value."""

    CREATED = "created"
    INITIALIZING = "initializing"
    QR_READY = "qr_ready"
    AUTHENTICATING = "authenticating"
    READY = "ready"
    DISCONNECTED = "disconnected"
    FAILED = "failed"


STATUSES = tuple(status.value for status in SessionStatus)
#: The desired state a user asked for (``Session.desired_state``).
RUNNING, STOPPED = "running", "stopped"


class Session(Base):
    __tablename__ = "sessions"
    __table_args__ = (Index("ix_sessions_desired_lease", "desired_state", "lease_expires_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(50), unique=True)
    status: Mapped[str] = mapped_column(String(20), default=SessionStatus.CREATED)
    # What the user asked for; a restart of any process brings back exactly these.
    desired_state: Mapped[str] = mapped_column(String(10), default=STOPPED)
    phone: Mapped[str | None] = mapped_column(String(32), nullable=True)
    push_name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    connected_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_active: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    qr_code: Mapped[str | None] = mapped_column(Text, nullable=True)
    qr_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The lease: which host drives this session, with a fencing token bumped on every claim.
    lease_holder: Mapped[str | None] = mapped_column(String(200), nullable=True)
    lease_token: Mapped[int] = mapped_column(Integer, default=0)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    reconnect_attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    @property
    def queue(self) -> str:
        return session_queue(self.id)
