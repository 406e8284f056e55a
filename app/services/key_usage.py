"""How much each API key is used (``usageCount`` / ``lastUsedAt``), counted in memory and
written in batches; :func:`install` (called by the app factory) flushes what is left when
the process exits and forgets a parent's pending counts in a forked child."""
from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from datetime import datetime

from flask import Flask, current_app
from sqlalchemy import case, or_, update
from sqlalchemy.exc import SQLAlchemyError

from app.extensions import current_flask_app, db
from app.models import ApiKey

log = logging.getLogger(__name__)


class UsageMeter:
    """``usageCount`` / ``lastUsedAt`` of the keys one process has authenticated, written
    at most once per ``FLUSH_SECONDS`` in one small transaction instead of one write and
    commit per request (every request of a key updated the same row: at 8 concurrent
    clients that row was a queue of its own). Reads of the keys flush first, so a key's
    own process always sees exact figures; others see them at most FLUSH_SECONDS late.
    """

    FLUSH_SECONDS = 1.0

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.pending: dict[str, tuple[int, datetime]] = {}
        self.timer: threading.Timer | None = None

    def note(self, key_id: str, when: datetime, count: int = 1) -> None:
        timer = None
        with self.lock:
            pending, last = self.pending.get(key_id, (0, when))
            self.pending[key_id] = (pending + count, max(last, when))
            if self.timer is None:
                timer = self.timer = threading.Timer(self.FLUSH_SECONDS, self._flush_later)
                timer.daemon = True
        # Started outside the lock: a thread's start waits for the new thread to run, which
        # under a busy GIL took long enough to queue every other request thread on the lock.
        if timer is not None:
            timer.start()

    def _flush_later(self) -> None:
        with self.lock:
            self.timer = None
        with self.app.app_context():
            try:
                self.flush()
            finally:
                db.session.remove()

    def flush(self, final: bool = False) -> None:
        """Write what is pending (in the caller's app context; commits its session).
        ``final``: the process is exiting; a failure is not retried."""
        with self.lock:
            batch, self.pending = self.pending, {}
        if not batch:
            return
        try:
            for key_id, (count, last) in batch.items():
                newer = or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < last)
                db.session.execute(
                    update(ApiKey).where(ApiKey.id == key_id)
                    .values(usage_count=ApiKey.usage_count + count,
                            last_used_at=case((newer, last), else_=ApiKey.last_used_at))
                    .execution_options(synchronize_session=False))
            db.session.commit()
        except SQLAlchemyError as error:
            db.session.rollback()
            if final:
                return
            log.warning("could not record API key usage (kept for the next try): %s",
                        type(error).__name__)
            for key_id, (count, last) in batch.items():
                self.note(key_id, last, count)

    def reset_after_fork(self) -> None:
        self.lock = threading.Lock()
        self.pending, self.timer = {}, None


_METERS: weakref.WeakSet[UsageMeter] = weakref.WeakSet()
_METERS_LOCK = threading.Lock()


def meter() -> UsageMeter:
    """The current app's meter (one per app, made on first use)."""
    app = current_flask_app()
    with _METERS_LOCK:  # one per app, also when its first requests arrive together
        meter: UsageMeter | None = app.extensions.get("openwa_key_usage")
        if meter is None:
            meter = app.extensions["openwa_key_usage"] = UsageMeter(app)
            _METERS.add(meter)
    return meter


def flush_usage() -> None:
    """Write this process's pending key usage now (before the keys are read)."""
    meter = current_app.extensions.get("openwa_key_usage")
    if meter is not None:
        meter.flush()


def _flush_at_exit() -> None:
    for meter in list(_METERS):
        try:
            with meter.app.app_context():
                meter.flush(final=True)
                db.session.remove()
        except Exception:  # noqa: BLE001 - exiting; the database may be gone
            pass


def _reset_meters_after_fork() -> None:
    for meter in list(_METERS):
        meter.reset_after_fork()


_installed = False


def install() -> None:
    """Once per process: flush the meters at exit, and reset them in a forked child."""
    global _installed
    with _METERS_LOCK:
        if _installed:
            return
        _installed = True
    atexit.register(_flush_at_exit)
    os.register_at_fork(after_in_child=_reset_meters_after_fork)
