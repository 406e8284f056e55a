"""Incoming media (issue 12): what an engine hands over with a MESSAGE event, stored.

An engine's event carries ``media`` as ``{"mimetype", "filename"?, "path"}`` (a file it owns
until its next poll) or ``{"mimetype", "filename"?, "base64"}``. The session host streams it
into storage, normally off its timer thread (``offload.py``, which leaves ``{"stored": ...}``
in the event), and the message keeps ``{mimetype, filename, size, url, sha256}``; ``url`` is
``GET .../messages/:id/media``. An incoming file is recorded under the type the engine gives:
its bytes are only hashed, not judged (it is what WhatsApp delivered); a file over
MEDIA_MAX_BYTES is kept as metadata without bytes (``omitted``).
"""
from __future__ import annotations

from typing import Any

from app.config import settings
from app.services import media
from app.services.media import Stored
from app.services.media.offload import store_file


def store_incoming(session_id: str, message_id: str, raw: Any) -> tuple[dict[str, Any] | None, str | None]:
    """(the message's media value, the stored file's sha256 or None)."""
    if not isinstance(raw, dict):
        return None, None
    if "sha256" in raw and "url" in raw:
        return raw, raw.get("sha256")  # stored already (a re-applied event)
    cfg = settings()
    if isinstance(raw.get("stored"), dict):
        done = raw["stored"]  # stored off the timer thread
    elif raw.get("path") or raw.get("base64"):
        done = store_file(cfg, raw)  # here, in the host's thread (offloading failed)
    else:
        return {"mimetype": raw.get("mimetype"), "filename": raw.get("filename"),
                "size": raw.get("size"), "url": None}, None
    if not done.get("sha256"):
        return {**done, "url": None}, None
    stored = Stored(str(done["sha256"]), int(done["size"]), str(done["mimetype"]), done.get("filename"))
    media._record(stored.sha256, stored.size, stored.mimetype)
    return media.media_json(cfg, session_id, message_id, stored), stored.sha256
