"""A webhook's ``inlineMedia`` (issue 12.4): a message event's small media, carried as base64.

The bytes are read when a delivery is made, not when its event is written: the outbox row
stays as small as any other (and a retry, a redrive or a dead letter holds no file), and a
webhook switched on or off applies to what it has not delivered yet. The event names its
message (``data.id``); the stored file is the one that message's ``media`` refers to.

- a file of at most :data:`INLINE_MEDIA_MAX_BYTES` adds ``media.base64`` (standard, padded);
- a larger one adds ``media.base64Error: MEDIA_TOO_LARGE`` (the receiver fetches ``media.url``);
- a file that is not stored any more (pruned by MEDIA_RETENTION_DAYS, a message whose file was
  never stored, a message deleted with its session) adds ``media.base64Error: MEDIA_GONE``:
  waiting would not bring it back, so the event is delivered without the bytes;
- a storage that cannot be read (bucket unreachable, disk error) raises
  :class:`MediaUnreadable`: the attempt fails and is retried like a failed POST, so the bytes
  arrive once the storage is back (or the delivery dead-letters).

The storage module (boto3) is imported only when a delivery has media to read.
"""
from __future__ import annotations

import base64
from typing import Any

from sqlalchemy import bindparam, select

from app.config import Config
from app.extensions import db
from app.models import Message

#: The largest stored file a webhook carries inline (1 MiB); larger ones only by ``media.url``.
INLINE_MEDIA_MAX_BYTES = 1024 * 1024
TOO_LARGE, GONE = "MEDIA_TOO_LARGE", "MEDIA_GONE"

_STORED_MEDIA = select(Message.media).where(Message.id == bindparam("message_id"),
                                            Message.session_id == bindparam("session_id"))


class MediaUnreadable(Exception):
    """The storage could not be read (not: the file is gone); the message says why."""


def wants(data: Any) -> bool:
    """Whether an event's data carries a message's media to inline."""
    return isinstance(data, dict) and isinstance(data.get("media"), dict) and bool(data.get("id"))


def media_fields(config: Config, session_id: str, message_id: str) -> dict[str, str]:
    """``{"base64": ...}`` or ``{"base64Error": ...}`` for the message's stored file; raises
    MediaUnreadable when the storage cannot be read."""
    from app.services.media.storage import CHUNK, MediaMissing, StorageError, open_storage

    stored = db.session.execute(_STORED_MEDIA, {"message_id": message_id,
                                                "session_id": session_id}).scalar_one_or_none()
    size, sha256 = (stored or {}).get("size"), (stored or {}).get("sha256")
    if isinstance(size, int) and size > INLINE_MEDIA_MAX_BYTES:
        return {"base64Error": TOO_LARGE}  # known from the row: storage is not asked
    if not sha256:
        return {"base64Error": GONE}
    try:
        with open_storage(config).open(str(sha256)) as stream:
            chunks: list[bytes] = []
            read = 0
            while read <= INLINE_MEDIA_MAX_BYTES:
                chunk = stream.read(min(CHUNK, INLINE_MEDIA_MAX_BYTES + 1 - read))
                if not chunk:
                    break
                chunks.append(chunk)
                read += len(chunk)
    except MediaMissing:
        return {"base64Error": GONE}
    except StorageError as error:
        raise MediaUnreadable(str(error)) from None
    except Exception as error:  # a read cut short (S3 stream, disk): the storage's failure
        raise MediaUnreadable(f"cannot read media {sha256}: {type(error).__name__}") from None
    if read > INLINE_MEDIA_MAX_BYTES:
        return {"base64Error": TOO_LARGE}
    return {"base64": base64.b64encode(b"".join(chunks)).decode("ascii")}


def with_media(config: Config, row: Any) -> dict[str, Any]:
    """The delivery ``row``'s data as it is sent to a webhook with ``inlineMedia``: as
    stored when its event carries no media, else a copy whose ``data.media`` has the base64
    fields."""
    data: dict[str, Any] = row.data
    if not wants(data):
        return data
    extra = media_fields(config, row.session_id, str(data["id"]))
    return {**data, "media": {**data["media"], **extra}}
