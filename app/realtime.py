"""Live events: Socket.IO namespace ``/events`` (OpenWA's protocol), fed through Redis.

Whatever process commits an event (API, session host, worker) publishes it after the commit
to a Redis channel; every API process listens on that channel and forwards the event to its
own clients that subscribed to it. So a client of any API process sees what a webhook
receiver sees, and only once the change it reports is durable.

Subscriptions are Socket.IO rooms named ``<sessionId>|<event>`` (either part may be ``*``):
an event is emitted to the four rooms that can match it, and a client in several of them
gets it once. Only the websocket transport is served: long-polling would need sticky
routing between API processes, which the deployment does not have.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any

from flask import Flask, request
from flask_socketio import SocketIO, disconnect
from flask_socketio import emit as sio_emit
from flask_socketio import join_room, leave_room

from app.config import Config, settings
from app.errors import ApiError
from app.extensions import db
from app.live import NAMESPACE, channel_for, frame
from app.models import EVENTS, ApiKey, utcnow
from app.services import key_auth
from app.services import sessions as session_service

log = logging.getLogger(__name__)


# -- the server (API processes) --------------------------------------------------------
class _Clients:
    """This process's /events connections: key id and a frame budget per connection."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_sid: dict[str, dict[str, Any]] = {}

    def add(self, sid: str, key_id: str, limit: int) -> bool:
        with self._lock:
            if len(self._by_sid) >= limit:
                return False
            self._by_sid[sid] = {"key": key_id, "frames": deque()}
            return True

    def remove(self, sid: str) -> None:
        with self._lock:
            self._by_sid.pop(sid, None)

    def get(self, sid: str) -> dict[str, Any] | None:
        with self._lock:
            return self._by_sid.get(sid)

    def count(self) -> int:
        with self._lock:
            return len(self._by_sid)

    def allow_frame(self, sid: str, per_minute: int) -> bool:
        """Sliding one-minute window of frames per connection."""
        now = time.monotonic()
        with self._lock:
            client = self._by_sid.get(sid)
            if client is None:
                return False
            frames: deque[float] = client["frames"]
            while frames and frames[0] <= now - 60:
                frames.popleft()
            if len(frames) >= per_minute:
                return False
            frames.append(now)
            return True


clients = _Clients()


def _config() -> Config:
    return settings()


def max_clients(config: Config) -> int:
    """Each websocket holds one gunicorn thread: keep half of them for REST requests."""
    return config.events_max_clients or max(1, config.api_threads // 2)


def _presented(auth: Any) -> str | None:
    if isinstance(auth, dict) and isinstance(auth.get("apiKey"), str):
        return auth["apiKey"].strip() or None
    header = request.headers.get("X-API-Key")
    if header:
        return header.strip()
    bearer = request.headers.get("Authorization", "")
    return bearer[7:].strip() or None if bearer[:7].lower() == "bearer " else None


def _error(request_id: Any, status: int, message: str, code: str) -> dict[str, Any]:
    return {"type": "error", "requestId": request_id,
            "error": {"statusCode": status, "message": message, "code": code}}


def _current_key(sid: str) -> ApiKey | None:
    """The connection's key as it is now: a key revoked or expired since connecting is gone."""
    client = clients.get(sid)
    if client is None:
        return None
    key = db.session.get(ApiKey, client["key"])
    if key is None or not key.is_active or (key.expires_at is not None and key.expires_at <= utcnow()):
        return None
    return key


def _on_connect(auth: Any = None) -> bool:
    config = _config()
    try:
        key = key_auth.authenticate(_presented(auth), request.remote_addr, config)
    except ApiError as error:
        log.info("refused an /events connection: %s", error)
        return False
    if not clients.add(request.sid, key.id, max_clients(config)):  # type: ignore[attr-defined]
        log.warning("refused an /events connection: %d clients already", clients.count())
        return False
    db.session.remove()
    return True


def _on_disconnect(*_: Any) -> None:
    clients.remove(request.sid)  # type: ignore[attr-defined]


def _subscription(message: dict[str, Any], key: ApiKey) -> tuple[str, list[str]]:
    """(session id or *, events) of a (un)subscribe frame; ApiError when refused."""
    target = message.get("sessionId", "*")
    events = message.get("events") or ["*"]
    if not isinstance(target, str) or not isinstance(events, list) or not all(
            isinstance(e, str) for e in events):
        raise ApiError("sessionId must be a string and events a list of strings",
                       code="INVALID_FRAME")
    unknown = sorted(set(events) - set(EVENTS) - {"*"})
    if unknown:
        raise ApiError(f"unknown event(s) {', '.join(unknown)}", code="INVALID_FRAME")
    if "*" in events:
        events = ["*"]
    # -- allowedChats (issue 13.7): rooms are per session and event, not per chat, so a
    # chat-scoped key would see other chats' events: default-deny --
    if key.allowed_chats:
        raise ApiError("a chat-scoped API key (allowedChats) cannot subscribe to live events",
                       status=403, code="SCOPE_REFUSED")
    if target == "*":
        if key.allowed_sessions:
            raise ApiError("a session-scoped API key cannot subscribe to every session",
                           status=403, code="SCOPE_REFUSED")
        return "*", events
    session = session_service.find(target)
    if key.allowed_sessions and (session is None or not key_auth.session_allowed(key, session)):
        raise ApiError(f"API key may not access session '{target}'", status=403,
                       code="SCOPE_REFUSED")
    if session is None:
        raise ApiError(f"Session '{target}' not found", status=404, code="NOT_FOUND")
    return session.id, events


def _on_message(message: Any) -> None:
    sid = request.sid  # type: ignore[attr-defined]
    request_id = message.get("requestId") if isinstance(message, dict) else None
    try:
        if not clients.allow_frame(sid, _config().events_rate_limit):
            sio_emit("message", _error(request_id, 429, "Too many frames on this connection",
                                       "RATE_LIMITED"))
            return
        key = _current_key(sid)
        if key is None:
            sio_emit("message", _error(request_id, 401, "API key is no longer valid",
                                       "UNAUTHORIZED"))
            disconnect()
            return
        if not isinstance(message, dict) or message.get("type") not in (
                "subscribe", "unsubscribe", "ping"):
            sio_emit("message", _error(request_id, 400,
                                       "type must be subscribe, unsubscribe or ping",
                                       "INVALID_FRAME"))
            return
        if message["type"] == "ping":
            sio_emit("message", {"type": "pong", "requestId": request_id,
                                 "timestamp": frame("", "", {})["timestamp"]})
            return
        try:
            target, events = _subscription(message, key)
        except ApiError as error:
            sio_emit("message", _error(request_id, error.status, str(error),
                                       error.code or "BAD_REQUEST"))
            return
        for event in events:
            room = f"{target}|{event}"
            if message["type"] == "subscribe":
                join_room(room)
            else:
                leave_room(room)
        sio_emit("message", {"type": f"{message['type']}d", "requestId": request_id,
                             "sessionId": target, "events": events})
    finally:
        db.session.remove()


def install(app: Flask, config: Config) -> SocketIO:
    """Serve /events on this app; events arrive through Redis when REDIS_URL is set.

    The Socket.IO server wraps the app's WSGI callable and answers ``/socket.io/`` itself.
    Browsers are held to the same origin (the default); clients that send no Origin
    (SDKs, python-socketio) are not browsers and need a key like any other.
    """
    server = SocketIO(app, async_mode="threading", message_queue=config.redis_url,
                      channel=channel_for(config.redis_url), transports=["websocket"], logger=False,
                      engineio_logger=False, ping_interval=25, ping_timeout=20,
                      max_http_buffer_size=65536, always_connect=False)
    server.on_event("connect", _on_connect, namespace=NAMESPACE)
    server.on_event("disconnect", _on_disconnect, namespace=NAMESPACE)
    server.on_event("message", _on_message, namespace=NAMESPACE)
    return server
