"""Chats, contacts, presence and groups (issue 13.2/3): reads are engine queries
(:mod:`app.services.engine_calls`), writes are engine commands on the session's own queue,
so they run in order with the session's sends.

A write drops this process's cached chat and group lists of the session (engine_calls
caches them for CACHE_TTL), so the next list shows the change.
"""
from __future__ import annotations

from typing import Any

from app.common.names import Tasks
from app.config import settings
from app.errors import SessionNotReady
from app.extensions import cache
from app.models import ApiKey, Session, SessionStatus
from app.services import dispatch, engine_calls

COMMAND_TASK = Tasks.ENGINE_COMMAND
#: Cached engine answers a write may change.
_LISTS = ("chats", "groups", "contacts")


def read(session: Session, method: str, args: list[Any]) -> Any:
    return engine_calls.call(session, method, args)


def command(session: Session, method: str, args: list[Any]) -> Any:
    """Run one write on the session's engine and wait for its answer (504 past
    ENGINE_CALL_TIMEOUT; the command still runs in its turn)."""
    if session.status != SessionStatus.READY:
        raise SessionNotReady(f"Session '{session.name}' is not ready (status {session.status})")
    try:
        return dispatch.call(COMMAND_TASK, [session.id, method, args], session.queue,
                             settings().engine_call_timeout)
    finally:
        for name in _LISTS:
            cache.delete(f"engine:{session.id}:{name}:")


def chat_allowed(key: ApiKey, chat_id: str) -> bool:
    """Whether a key with ``allowedChats`` may touch this chat (a key without it may)."""
    allowed = getattr(key, "allowed_chats", None)
    return not allowed or chat_id in allowed


def filter_chats(key: ApiKey, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A list answer cut to the chats the key may see."""
    allowed = getattr(key, "allowed_chats", None)
    if not allowed:
        return items
    return [item for item in items if item.get("id") in allowed]
