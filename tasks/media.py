"""Media work on the ``media`` queue (issue 12): downloading a URL send's file, re-enqueuing
downloads a lost broker message or a killed worker left behind, and retention."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from app.common.names import Queues, Tasks
from app.config import settings
from app.extensions import db
from app.models import Message, MessageStatus, utcnow
from app.services import dispatch, media
from app.services.media.send import fetch_task_id
from app.services.media.send import prepare as prepare_media
from tasks.base import openwa_task


@openwa_task(Tasks.MEDIA_PREPARE)
def prepare(message_id: str) -> dict[str, Any]:
    """Download, check and store a URL send's file, then enqueue its send."""
    return prepare_media(message_id)


@openwa_task(Tasks.MEDIA_SWEEP)
def sweep() -> dict[str, int]:
    """URL sends still ``preparing`` after twice MEDIA_FETCH_TIMEOUT: download them again."""
    cfg = settings()
    cutoff = utcnow() - timedelta(seconds=2 * cfg.media_fetch_timeout + 5)
    stale = list(db.session.scalars(select(Message.id).where(
        Message.status == MessageStatus.PREPARING, Message.updated_at < cutoff).limit(1000)))
    for message_id in stale:
        dispatch.send(Tasks.MEDIA_PREPARE, [message_id], Queues.MEDIA, task_id=fetch_task_id(message_id))
        db.session.execute(update(Message).where(Message.id == message_id).values(updated_at=utcnow())
                           .execution_options(synchronize_session=False))
    db.session.commit()
    return {"requeued": len(stale)}


@openwa_task(Tasks.MEDIA_PRUNE)
def prune() -> dict[str, int]:
    """Delete media unused for MEDIA_RETENTION_DAYS, and stored files no message carries."""
    return {"deleted": media.prune(settings())}
