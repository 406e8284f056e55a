"""Publishing live events: after the commit of the change they report, through Redis.

Whatever process commits an event (API, session host, worker) publishes it here; every API
process listens on the channel and forwards it to its own ``/events`` clients
(``app.realtime``). A Redis outage loses only live frames: webhooks still carry the events
from the outbox.
"""
from __future__ import annotations

import logging
import threading
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import socketio
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session as OrmSession

from app.config import settings
from app.extensions import db

log = logging.getLogger(__name__)

NAMESPACE = "/events"
CHANNEL = "openwa-events"


def channel_for(redis_url: str | None) -> str:
    """The pub/sub channel of the deployment on ``redis_url``: Redis delivers a publish to
    every subscriber of the server whatever database it selected, so two deployments that
    share a server on different database numbers would see each other's live events."""
    database = urlsplit(redis_url or "").path.lstrip("/") or "0"
    return f"{CHANNEL}:{database}"


_PENDING = "openwa.live_events"


# -- publishing (any process) ----------------------------------------------------------
class _BatchingManager(socketio.RedisManager):
    """python-socketio's write-only Redis manager, whose messages (its own format, built by
    its ``emit``) are sent in one Redis round trip per :func:`publish` call instead of one
    each: a tick that applies a burst of acks, or a pass of several sends, publishes its
    frames in one pipeline (scale, issue 18). ``_publish`` is the library's hook for
    transports; outside a batch it publishes at once, as the library does."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._batches = threading.local()

    def _publish(self, data: Any) -> Any:
        batch = getattr(self._batches, "messages", None)
        if batch is None:
            return super()._publish(data)
        batch.append(self.json.dumps(data))
        return None

    def emit_all(self, messages: list[tuple[Any, ...]]) -> None:
        """``emit`` each (event, data, namespace, rooms), then publish them in order in one
        pipeline; two tries, reconnecting between them, as the library's own publish."""
        batch: list[str] = []
        self._batches.messages = batch
        try:
            for event, data, namespace, rooms in messages:
                self.emit(event, data, namespace=namespace, room=rooms)
        finally:
            self._batches.messages = None
        for tries_left in (1, 0):
            try:
                if not getattr(self, "connected", False):
                    self._redis_connect()
                with self.redis.pipeline(transaction=False) as pipe:
                    for encoded in batch:
                        pipe.publish(self.channel, encoded)
                    pipe.execute()
                return
            except Exception:
                self.connected = False
                if not tries_left:
                    raise


class _Publisher:
    """One write-only Redis manager per process, made on first use (after any fork)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._managers: dict[str, _BatchingManager] = {}

    def manager(self, url: str) -> _BatchingManager:
        with self._lock:
            found = self._managers.get(url)
            if found is None:
                # Short timeouts: a hung Redis must not hold up the host tick that
                # committed the event for long (two tries, then the frame is dropped).
                found = self._managers[url] = _BatchingManager(
                    url, channel=channel_for(url), write_only=True, logger=False,
                    redis_options={"socket_timeout": 1, "socket_connect_timeout": 1})
            return found


_publisher = _Publisher()


def rooms_for(session_id: str, event: str) -> list[str]:
    return [f"{session_id}|{event}", f"{session_id}|*", f"*|{event}", "*|*"]


def frame(session_id: str, event: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"type": "event",
            "timestamp": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
            "payload": {"event": event, "sessionId": session_id, "data": data}}


def publish_after_commit(session_id: str, event: str, data: dict[str, Any]) -> None:
    """Queue an event on the current transaction; it is published once that commits."""
    db.session.info.setdefault(_PENDING, []).append((session_id, event, data))


def publish(url: str | None, events: list[tuple[str, str, dict[str, Any]]]) -> None:
    """Send committed events to every API process, in order and in one Redis round trip; a
    Redis outage loses only live frames (webhooks still carry the events from the outbox)."""
    if not url or not events:
        return
    try:
        _publisher.manager(url).emit_all([
            ("message", frame(session_id, event, data), NAMESPACE, rooms_for(session_id, event))
            for session_id, event, data in events])
    except Exception as error:  # never fail the caller's committed work over a live frame
        log.warning("could not publish %d live event(s): %s", len(events), type(error).__name__)


def hold_pending() -> list[tuple[str, str, dict[str, Any]]]:
    """Take the events queued on the current transaction off it, so its commit does not
    publish them: the caller publishes them (:func:`publish_held`) once it has committed,
    when it chooses (a session host, after the replies its API requests wait for)."""
    held: list[tuple[str, str, dict[str, Any]]] = db.session.info.pop(_PENDING, [])
    return held


def publish_held(events: list[tuple[str, str, dict[str, Any]]]) -> None:
    """Publish committed events to this app's deployment (nothing outside an app)."""
    if events:
        try:
            url = settings().redis_url
        except (RuntimeError, KeyError):  # outside an app: nobody to publish for
            return
        publish(url, events)


def _after_commit(session: OrmSession) -> None:
    publish_held(session.info.pop(_PENDING, []))


def _forget_uncommitted(session: OrmSession, transaction: Any) -> None:
    # After a commit the events are already gone (after_commit runs first); what is left
    # belongs to a transaction that was rolled back or closed: it never happened.
    if transaction.parent is None:
        session.info.pop(_PENDING, None)


def install() -> None:
    """Publish queued events after their commit, forget them after a rollback. Called by
    the app factory (every process builds one), once per process however many apps."""
    for name, listener in (("after_commit", _after_commit),
                           ("after_transaction_end", _forget_uncommitted)):
        if not sa_event.contains(OrmSession, name, listener):
            sa_event.listen(OrmSession, name, listener)
