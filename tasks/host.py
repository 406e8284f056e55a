"""The session host: a Celery worker (solo pool, concurrency 1) that owns engines.

A worker bootstep creates the runtime and closes every engine at shutdown; a consumer
bootstep binds the runtime to the consumer (to add and cancel ``session.<id>`` queues)
and runs a timer that, between tasks and in the same thread, drains engine events,
renews leases and reports the host's heartbeat.
"""
from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any

from celery import bootsteps
from click import Option
from sqlalchemy.exc import SQLAlchemyError

from app import logs
from app.common.names import session_queue
from app.config import Config, settings
from app.extensions import celery_app, db
from app.models import STOPPED, SessionStatus
from app.services import events as event_service
from app.services import hosts
from app.services import sessions as session_service
from app.services.events import set_status
from app.services.media import offload as media_offload
from app.version import VERSION
from engines import (
    Engine,
    EngineCrashed,
    EngineError,
    EngineEvent,
    EngineOptions,
    EngineState,
    EventKind,
    create_engine,
    get_engine_class,
)
from tasks.base import flask_app

log = logging.getLogger(__name__)

RECONNECT_CAP_SECONDS = 300.0


@dataclass
class Held:
    """An engine this host drives, under lease token ``token``."""

    engine: Engine
    token: int
    lease_until: float  # monotonic: past it, we may no longer drive this session
    reconnect_attempts: int = 0
    next_reconnect: float = 0.0
    # Events polled from the engine but not yet applied (the database failed): next tick.
    backlog: list[EngineEvent] = field(default_factory=list)
    # Every send of this session below this sequence number is settled (see the send task).
    settled_seq: int = 0


# While engines keep reporting events, the host polls them again this soon.
BUSY_POLL_SECONDS = 0.025


def _awaited(events: list[EngineEvent]) -> int:
    return sum(1 for event in events if event.kind is not EventKind.ACK)


class HostRuntime:
    """Everything a session host holds. One per process; used from one thread."""

    def __init__(self, name: str, config: Config) -> None:
        self.name = name
        self.config = config
        self.capacity = config.sessions_per_host
        self.held: dict[str, Held] = {}
        self.consumer: Any = None
        self.next_heartbeat = 0.0
        self.next_tick = 0.0
        self.busy = False  # the last tick applied events someone waits on: look again soon
        self.booted = False

    # -- binding to the consumer -----------------------------------------------
    def attach(self, consumer: Any) -> None:
        """(Re)bind to the consumer: after a broker reconnect the queues are added again."""
        self.consumer = consumer
        with flask_app().app_context():
            self.heartbeat()
            if not self.booted:
                self.booted = True
                # Sessions this node held before a restart come back at once, from their
                # profiles; anything else that should run is handed out by the probe.
                for session_id in hosts.sessions_held_by(self.name)[: self.capacity]:
                    self.start_session(session_id)
            for session_id in self.held:
                self._consume(session_id)

    def _consume(self, session_id: str) -> None:
        if self.consumer is not None:
            self.consumer.add_task_queue(session_queue(session_id))

    def _stop_consuming(self, session_id: str) -> None:
        if self.consumer is not None:
            self.consumer.cancel_task_queue(session_queue(session_id))

    # -- sessions ------------------------------------------------------------
    def engine_options(self) -> EngineOptions:
        """The configured engine's options, as it names them (its settings' variables)."""
        options_class = get_engine_class(self.config.engine_type).options_class
        return options_class.from_settings(self.config.value_of)

    def _new_engine(self, session_id: str) -> Engine:
        profile = self.config.session_data_path / session_id
        profile.mkdir(parents=True, exist_ok=True)
        return create_engine(self.config.engine_type, session_id, profile, self.engine_options())

    def _lease_deadline(self) -> float:
        return time.monotonic() + self.config.session_lease_ttl

    def start_session(self, session_id: str) -> str:
        """Claim the lease and start the engine; answers what happened."""
        if session_id in self.held:
            return "already-held"
        if len(self.held) >= self.capacity:
            return "full"
        token = hosts.claim(session_id, self.name, self.config.session_lease_ttl)
        if token is None:
            return "not-claimed"
        held = Held(self._new_engine(session_id), token, self._lease_deadline())
        self.held[session_id] = held
        set_status(session_id, SessionStatus.INITIALIZING, last_error=None)
        try:
            held.engine.start()
        except EngineError as error:
            log.warning("engine of %s failed to start: %s", session_id, error)
            self._schedule_reconnect(session_id, str(error))
        self._consume(session_id)
        self.drain(session_id)
        log.info("session %s started on %s (token %s)", session_id, self.name, token)
        return "started"

    def stop_session(self, session_id: str, *, logout: bool = False,
                     status: str = SessionStatus.DISCONNECTED) -> None:
        held = self.held.pop(session_id, None)
        if held is None:
            return
        self._stop_consuming(session_id)
        try:
            if logout:
                held.engine.logout()
            else:
                held.engine.close()
        except EngineError as error:
            log.warning("engine of %s did not close cleanly: %s", session_id, error)
        hosts.release(session_id, self.name, held.token)
        set_status(session_id, status, qr_code=None)

    def drop(self, session_id: str, why: str) -> None:
        """Our lease is gone: stop driving at once, touch no rows."""
        held = self.held.pop(session_id, None)
        if held is None:
            return
        self._stop_consuming(session_id)
        close_quietly(held.engine)
        media_offload.forget(session_id)  # -- media (issue 12)
        log.warning("stopped driving %s: %s", session_id, why)

    # -- the timer -----------------------------------------------------------------
    def pulse(self) -> None:
        """Called every BUSY_POLL_SECONDS: a tick every HOST_POLL_INTERVAL while the engines
        are quiet, at once again while they keep reporting events (a burst of incoming
        messages is stored within tens of milliseconds, not a poll interval apart)."""
        now = time.monotonic()
        if self.busy or now >= self.next_tick:
            self.next_tick = now + self.config.host_poll_interval
            self.tick()

    def tick(self) -> None:
        """Between tasks: drain events, reconnect, renew leases. Never raises: a database
        or broker outage must not kill the host, only delay its bookkeeping."""
        now = time.monotonic()
        for session_id, held in list(self.held.items()):
            if now > held.lease_until:
                self.drop(session_id, "lease not renewed in time")
        self.busy = False
        with flask_app().app_context():
            try:
                for session_id in list(self.held):
                    logs.session_id.set(session_id)
                    self.busy |= self.drain(session_id) > 0
                    self._maybe_reconnect(session_id)
                logs.session_id.set(None)
                if time.monotonic() >= self.next_heartbeat:
                    self.heartbeat()
            except (SQLAlchemyError, OSError) as error:
                db.session.rollback()
                log.warning("host bookkeeping failed, retrying next tick: %s", type(error).__name__)

    def drain(self, session_id: str) -> int:
        """Poll the engine and apply what it reports. Returns how many of the events applied
        someone waits on: all but acks, which trail every send and can wait for the interval
        (counting them kept a sending host ticking every 25 ms in small transactions)."""
        held = self.held.get(session_id)
        if held is None:
            return 0
        applied = _awaited(held.backlog)
        if media_offload.waiting(session_id):  # -- media (issue 12): files being stored
            stored = media_offload.take(session_id)
            if stored is None:  # not polled again before its files are stored and applied;
                return applied + 1  # ticking at the busy pace meanwhile, to apply them soon
            held.backlog = stored + held.backlog
            applied = _awaited(held.backlog)
        if held.backlog:
            # What the database refused last time goes first, and nothing new is polled
            # before it is stored: an engine may forget what a poll returned once it is
            # polled again (the mock's inbox does), so a crash now must not lose it.
            self._apply(session_id, held, held.backlog)
        try:
            found = held.engine.poll()
        except EngineCrashed as error:
            log.warning("engine of %s crashed: %s", session_id, error)
            set_status(session_id, SessionStatus.DISCONNECTED, last_error=f"engine crashed: {error}")
            self._schedule_reconnect(session_id, "engine crashed", recreate=True)
            return applied
        found = media_offload.start(self.config, session_id, found)  # -- media (issue 12)
        self._apply(session_id, held, found)
        if held.engine.state is EngineState.LOGGED_OUT:
            self._unlinked(session_id)
        return applied + _awaited(found) + media_offload.waiting(session_id)

    @staticmethod
    def _apply(session_id: str, held: Held, events: list[EngineEvent]) -> None:
        """Apply ``events``; what a database outage left unapplied is kept for the next tick."""
        held.backlog = []
        try:
            event_service.apply_all(session_id, events)
        except event_service.EventsNotApplied as error:
            held.backlog = error.remaining
            raise error.__cause__ or error

    def _unlinked(self, session_id: str) -> None:
        """The phone removed the device (the engine has wiped the profile): stop the session
        until a user starts it again, which shows a new QR."""
        self._stop_for_good(session_id, SessionStatus.DISCONNECTED, "logged out from the phone")
        log.info("session %s was logged out from the phone; stopped", session_id)

    def _stop_for_good(self, session_id: str, status: str, reason: str) -> None:
        """Close the engine, hand back the lease, and mark the session stopped: nothing may
        start it again behind the user's back."""
        held = self.held.pop(session_id)
        self._stop_consuming(session_id)
        close_quietly(held.engine)
        hosts.release(session_id, self.name, held.token)
        set_status(session_id, status, desired_state=STOPPED, qr_code=None, last_error=reason)

    def heartbeat(self) -> None:
        renewed_until = self._lease_deadline()
        lost = hosts.renew({sid: h.token for sid, h in self.held.items()}, self.name,
                           self.config.session_lease_ttl)
        for session_id, held in list(self.held.items()):
            if session_id in lost:
                self.drop(session_id, "lease taken over or session stopped")
            else:
                held.lease_until = renewed_until
        hosts.heartbeat(self.name, self.capacity, len(self.held), VERSION)
        self.next_heartbeat = time.monotonic() + max(self.config.session_lease_ttl / 3.0, 1.0)

    # -- reconnects ------------------------------------------------------------------
    def _schedule_reconnect(self, session_id: str, reason: str, recreate: bool = False) -> None:
        held = self.held[session_id]
        held.reconnect_attempts += 1
        if held.reconnect_attempts > self.config.max_reconnect_attempts:
            self._give_up(session_id, reason)
            return
        if recreate:
            close_quietly(held.engine)
            held.engine = self._new_engine(session_id)
        # Exponential backoff with full jitter over the upper half, capped at 5 minutes.
        delay = min(RECONNECT_CAP_SECONDS, 2.0 ** held.reconnect_attempts)
        held.next_reconnect = time.monotonic() + delay * random.uniform(0.5, 1.0)
        log.info("session %s reconnects in %.1f s (attempt %d of %d): %s", session_id,
                 held.next_reconnect - time.monotonic(), held.reconnect_attempts,
                 self.config.max_reconnect_attempts, reason)

    def _give_up(self, session_id: str, reason: str) -> None:
        """Reconnection exhausted: `failed`, and never started again behind the user's back."""
        attempts = self.held[session_id].reconnect_attempts - 1
        self._stop_for_good(session_id, SessionStatus.FAILED,
                            f"reconnection failed after {attempts} attempts: {reason}")
        log.warning("session %s failed: %s", session_id, reason)

    def _maybe_reconnect(self, session_id: str) -> None:
        held = self.held.get(session_id)
        if held is None:
            return
        if held.next_reconnect == 0.0:
            if held.engine.state is EngineState.DISCONNECTED:
                self._schedule_reconnect(session_id, "connection dropped")
            return
        if time.monotonic() < held.next_reconnect:
            return
        try:
            held.engine.start()
        except EngineError as error:
            self._schedule_reconnect(session_id, str(error))
            return
        held.next_reconnect = 0.0
        held.reconnect_attempts = 0
        self.drain(session_id)

    def shutdown(self) -> None:
        """Close every engine and hand the sessions over at once (lease released)."""
        with flask_app().app_context():
            released = []
            for session_id in list(self.held):
                held = self.held.pop(session_id)
                close_quietly(held.engine)
                hosts.release(session_id, self.name, held.token)
                set_status(session_id, SessionStatus.DISCONNECTED, last_error="session host shut down")
                released.append(session_id)
            hosts.forget_host(self.name)
            if released:
                # Not after the lease TTL: other live hosts get them now.
                try:
                    handed = session_service.assign_orphans(self.config, only=released)
                    log.info("handed %d of %d sessions to other hosts", handed, len(released))
                except Exception as error:  # the probe will do it if the broker is down
                    log.warning("could not hand sessions over: %s", type(error).__name__)


def close_quietly(engine: Engine) -> None:
    """Close an engine that is being let go of; its failure to close changes nothing."""
    try:
        engine.close()
    except EngineError as error:
        log.debug("engine of %s did not close cleanly: %s", engine.session_id, error)


_runtime: HostRuntime | None = None


def runtime() -> HostRuntime:
    if _runtime is None:
        raise RuntimeError("this worker is not a session host")
    return _runtime


def ensure_runtime(name: str) -> HostRuntime:
    global _runtime
    if _runtime is None:
        _runtime = HostRuntime(name, settings(flask_app()))
    return _runtime


class HostStep(bootsteps.StartStopStep):
    """Worker-level: engines close, and leases are handed over, when the worker stops."""

    def __init__(self, worker: Any, session_host: bool = False, **kwargs: Any) -> None:
        self.enabled = session_host
        super().__init__(worker, **kwargs)

    def stop(self, worker: Any) -> None:
        if _runtime is not None:
            _runtime.shutdown()


class HostConsumerStep(bootsteps.StartStopStep):
    """Consumer-level: bind the runtime to the consumer and run the poll timer."""

    requires = {"celery.worker.consumer.tasks:Tasks"}

    def __init__(self, consumer: Any, session_host: bool = False, **kwargs: Any) -> None:
        self.enabled = session_host
        self.timer_ref: Any = None
        super().__init__(consumer, **kwargs)

    def start(self, consumer: Any) -> None:
        host = ensure_runtime(consumer.hostname)
        host.attach(consumer)
        self.timer_ref = consumer.timer.call_repeatedly(
            min(BUSY_POLL_SECONDS, host.config.host_poll_interval), host.pulse)

    def stop(self, consumer: Any) -> None:
        if self.timer_ref is not None:
            self.timer_ref.cancel()
            self.timer_ref = None


def install() -> None:
    """Teach the Celery worker the ``--session-host`` flag and our bootsteps."""
    celery_app.user_options["worker"].add(
        Option(["--session-host"], is_flag=True, default=False,
               help="Run as an OpenWA session host (solo pool, owns engines)."))
    celery_app.steps["worker"].add(HostStep)
    celery_app.steps["consumer"].add(HostConsumerStep)
