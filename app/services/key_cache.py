"""API keys cached in each API process (scale, issue 18), invalidated through Redis.

Every request authenticates its key. Without this cache that is a database look-up per
request (in `make bench-profile` about an eighth of the API's CPU per send). With it, a
request costs one Redis ``GET`` of the *auth generation* instead, and the database is read
only when the key is not cached, the generation changed, or the entry is older than
``AUTH_CACHE_SECONDS``.

What is cached: the columns of a key that was *accepted* at the time (active, not expired),
keyed by the hash of the presented secret. A missing, revoked or expired key is never
cached: each such request reads the database. Per request, from the cached columns, the
expiry is checked against the clock, ``allowedIps`` against the request's address, the
session scope and the role as before, and the usage meter counts the request.

Invalidation: any commit that adds, changes or deletes an ``ApiKey`` through the ORM (the
API's create/update/revoke/rotate/delete, the CLI) writes a fresh random token under
``GENERATION_KEY`` after the commit; a restore of a backup does too. Every request reads
that token first and empties the process's cache when it differs from the one the cache
was filled under, so a change made through any API process (or the CLI) holds in every
other one from the first request that starts after the change's commit returned. A token,
not a counter: a Redis that restarted empty cannot bring an old value back.

The bound when that signal is lost: while Redis does not answer, the cache is not used
(every request reads the database). If the token could not be written (Redis failed
exactly then) or a key row was changed by hand in the database, a cached key keeps its old
rights for at most ``AUTH_CACHE_SECONDS`` (10 s; 0 turns the cache off).
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any, Generic, TypeVar

from flask import g, has_request_context
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session as OrmSession

from app.extensions import celery_app
from app.models import ApiKey

log = logging.getLogger(__name__)

GENERATION_KEY = "openwa:auth:generation"
#: The sessions' generation (app/services/session_cache.py): read in the same round trip.
SESSIONS_GENERATION_KEY = "openwa:sessions:generation"
_GENERATIONS = (GENERATION_KEY, SESSIONS_GENERATION_KEY)
#: Execution option of a statement on sessions that changes nothing the session cache keeps
#: (a lease, ``last_active``): it does not move the sessions generation on.
SESSIONS_KEEP = "openwa_session_cache_keep"
_MEMO = "openwa_generations"
#: Where an app keeps its KeyCache (app.extensions).
EXTENSION = "openwa_key_cache"
#: Entries kept at most (valid keys only, so a flood of wrong keys cannot fill it).
MAX_ENTRIES = 10_000
#: The ApiKey columns a cached entry carries (everything but the secret's hash and the
#: usage counters, which the meter writes and nothing at request time reads).
COLUMNS = ("id", "name", "key_prefix", "role", "allowed_sessions", "allowed_ips", "is_active",
           "expires_at", "allowed_chats", "created_at", "updated_at")

_CHANGED = "openwa_api_keys_changed"
M = TypeVar("M")
_UNREACHABLE = object()


def _client() -> Any:
    return celery_app.backend.client


def generation(name: str = GENERATION_KEY) -> Any:
    """The current generation ``name`` (bytes or None), or ``_UNREACHABLE`` when Redis does
    not answer: then the caller must not use the cache. Inside a request every generation is
    read once, together (one ``MGET``): the key and the session look-ups of a send share it."""
    memo = g.get(_MEMO) if has_request_context() else None
    if memo is None:
        try:
            memo = dict(zip(_GENERATIONS, _client().mget(_GENERATIONS)))
        except Exception as error:  # noqa: BLE001 - any broker failure means: read the database
            log.debug("cache generations unreadable (%s): look-ups go to the database",
                      type(error).__name__)
            memo = dict.fromkeys(_GENERATIONS, _UNREACHABLE)
        if has_request_context():
            setattr(g, _MEMO, memo)
    return memo[name]


def bump(name: str = GENERATION_KEY) -> None:
    """Tell every API process that keys (or, with ``name``, sessions) changed: their caches
    empty on their next request."""
    try:
        _client().set(name, uuid.uuid4().hex)
    except Exception as error:  # noqa: BLE001
        log.warning("could not announce a change through Redis (%s, %s): other API processes "
                    "may use their cached copy for up to their cache's seconds",
                    name, type(error).__name__)


class GenerationCache(Generic[M]):
    """One API process's (one app's) copies of some rows of ``model``: the ``columns`` of
    each, by a key, kept while the generation they were read under holds and for at most
    ``ttl`` seconds; handed out as a fresh transient object per request."""

    def __init__(self, ttl: float, model: type[M], columns: tuple[str, ...]) -> None:
        self.ttl = ttl
        self.model, self.columns = model, columns
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, dict[str, Any]]] = {}
        self._generation: Any = _UNREACHABLE

    def get(self, key: str, current: Any) -> M | None:
        """A fresh copy of the cached row, if it was cached under generation ``current``
        and less than ``ttl`` ago."""
        if current is _UNREACHABLE or self.ttl <= 0:
            return None
        with self._lock:
            if current != self._generation:
                self._entries.clear()
                self._generation = current
                return None
            entry = self._entries.get(key)
        if entry is None or time.monotonic() - entry[0] >= self.ttl:
            return None
        # A transient object per request: never shared between threads or sessions.
        return self.model(**entry[1])

    def put(self, key: str, row: M, read_under: Any) -> None:
        """Remember a row, read from the database after generation ``read_under`` was read
        (so a change committed in between has moved the generation on)."""
        if read_under is _UNREACHABLE or self.ttl <= 0:
            return
        columns = {name: getattr(row, name) for name in self.columns}
        with self._lock:
            if read_under != self._generation:
                self._entries.clear()
                self._generation = read_under
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[key] = (time.monotonic(), columns)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class KeyCache(GenerationCache[ApiKey]):
    """One API process's (one app's) accepted keys, by the hash of their secret."""

    def __init__(self, ttl: float) -> None:
        super().__init__(ttl, ApiKey, COLUMNS)


# -- invalidation: a commit that touched an ApiKey row moves the generation on ----------------
def _note_changes(session: OrmSession, _context: Any, _instances: Any) -> None:
    if any(isinstance(obj, ApiKey) for obj in (*session.new, *session.dirty, *session.deleted)):
        session.info[_CHANGED] = True


def _after_commit(session: OrmSession) -> None:
    if session.info.pop(_CHANGED, False):
        bump()


def _after_rollback(session: OrmSession) -> None:
    session.info.pop(_CHANGED, None)


def install() -> None:
    """Listen for key changes on every ORM session. Called by the app factory (and by
    anything that changes keys without it), once per process."""
    for name, listener in (("before_flush", _note_changes), ("after_commit", _after_commit),
                           ("after_rollback", _after_rollback)):
        if not sa_event.contains(OrmSession, name, listener):
            sa_event.listen(OrmSession, name, listener)
