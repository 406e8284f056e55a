"""Media sends (issue 12) on the one send lifecycle of ``app.services.messages``.

- Inline ``base64``: decoded to a file in chunks (413 over MEDIA_MAX_BYTES), checked and
  stored by the API, then committed ``pending`` and sent like a text (201/202, idempotency
  keys, ``deliver`` on the host).
- ``url``: committed ``preparing`` and handed to the ``media`` queue (:func:`prepare`), which
  downloads, checks and stores the file, makes the message ``pending`` and enqueues its send;
  the API waits for both within SEND_WAIT_TIMEOUT. A download that fails (too large, refused
  by the SSRF guard, bytes that are not what the send says) fails the message with a reason
  (``message.failed``).
- On the host, :func:`send_stored` (the ``SENDERS`` line of every media type) reads the stored
  file and hands a local path to the engine: the host never fetches a client's URL.
"""
from __future__ import annotations

import base64
import binascii
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, select, update

from app.common.names import Queues, Tasks, session_queue
from app.config import Config, settings
from app.errors import ApiError, BadRequest, SessionNotReady
from app.extensions import db
from app.models import ApiKey, Message, MessageStatus, Session, SessionStatus
from app.services import dispatch, media, messages, webhooks
from app.services.events import commit_and_publish
from app.services.media import TooLarge, sniff
from app.services.media.fetch import FetchFailed, UnsafeUrl, download, filename_of
from app.services.media.storage import MediaMissing, StorageError, open_storage
from engines import Engine, EngineError, SentMessage

if TYPE_CHECKING:
    from app.services.media.inline import Spooled

log = logging.getLogger(__name__)

B64_CHUNK = 4 * 1024 * 1024  # base64 characters decoded at a time (a multiple of 4)


def fetch_task_id(message_id: str) -> str:
    return f"media-{message_id}"


def decoded_size(text: str) -> int:
    return len(text) // 4 * 3 - text[-2:].count("=") if text else 0


def spool_base64(text: str, dest: Path, limit: int) -> None:
    """Decode ``text`` into the file ``dest`` a chunk at a time; 413 over ``limit``."""
    if text.startswith("data:") and "," in text[:200]:
        text = text[text.index(",") + 1:]
    if decoded_size(text) > limit:
        raise ApiError(f"The media is {decoded_size(text)} bytes; MEDIA_MAX_BYTES is {limit}",
                       status=413, code="MEDIA_TOO_LARGE")
    if len(text) % 4:
        raise BadRequest(["base64: is not valid base64"])
    try:
        with dest.open("wb") as out:
            for start in range(0, len(text), B64_CHUNK):
                out.write(base64.b64decode(text[start:start + B64_CHUNK], validate=True))
    except (binascii.Error, ValueError):
        raise BadRequest(["base64: is not valid base64"]) from None


def _rejected(error: Exception) -> ApiError:
    if isinstance(error, TooLarge):
        return ApiError(str(error), status=413, code="MEDIA_TOO_LARGE")
    if isinstance(error, StorageError):
        return ApiError(f"Media storage is unavailable: {error}", status=503, code="STORAGE_UNAVAILABLE")
    return BadRequest([f"media: {error}"])


def _hash_payload(kind: str, data: dict[str, Any], source: str) -> dict[str, Any]:
    return {"kind": kind, "chat_id": data["chat_id"], "caption": data.get("caption"),
            "filename": data.get("filename"), "mimetype": data.get("mimetype"),
            "ptt": data.get("ptt"), "quoted_message_id": data.get("quoted_message_id"),
            "source": source}


def _require_ready(session: Session) -> None:
    if session.status != SessionStatus.READY:
        raise SessionNotReady(f"Session '{session.name}' is not ready (status {session.status})")


def send_media(session: Session, key: ApiKey, kind: str, data: dict[str, Any],
               idempotency_key: str | None,
               streamed: Spooled | None = None) -> tuple[dict[str, Any], int]:
    """POST .../messages/send-<kind>: 201 sent, 202 pending, or the error. ``streamed`` is
    the file a long inline base64 was already decoded to as it arrived (inline.py)."""
    cfg: Config = settings()
    if data.get("url"):
        return _send_url(cfg, session, key, kind, data, idempotency_key)
    with media.scratch() as folder:
        text = data.pop("base64")
        if streamed is not None:
            upload = streamed.file()  # its 413 or 400, where spool_base64 would raise it
        else:
            upload = folder / "upload"
            spool_base64(text, upload, cfg.media_max_bytes)
        sha256, _, _ = media.file_digest(upload)
        payload = _hash_payload(kind, data, f"sha256:{sha256}")
        if idempotency_key:
            existing = messages._find_idempotent(key, idempotency_key)
            if existing is not None:
                return messages._replay(existing, session, payload, cfg)
        _require_ready(session)
        try:
            stored = media.ingest(cfg, upload, kind, data.get("mimetype"), data.get("filename"))
        except (sniff.MediaRejected, TooLarge, StorageError) as error:
            db.session.rollback()
            raise _rejected(error) from None
    message_id = messages.new_message_id()
    _insert(cfg, session, message_id, kind, data, MessageStatus.PENDING,
            media.media_json(cfg, session.id, message_id, stored) | _extra(data))
    media.attach(message_id, session.id, stored.sha256)
    return messages.commit_ring_and_wait(session, key, message_id, payload, idempotency_key, cfg)


def _extra(data: dict[str, Any]) -> dict[str, Any]:
    return {"ptt": True} if data.get("ptt") else {}


def _send_url(cfg: Config, session: Session, key: ApiKey, kind: str, data: dict[str, Any],
              idempotency_key: str | None) -> tuple[dict[str, Any], int]:
    url = data["url"]
    try:
        check_url_now(cfg, url)
    except UnsafeUrl as error:
        raise BadRequest([f"url: {error}"]) from None
    payload = _hash_payload(kind, data, url)
    if idempotency_key:
        existing = messages._find_idempotent(key, idempotency_key)
        if existing is not None:
            return messages._replay(existing, session, payload, cfg)
    _require_ready(session)
    message_id = messages.new_message_id()
    # The URL waits in the row (never in a task argument: it may carry a token).
    _insert(cfg, session, message_id, kind, data, MessageStatus.PREPARING, {
        "sourceUrl": url, "mimetype": data.get("mimetype"), "filename": data.get("filename"),
        "size": None, "url": media.media_url(cfg, session.id, message_id), **_extra(data)})
    started = time.monotonic()
    # The first task is the download, on the `media` queue; it enqueues the send.
    reply = messages.commit_and_enqueue(
        session, key, message_id, payload, idempotency_key, cfg,
        lambda: dispatch.send(Tasks.MEDIA_PREPARE, [message_id], Queues.MEDIA,
                              task_id=fetch_task_id(message_id)))
    if reply is not None:
        return reply
    fetched = dispatch.wait(dispatch.result_of(fetch_task_id(message_id)), cfg.send_wait_timeout)
    if fetched is None:
        return {"id": message_id, "status": MessageStatus.PENDING.value}, 202
    if not fetched.get("ok"):
        raise ApiError(fetched.get("error") or "The media could not be fetched",
                       status=int(fetched.get("status") or 502), code=fetched.get("code"))
    left = max(0.0, cfg.send_wait_timeout - (time.monotonic() - started))
    reply_of_send = dispatch.wait(dispatch.result_of(messages.send_task_id(message_id)), left)
    if reply_of_send is None:
        return {"id": message_id, "status": MessageStatus.PENDING.value}, 202
    result = dispatch.unwrap(reply_of_send)
    return {"messageId": result["messageId"], "timestamp": result["timestamp"]}, 201


def check_url_now(cfg: Config, url: str) -> None:
    from app.services.ssrf import check_url
    check_url(url, cfg.media_allow_private)


def _insert(cfg: Config, session: Session, message_id: str, kind: str, data: dict[str, Any],
            status: MessageStatus, media_value: dict[str, Any]) -> None:
    messages.stage(session, message_id, kind, {**data, "text": None}, status,
                   caption=data.get("caption"), media=media_value)


# -- the `media` queue: download, check, store, then the send -------------------------------------
_TO_PENDING = (update(Message).where(Message.id == bindparam("message_id"),
                                     Message.status == MessageStatus.PREPARING))


def prepare(message_id: str) -> dict[str, Any]:
    """Download a URL send's file, store it and enqueue the send; idempotent."""
    cfg: Config = settings()
    row = db.session.execute(select(Message.session_id, Message.type, Message.media, Message.status,
                                    Message.chat_id).where(Message.id == message_id)).one_or_none()
    if row is None:
        return {"ok": False, "status": 404, "code": "NOT_FOUND", "error": f"Message '{message_id}' not found"}
    if row.status == MessageStatus.FAILED:
        return {"ok": False, "status": 422, "code": "MEDIA_FETCH_FAILED", "error": "failed before"}
    if row.status != MessageStatus.PREPARING:
        return {"ok": True}
    info = dict(row.media or {})
    try:
        with media.scratch() as folder:
            dest = folder / "download"
            final = download(cfg, str(info.get("sourceUrl")), dest)
            stored = media.ingest(cfg, dest, row.type, info.get("mimetype"),
                                  info.get("filename") or (filename_of(final) if row.type == "document"
                                                           else None))
    except (UnsafeUrl, TooLarge, FetchFailed, sniff.MediaRejected, StorageError) as error:
        db.session.rollback()
        status, code = _failure_status(error)
        reason = f"media: {error}"
        changed = db.session.execute(
            update(Message).where(Message.id == message_id, Message.status == MessageStatus.PREPARING)
            .values(status=MessageStatus.FAILED, error=reason)
            .execution_options(synchronize_session=False))
        targets: list[str] = []
        if changed.rowcount:  # type: ignore[attr-defined]
            targets = webhooks.emit(row.session_id, "message.failed", {
                "id": message_id, "chatId": row.chat_id, "error": reason})
        commit_and_publish(targets)
        return {"ok": False, "status": status, "code": code, "error": reason}
    value = media.media_json(cfg, row.session_id, message_id, stored)
    if info.get("ptt"):
        value["ptt"] = True
    changed = db.session.execute(_TO_PENDING.values(status=MessageStatus.PENDING, media=value)
                                 .execution_options(synchronize_session=False),
                                 {"message_id": message_id})
    if changed.rowcount:  # type: ignore[attr-defined]
        media.attach(message_id, row.session_id, stored.sha256)
    db.session.commit()
    dispatch.send(Tasks.SEND_MESSAGE, [message_id], session_queue(row.session_id),
                  task_id=messages.send_task_id(message_id))
    return {"ok": True}


def _failure_status(error: Exception) -> tuple[int, str]:
    if isinstance(error, TooLarge):
        return 413, "MEDIA_TOO_LARGE"
    if isinstance(error, UnsafeUrl):
        return 400, "MEDIA_URL_REFUSED"
    if isinstance(error, sniff.MediaRejected):
        return 400, "MEDIA_REJECTED"
    if isinstance(error, StorageError):
        return 503, "STORAGE_UNAVAILABLE"
    return 502, "MEDIA_FETCH_FAILED"


# -- the session host: the stored file to the engine ---------------------------------------------
def send_stored(engine: Engine, out: messages.Outgoing) -> SentMessage:
    """The ``SENDERS`` line of every media type: the stored file, as a local path, to
    ``engine.send_media``."""
    row = db.session.execute(select(Message.media, Message.caption)
                             .where(Message.id == out.id)).one()
    info = dict(row.media or {})
    try:
        with open_storage(settings()).local_file(str(info.get("sha256") or "")) as path:
            return engine.send_media(
                out.chat_id, out.type, path, mimetype=str(info.get("mimetype")),
                filename=info.get("filename"), caption=row.caption, ptt=bool(info.get("ptt")),
                message_id=out.id, quoted_message_id=out.quoted_message_id)
    except MediaMissing as error:
        raise EngineError(f"the stored media is gone: {error}") from None
    except StorageError as error:
        raise EngineError(f"media storage: {error}") from None


MEDIA_SENDERS = {kind: send_stored for kind in media.KINDS}
