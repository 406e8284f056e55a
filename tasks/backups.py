"""Backups on the ``backups`` queue: scheduled by beat at BACKUP_SCHEDULE, or asked for now."""
from __future__ import annotations

import logging
from typing import Any

from app.backups import BackupRunning
from app.backups.progress import LogProgress
from app.common.names import Tasks
from app.config import settings
from app.services import backups
from tasks.base import openwa_task

log = logging.getLogger(__name__)


# Acknowledged on receipt, unlike the other tasks: a backup can outlast the broker's
# visibility timeout, and a redelivered copy would start a second backup beside the first.
# If the worker dies mid-backup, the run is recorded as interrupted and the next one
# comes at the next scheduled time.
@openwa_task(Tasks.SCHEDULED_BACKUP, acks_late=False)
def scheduled_backup() -> dict[str, Any]:
    """Take the scheduled backup, then delete what the retention policy does not keep."""
    config = settings()
    try:
        record = backups.create_backup(config, trigger="scheduled",
                                       progress=LogProgress(log, "scheduled backup"))
    except BackupRunning as busy:
        log.warning("scheduled backup skipped: %s", busy)
        return {"skipped": str(busy)}
    deleted = backups.apply_retention(config)
    return {"id": record.id, "sizeBytes": record.size_bytes, "location": record.location,
            "deleted": deleted}


@openwa_task(Tasks.MANUAL_BACKUP, acks_late=False)
def manual_backup() -> dict[str, Any]:
    """A backup asked for now (POST /api/infra/backups); retention is left to the schedule."""
    config = settings()
    try:
        record = backups.create_backup(config, trigger="manual",
                                       progress=LogProgress(log, "manual backup"))
    except BackupRunning as busy:
        log.warning("manual backup skipped: %s", busy)
        return {"skipped": str(busy)}
    return {"id": record.id, "sizeBytes": record.size_bytes, "location": record.location}
