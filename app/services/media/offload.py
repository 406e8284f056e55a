"""Storing incoming media off the session host's timer thread (issue 12).

The host polls every engine from one thread; copying a 50 MB video into storage (or uploading
it to a bucket) there would stall every session on the host for as long. So when a poll
returns a message with a file, the events from that message on are handed to a small pool
that stores the files, and the host goes on with its other sessions; the session whose events
wait is not polled again until they are stored and applied (an engine may forget what one
poll returned once it is polled again: nothing is lost if the host dies meanwhile, and the
session's events keep their order).
"""
from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from app.config import Config
from app.services.media import scratch, sniff
from app.services.media.storage import open_storage
from engines.base import EngineEvent, EventKind

log = logging.getLogger(__name__)

_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="media-store")


@dataclass
class _Waiting:
    events: list[EngineEvent]
    futures: dict[int, Future[dict[str, Any]]]  # index in events -> the stored file's fields


_waiting: dict[str, _Waiting] = {}


def _has_file(event: EngineEvent) -> bool:
    raw = event.data.get("media") if event.kind is EventKind.MESSAGE else None
    return isinstance(raw, dict) and bool(raw.get("path") or raw.get("base64"))


def store_file(config: Config, raw: dict[str, Any]) -> dict[str, Any]:
    """Stream an engine's file into storage: ``{"sha256", "size", "mimetype", "filename"}``
    (``omitted`` instead of ``sha256`` for a file over MEDIA_MAX_BYTES)."""
    from app.services import media
    from app.services.media.send import spool_base64

    mimetype = str(raw.get("mimetype") or "application/octet-stream")[:100]
    filename = raw.get("filename") or None
    with scratch() as folder:
        if raw.get("path"):
            path = Path(str(raw["path"]))
        else:
            path = folder / "incoming"
            try:
                spool_base64(str(raw["base64"]), path, config.media_max_bytes)
            except Exception as error:  # noqa: BLE001 - an ApiError (413/400) of the API's kind
                return {"mimetype": mimetype, "filename": filename, "size": None, "omitted": str(error)}
        sha256, size, head = media.file_digest(path)
        if size > config.media_max_bytes:
            return {"mimetype": mimetype, "filename": filename, "size": size,
                    "omitted": "larger than MEDIA_MAX_BYTES"}
        if mimetype == "application/octet-stream":
            try:
                mimetype = sniff.check(head, "document", None)
            except sniff.MediaRejected:
                pass
        open_storage(config).put(sha256, path, mimetype)
    return {"sha256": sha256, "size": size, "mimetype": mimetype, "filename": filename}


def start(config: Config, session_id: str, events: list[EngineEvent]) -> list[EngineEvent]:
    """The events that may be applied now; from the first message with a file on, the events
    wait for :func:`take` while the pool stores the files."""
    first = next((i for i, event in enumerate(events) if _has_file(event)), None)
    if first is None:
        return events
    held = events[first:]
    futures = {i: _pool.submit(store_file, config, dict(event.data["media"]))
               for i, event in enumerate(held) if _has_file(event)}
    _waiting[session_id] = _Waiting(held, futures)
    return events[:first]


def waiting(session_id: str) -> bool:
    return session_id in _waiting


def take(session_id: str) -> list[EngineEvent] | None:
    """The held events with their files stored, once every file is; None while one is not.
    A file that could not be stored (storage down) goes back as the engine gave it: the
    event is then stored in the host's thread, which retries it as any database failure."""
    entry = _waiting.get(session_id)
    if entry is None:
        return []
    if not all(future.done() for future in entry.futures.values()):
        return None
    del _waiting[session_id]
    out = []
    for i, event in enumerate(entry.events):
        future = entry.futures.get(i)
        if future is not None:
            try:
                stored = future.result()
            except Exception as error:  # noqa: BLE001 - kept raw: stored synchronously later
                log.warning("session %s: storing incoming media off the timer failed: %s",
                            session_id, error)
            else:
                event = replace(event, data={**event.data, "media": {"stored": stored}})
        out.append(event)
    return out


def forget(session_id: str) -> None:
    """The session left this host: what waited is dropped (the engine gives it again)."""
    _waiting.pop(session_id, None)
