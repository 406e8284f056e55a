"""One process per role: `openwa api|host|worker|beat|flower`.

These launchers sit above ``tasks`` in the import graph (engines <- app <- tasks <- launch):
they import the Celery app and its task modules directly. Nothing else under ``app/``
imports ``tasks`` (tests/test_import_graph.py).
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import time

from flask import Flask
from prometheus_client.multiprocess import mark_process_dead

from app import flower_auth, logs
from app.common.names import DECLARED_QUEUES, host_queue
from app.config import Config, ConfigError, settings
from app.launch.guard import FOLDER_LOCK, InstanceLock, set_parent_death_signal
from app.resilience import drain_flag
from tasks import celery
from tasks.base import set_flask_app
from tasks.telemetry import start_exporter

log = logging.getLogger(__name__)

WORKER_QUEUES = ",".join(DECLARED_QUEUES)
ROLES = ("api", "host", "worker", "beat", "flower")


def host_node_name(config: Config) -> str:
    """The session host's Celery node name, ``name@host``.

    Celery turns a bare ``hostA`` into ``celery@hostA`` while the API would send that host's
    start tasks to ``host.hostA``: a name without ``@`` is completed as ``host@hostA`` (see
    :func:`host_name_note`), a malformed one refused.
    """
    name = (config.host_name or "").strip()
    if not name:
        return f"host@{socket.gethostname()}"
    if any(char.isspace() for char in name) or name.count("@") > 1 or \
            name.startswith("@") or name.endswith("@"):
        raise ConfigError(f"SESSION_HOST_NAME={name!r} is not a node name: use name@host "
                          f"(one '@', no spaces), e.g. host@{socket.gethostname()}")
    return name if "@" in name else f"host@{name}"


def host_name_note(config: Config) -> str | None:
    """The one line to print when SESSION_HOST_NAME was completed, else None."""
    name = (config.host_name or "").strip()
    if name and "@" not in name:
        return (f"SESSION_HOST_NAME={name} has no '@': the session host runs as "
                f"{host_node_name(config)} (set it to name@host to choose both parts)")
    return None


# -- single roles ------------------------------------------------------------
def run_api(flask_app: Flask) -> None:
    """gunicorn with threaded workers: a send waits up to SEND_WAIT_TIMEOUT in a thread."""
    from gunicorn.app.base import BaseApplication
    from gunicorn.arbiter import Arbiter

    config = settings(flask_app)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    logs.set_role("api")

    class DrainingArbiter(Arbiter):
        """SIGTERM: readiness answers 503 for API_DRAIN_SECONDS (so load balancers stop
        sending), then gunicorn's graceful stop finishes the requests in flight."""

        drain_until: float | None = None

        def handle_term(self) -> None:
            if self.drain_until is not None or config.api_drain_seconds <= 0:
                raise StopIteration
            drain_flag(config.data_dir, os.getpid()).touch()
            self.drain_until = time.monotonic() + config.api_drain_seconds
            self.log.info("draining for %.1f s before stopping", config.api_drain_seconds)

        def manage_workers(self) -> None:
            if self.drain_until is not None and time.monotonic() >= self.drain_until:
                raise StopIteration
            super().manage_workers()

        def halt(self, reason: str | None = None, exit_status: int = 0) -> None:
            drain_flag(config.data_dir, os.getpid()).unlink(missing_ok=True)
            super().halt(reason=reason, exit_status=exit_status)

    class _Gunicorn(BaseApplication):
        def load_config(self) -> None:
            options = {
                "bind": f"{config.bind_address}:{config.port}",
                "workers": config.api_workers,
                "threads": config.api_threads,
                "worker_class": "gthread",
                "timeout": int(max(60, config.send_wait_timeout * 3)),
                "graceful_timeout": 30,
                "accesslog": None,
                "proc_name": "openwa-api",
                "control_socket_disable": True,
            }
            # Connections the master opened (migrations, key bootstrap) must not be shared
            # with the forked workers: two processes on one socket corrupt each other's
            # transactions ("can't change 'autocommit' now ... INTRANS" under load).
            options["post_fork"] = lambda server, worker: _worker_started(flask_app)
            if config.prometheus_multiproc_dir:
                # A dead worker's live gauges must not count any more.
                options["child_exit"] = lambda server, worker: mark_process_dead(worker.pid)
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Flask:
            return flask_app

        def run(self) -> None:
            DrainingArbiter(self).run()

    _Gunicorn().run()


def _worker_started(flask_app: Flask) -> None:
    """In each gunicorn worker, right after the fork."""
    # A worker leaves with its master: after a `kill -9` of the master an orphaned worker
    # would hold the port (and finish its graceful timeout) while a restarted API fails to
    # bind. The master stops its workers itself on every other path.
    set_parent_death_signal(signal.SIGKILL)
    _forget_inherited_connections(flask_app)


def _forget_inherited_connections(flask_app: Flask) -> None:
    from app.extensions import db

    with flask_app.app_context():
        db.engine.dispose(close=False)


# Workers and hosts run without gossip: nothing here uses it (a host's liveness is its
# heartbeat in the database), and Celery's Gossip step logs a false ERROR with a traceback
# ("Error on restarting Gossip") every time the broker connection is lost.
def _celery_argv(config: Config, *args: str) -> list[str]:
    return [*args, "--loglevel", config.log_level.upper()]


def run_host(flask_app: Flask) -> None:
    config = settings(flask_app)
    logs.set_role("host")
    name = host_node_name(config)
    if note := host_name_note(config):
        print(f"openwa: {note}", file=sys.stderr, flush=True)
    set_flask_app(flask_app)
    start_exporter(9810 if config.metrics_port is None else config.metrics_port,
                   config.metrics_address)
    celery.worker_main(_celery_argv(
        config, "worker", "--session-host", "--pool", "solo", "--concurrency", "1",
        "--hostname", name, "--queues", host_queue(name), "--without-mingle",
        "--without-gossip"))


def run_worker(flask_app: Flask) -> None:
    config = settings(flask_app)
    logs.set_role("worker")
    set_flask_app(flask_app)
    start_exporter(9811 if config.metrics_port is None else config.metrics_port,
                   config.metrics_address)
    celery.worker_main(_celery_argv(
        config, "worker", "--pool", "threads", "--concurrency", str(config.worker_concurrency),
        "--hostname", f"worker@{socket.gethostname()}", "--queues", WORKER_QUEUES,
        "--without-mingle", "--without-gossip"))


def beat_lock(config: Config, inherited_fd: int | None = None) -> InstanceLock:
    """One beat per data folder (two would send every periodic task twice): the folder's
    lock, taken here or passed down by `openwa run`, which holds the same one."""
    path = config.data_dir / FOLDER_LOCK
    if inherited_fd is not None:
        return InstanceLock.inherit(path, inherited_fd)
    return InstanceLock.acquire(path, what="openwa beat")


def run_beat(flask_app: Flask, lock_fd: int | None = None) -> None:
    config = settings(flask_app)
    logs.set_role("beat")
    config.data_dir.mkdir(parents=True, exist_ok=True)
    lock = beat_lock(config, lock_fd)
    try:
        _run_beat(config)
    finally:
        lock.release()


def _run_beat(config: Config) -> None:
    celery.start(_celery_argv(config, "beat", "--schedule",
                              str(config.data_dir / "celerybeat-schedule")))


def run_flower(flask_app: Flask) -> None:
    config = settings(flask_app)
    logs.set_role("flower")
    argv = ["flower", f"--port={config.flower_port}", f"--address={config.flower_address}"]
    if config.flower_basic_auth:
        argv.append(f"--basic_auth={config.flower_basic_auth}")
    elif config.flower_address not in ("127.0.0.1", "localhost", "::1"):
        log.warning("Flower listens on %s without FLOWER_BASIC_AUTH", config.flower_address)
    argv = flower_auth.secure_argv(config, argv)  # every page behind the login
    celery.start(argv)
