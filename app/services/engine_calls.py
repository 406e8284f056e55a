"""Asking the engine of a session something, through its own queue, and waiting."""
from __future__ import annotations

from typing import Any

from app.common.names import Tasks
from app.config import settings
from app.errors import Conflict, SessionNotReady
from app.extensions import cache
from app.models import RUNNING, Session, SessionStatus
from app.services import dispatch

QUERY_TASK = Tasks.ENGINE_QUERY
# Read-only answers worth keeping for CACHE_TTL: WhatsApp rate-limits number checks, and
# contact and group lists are slow to build in a browser.
CACHEABLE = {"contacts", "chats", "groups", "check_number"}


def call(session: Session, method: str, args: list[Any], *, require_ready: bool = True) -> Any:
    if require_ready and session.status != SessionStatus.READY:
        raise SessionNotReady(f"Session '{session.name}' is not ready (status {session.status})")
    if not require_ready and session.desired_state != RUNNING:
        raise Conflict(f"Session '{session.name}' is not started", code="SESSION_NOT_STARTED")
    timeout = settings().engine_call_timeout
    if method not in CACHEABLE:
        return dispatch.call(QUERY_TASK, [session.id, method, args], session.queue, timeout)
    key = f"engine:{session.id}:{method}:{':'.join(map(str, args))}"
    found = cache.get(key)
    if found is None:
        found = dispatch.call(QUERY_TASK, [session.id, method, args], session.queue, timeout)
        cache.set(key, found)
    return found
