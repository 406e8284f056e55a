"""The session a send names, cached in each API process (scale, issue 18), invalidated
through Redis as API keys are (app/services/key_cache.py).

Every send resolves its session (by id or name) and checks that it is ``ready``: without
this cache a database look-up per send (at one client about a twelfth of a send's time).
With it, the send routes (and only they: views that change a session read it from the
database as before) read the session's identity and status from the process's copy while
the *sessions generation* holds; that generation is read in the same Redis ``MGET`` as the
auth generation, so a cached send costs no round trip more than a key look-up does.

What is cached: ``COLUMNS`` of a session that exists, keyed by the id or name the request
used; a missing session is never cached.

Invalidation: a commit whose transaction changed a session row through the ORM session (an
ORM ``UPDATE``/``DELETE`` statement on ``Session``, or a flush of a ``Session`` object) writes
a fresh token under ``SESSIONS_GENERATION_KEY`` after the commit, from whichever process made
it: the API (create, start, stop, delete, rename), a session host (every status change:
``events.set_status`` and its kin, a logout clearing the phone) or a worker. Statements that
change nothing cached are marked ``KEEP`` and do not: a host's lease claims, renewals and
releases and its touch of ``last_active``, which run every few seconds. An unmarked statement
always announces a change, so a new one errs on the side of a fresh read.

The bound when that signal is lost (Redis failed exactly at the announcement, or a row was
changed by hand): a cached session keeps its old status for at most
``SESSION_CACHE_SECONDS`` (10 s; 0 turns the cache off). While Redis does not answer the
cache is not used. A send accepted on such a stale ``ready`` is committed and queued as any
send to a session that stops right after it was accepted: it goes out when the session runs
again (or answers 202 pending until then).
"""
from __future__ import annotations

from typing import Any

from flask import current_app
from sqlalchemy import event as sa_event
from sqlalchemy.orm import ORMExecuteState
from sqlalchemy.orm import Session as OrmSession

from app.models import Session
from app.services import key_cache
from app.services import sessions as session_service

#: Where an app keeps its SessionCache (app.extensions).
EXTENSION = "openwa_session_cache"
#: What a send reads of its session.
COLUMNS = ("id", "name", "status", "desired_state", "phone", "push_name")
#: Execution option of a statement on sessions that changes none of ``COLUMNS``.
KEEP = key_cache.SESSIONS_KEEP

_CHANGED = "openwa_sessions_changed"


class SessionCache(key_cache.GenerationCache[Session]):
    """One API process's (one app's) sessions, by the id or name a request named."""

    def __init__(self, ttl: float) -> None:
        super().__init__(ttl, Session, COLUMNS)


def find(sid: str) -> Session | None:
    """The session ``sid`` names, from the process's cache while it holds (a transient copy:
    read it, never change or add it), else from the database."""
    cache: SessionCache | None = current_app.extensions.get(EXTENSION)
    if cache is None:
        return session_service.find(sid)
    read_under = key_cache.generation(key_cache.SESSIONS_GENERATION_KEY)
    session = cache.get(sid, read_under)
    if session is None:
        session = session_service.find(sid)
        if session is not None:
            cache.put(sid, session, read_under)
    return session


# -- invalidation: a commit that changed a session row moves the generation on ---------------
def _note_statement(state: ORMExecuteState) -> None:
    if ((state.is_update or state.is_delete) and not state.execution_options.get(KEEP)
            and any(mapper.class_ is Session for mapper in state.all_mappers)):
        state.session.info[_CHANGED] = True


def _note_flush(session: OrmSession, _context: Any, _instances: Any) -> None:
    if any(isinstance(obj, Session) for obj in (*session.dirty, *session.deleted)):
        session.info[_CHANGED] = True


def _after_commit(session: OrmSession) -> None:
    if session.info.pop(_CHANGED, False):
        key_cache.bump(key_cache.SESSIONS_GENERATION_KEY)


def _after_rollback(session: OrmSession) -> None:
    session.info.pop(_CHANGED, None)


def install() -> None:
    """Listen for session changes on every ORM session, in every process that changes them
    (the app factory calls it, once per process)."""
    for name, listener in (("do_orm_execute", _note_statement), ("before_flush", _note_flush),
                           ("after_commit", _after_commit), ("after_rollback", _after_rollback)):
        if not sa_event.contains(OrmSession, name, listener):
            sa_event.listen(OrmSession, name, listener)
