"""Media (issue 12): storing files once by sha256, the references messages hold on them,
retention, and what a session delete frees.

- :func:`ingest` takes a local file (an upload spooled to disk, a download, what an engine
  handed over), checks its bytes (``sniff``), stores it (``storage``) and records it.
- :func:`attach` notes that a message carries a stored file (``media_refs``).
- :func:`forget_session` deletes the files only a deleted session used; :func:`prune` those
  not used for MEDIA_RETENTION_DAYS.
"""
from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, exists, select, update
from sqlalchemy.exc import IntegrityError

from app.config import Config
from app.extensions import db
from app.models import utcnow
from app.models.media import MediaObject, MediaRef
from app.services.media import sniff
from app.services.media.storage import CHUNK, MediaMissing, StorageError, open_storage

log = logging.getLogger(__name__)

#: The send types and the WhatsApp message type each is stored as.
KINDS = ("image", "video", "audio", "document", "sticker")


@dataclass(frozen=True)
class Stored:
    sha256: str
    size: int
    mimetype: str
    filename: str | None


class TooLarge(ValueError):
    """Over MEDIA_MAX_BYTES."""


@contextmanager
def scratch() -> Iterator[Path]:
    """A private temporary folder, removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="openwa-media-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def file_digest(path: Path) -> tuple[str, int, bytes]:
    """(sha256, size, first bytes) of a file, read in chunks."""
    digest, size, head = hashlib.sha256(), 0, b""
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            if not head:
                head = chunk[:sniff.HEAD]
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size, head


def ingest(config: Config, path: Path, kind: str, claimed: str | None,
           filename: str | None) -> Stored:
    """Check the file at ``path`` as a ``kind`` and store it; raises sniff.MediaRejected,
    TooLarge or StorageError. A sticker is stored as its WebP conversion."""
    sha256, size, head = file_digest(path)
    if size > config.media_max_bytes:
        raise TooLarge(f"the file is {size} bytes; MEDIA_MAX_BYTES is {config.media_max_bytes}")
    if size == 0:
        raise sniff.MediaRejected("the file is empty")
    mimetype = sniff.check(head, kind, claimed)
    if kind == "sticker" and mimetype != "image/webp":
        webp = path.with_name(path.name + ".webp")
        sniff.sticker_webp(path, webp)
        sha256, size, _ = file_digest(webp)
        path, mimetype = webp, "image/webp"
    open_storage(config).put(sha256, path, mimetype)
    _record(sha256, size, mimetype)
    if kind == "document" and not filename:
        filename = sniff.default_filename(kind, mimetype, sha256)
    return Stored(sha256, size, mimetype, filename)


def _record(sha256: str, size: int, mimetype: str) -> None:
    """The file's row (used now); committed with the caller's transaction."""
    now = utcnow()
    changed = db.session.execute(update(MediaObject).where(MediaObject.sha256 == sha256)
                                 .values(last_used_at=now)
                                 .execution_options(synchronize_session=False))
    if changed.rowcount:  # type: ignore[attr-defined]
        return
    try:
        with db.session.begin_nested():
            db.session.add(MediaObject(sha256=sha256, size=size, mimetype=mimetype,
                                       created_at=now, last_used_at=now))
    except IntegrityError:
        pass  # another process recorded it meanwhile


def media_url(config: Config, session_id: str, message_id: str) -> str:
    return f"{config.api_prefix}/sessions/{session_id}/messages/{message_id}/media"


def media_json(config: Config, session_id: str, message_id: str, stored: Stored) -> dict[str, Any]:
    """What ``messages.media`` holds: the public fields and the key of the stored file."""
    return {"mimetype": stored.mimetype, "filename": stored.filename, "size": stored.size,
            "url": media_url(config, session_id, message_id), "sha256": stored.sha256}


def attach(message_id: str, session_id: str, sha256: str) -> None:
    db.session.add(MediaRef(message_id=message_id, session_id=session_id, sha256=sha256))


def open_media(config: Config, media: dict[str, Any] | None) -> Any:
    """A stream of a message's stored file; MediaMissing when it has none (or it was pruned)."""
    sha256 = (media or {}).get("sha256")
    if not sha256:
        raise MediaMissing("the message has no stored media")
    return open_storage(config).open(sha256)


def _delete_unreferenced(config: Config, candidates: list[str]) -> int:
    """Delete the files among ``candidates`` no message refers to any more."""
    if not candidates:
        return 0
    used = set(db.session.scalars(select(MediaRef.sha256).where(MediaRef.sha256.in_(candidates))))
    gone = [sha for sha in candidates if sha not in used]
    store = open_storage(config)
    for sha256 in gone:
        try:
            store.delete(sha256)
        except StorageError as error:
            log.warning("could not delete media %s: %s", sha256, error)
            continue
        db.session.execute(delete(MediaObject).where(MediaObject.sha256 == sha256))
    db.session.commit()
    return len(gone)


def session_files(session_id: str) -> list[str]:
    """The files a session's messages carry (read before the session's rows go)."""
    return list(db.session.scalars(select(MediaRef.sha256).where(MediaRef.session_id == session_id)
                                   .distinct()))


def forget_session(config: Config, files: list[str]) -> int:
    """After a session delete: remove the files of ``files`` no other session uses."""
    return _delete_unreferenced(config, files)


def prune(config: Config) -> int:
    """Delete files not used for MEDIA_RETENTION_DAYS (their messages keep their metadata;
    ``GET .../media`` answers 404), and files no message refers to after a day."""
    now = utcnow()
    removed = 0
    store = open_storage(config)
    if config.media_retention_days > 0:
        cutoff = now - timedelta(days=config.media_retention_days)
        for sha256 in db.session.scalars(select(MediaObject.sha256)
                                         .where(MediaObject.last_used_at < cutoff).limit(10000)):
            try:
                store.delete(sha256)
            except StorageError as error:
                log.warning("could not delete media %s: %s", sha256, error)
                continue
            db.session.execute(delete(MediaRef).where(MediaRef.sha256 == sha256))
            db.session.execute(delete(MediaObject).where(MediaObject.sha256 == sha256))
            removed += 1
        db.session.commit()
    # Stored but never attached (a send refused after its upload was stored) for a day.
    orphans = list(db.session.scalars(
        select(MediaObject.sha256).where(MediaObject.created_at < now - timedelta(days=1))
        .where(~exists().where(MediaRef.sha256 == MediaObject.sha256)).limit(10000)))
    return removed + _delete_unreferenced(config, orphans)


__all__ = ["KINDS", "MediaMissing", "Stored", "StorageError", "TooLarge", "attach",
           "file_digest", "forget_session", "ingest", "media_json", "open_media", "prune",
           "scratch", "session_files"]
