"""Incoming media (issue 12): what an engine hands over with a MESSAGE event, stored.

An engine's event carries ``media`` as ``{"mimetype", "filename"?, "path"}`` (a file it owns
until its next poll) or ``{"mimetype", "filename"?, "base64"}``. The host streams it into
storage (content-addressed: the same file twice is stored once) and the message keeps
``{mimetype, filename, size, url, sha256}``; ``url`` is ``GET .../messages/:id/media``.
An incoming file is recorded under the type the engine gives: its bytes are only hashed,
not judged (it is what WhatsApp delivered), and a file over MEDIA_MAX_BYTES is kept
as metadata without bytes (``media.omitted``).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from app.config import settings
from app.services import media
from app.services.media import Stored, sniff
from app.services.media.send import spool_base64
from app.services.media.storage import StorageError, open_storage

log = logging.getLogger(__name__)


def store_incoming(session_id: str, message_id: str, raw: Any) -> tuple[dict[str, Any] | None, str | None]:
    """(the message's media value, the stored file's sha256 or None)."""
    if not isinstance(raw, dict):
        return None, None
    if "sha256" in raw and "url" in raw:
        return raw, raw.get("sha256")  # stored already (a re-applied event)
    cfg = settings()
    if isinstance(raw.get("stored"), dict):  # stored off the timer thread (offload.py)
        done = raw["stored"]
        if not done.get("sha256"):
            return {**done, "url": None}, None
        media._record(done["sha256"], int(done["size"]), str(done["mimetype"]))
        stored = Stored(done["sha256"], int(done["size"]), str(done["mimetype"]), done.get("filename"))
        return media.media_json(cfg, session_id, message_id, stored), stored.sha256
    mimetype = str(raw.get("mimetype") or "application/octet-stream")[:100]
    filename = raw.get("filename") or None
    with media.scratch() as folder:
        if raw.get("path"):
            path = Path(str(raw["path"]))
        elif raw.get("base64"):
            path = folder / "incoming"
            try:
                spool_base64(str(raw["base64"]), path, cfg.media_max_bytes)
            except Exception as error:  # noqa: BLE001 - an ApiError of the API's kind
                log.warning("incoming media of %s not stored: %s", message_id, error)
                return {"mimetype": mimetype, "filename": filename, "size": None,
                        "url": None, "omitted": str(error)}, None
        else:
            return {"mimetype": mimetype, "filename": filename, "size": raw.get("size"),
                    "url": None}, None
        sha256, size, head = media.file_digest(path)
        if size > cfg.media_max_bytes:
            return {"mimetype": mimetype, "filename": filename, "size": size, "url": None,
                    "omitted": "larger than MEDIA_MAX_BYTES"}, None
        if mimetype == "application/octet-stream":
            try:
                mimetype = sniff.check(head, "document", None)
            except sniff.MediaRejected:
                pass
        try:
            open_storage(cfg).put(sha256, path, mimetype)
        except StorageError as error:
            raise RuntimeError(f"media storage unavailable: {error}") from None
    media._record(sha256, size, mimetype)
    stored = Stored(sha256, size, mimetype, filename)
    return media.media_json(cfg, session_id, message_id, stored), sha256
