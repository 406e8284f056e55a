"""Stored media (issue 12): one row per stored file, content-addressed by its sha256, and one
reference per message that carries it. A file is stored once however many messages (and
sessions) use it; it is deleted when its last reference goes (a session delete) or when it
has not been used for MEDIA_RETENTION_DAYS (beat)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UTCDateTime, utcnow


class MediaObject(Base):
    __tablename__ = "media_objects"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    mimetype: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class MediaRef(Base):
    """Message ``message_id`` carries the file ``sha256`` (deleted with the message)."""

    __tablename__ = "media_refs"
    __table_args__ = (Index("ix_media_refs_sha256", "sha256"),
                      Index("ix_media_refs_session", "session_id"))

    message_id: Mapped[str] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True)
    session_id: Mapped[str] = mapped_column(String(36))
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
