"""Backups as the database knows them: one row per run, with its status.

The storage (its manifests) is the source of truth for which backups exist; these rows add
what a run did (trigger, errors, timing) and are reconciled with the storage after every
restore, because a restored database only knows the backups taken before its own dump.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UTCDateTime, utcnow

RUNNING, COMPLETED, FAILED = "running", "completed", "failed"
BACKUP_STATUSES = (RUNNING, COMPLETED, FAILED)
TRIGGERS = ("manual", "scheduled")


class Backup(Base):
    __tablename__ = "backups"
    __table_args__ = (Index("ix_backups_status_started", "status", "started_at"),)

    # Time-sortable: 20260102T020000Z-1a2b3c, also the folder or key prefix in the storage.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default=RUNNING)
    trigger: Mapped[str] = mapped_column(String(16), default="manual")
    storage: Mapped[str] = mapped_column(String(16))
    location: Mapped[str] = mapped_column(String(500))
    database_backend: Mapped[str] = mapped_column(String(16))
    alembic_revision: Mapped[str | None] = mapped_column(String(64), nullable=True)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    manifest_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Bumped while a run makes progress: a "running" row whose heartbeat is old was
    # interrupted (its process died) and no longer blocks the next run.
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
