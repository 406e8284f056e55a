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
def _backup_now(trigger: str) -> tuple[dict[str, Any], bool]:
    """One backup (the reply, and whether it ran); a backup already running skips it."""
    try:
        record = backups.create_backup(settings(), trigger=trigger,
                                       progress=LogProgress(log, f"{trigger} backup"))
    except BackupRunning as busy:
        log.warning("%s backup skipped: %s", trigger, busy)
        return {"skipped": str(busy)}, False
    return {"id": record.id, "sizeBytes": record.size_bytes, "location": record.location}, True


@openwa_task(Tasks.SCHEDULED_BACKUP, acks_late=False)
def scheduled_backup() -> dict[str, Any]:
    """Take the scheduled backup, then delete what the retention policy does not keep."""
    reply, ran = _backup_now("scheduled")
    if ran:
        reply["deleted"] = backups.apply_retention(settings())
    return reply


@openwa_task(Tasks.MANUAL_BACKUP, acks_late=False)
def manual_backup() -> dict[str, Any]:
    """A backup asked for now (POST /api/infra/backups); retention is left to the schedule."""
    return _backup_now("manual")[0]
