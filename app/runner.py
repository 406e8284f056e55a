"""Starting the platform's processes: one role each, or all of them (`openwa run`)."""
from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests
from flask import Flask
from flask_migrate import upgrade
from prometheus_client.multiprocess import mark_process_dead

from app import logs
from app.config import Config
from app.embedded_redis import start as start_redis
from app.resilience import drain_flag
from app.services import hosts
from app.services.api_keys import bootstrap_admin, key_file

log = logging.getLogger(__name__)

WORKER_QUEUES = "default,webhooks,media,backups"
ROLES = ("api", "host", "worker", "beat", "flower")


def host_node_name(config: Config) -> str:
    return config.host_name or f"host@{socket.gethostname()}"


# -- single roles ------------------------------------------------------------
def run_api(flask_app: Flask) -> None:
    """gunicorn with threaded workers: a send waits up to SEND_WAIT_TIMEOUT in a thread."""
    from gunicorn.app.base import BaseApplication
    from gunicorn.arbiter import Arbiter

    config: Config = flask_app.config["OPENWA"]
    config.data_dir.mkdir(parents=True, exist_ok=True)
    logs.set_role("api")

    class DrainingArbiter(Arbiter):  # type: ignore[misc]
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

    class _Gunicorn(BaseApplication):  # type: ignore[misc]
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
            options["post_fork"] = lambda server, worker: _forget_inherited_connections(flask_app)
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


def _forget_inherited_connections(flask_app: Flask) -> None:
    from app.extensions import db

    with flask_app.app_context():
        db.engine.dispose(close=False)


def _celery_argv(config: Config, *args: str) -> list[str]:
    return [*args, "--loglevel", config.log_level.upper()]


def run_host(flask_app: Flask) -> None:
    from tasks import celery
    from tasks.base import set_flask_app
    from tasks.telemetry import start_exporter

    config: Config = flask_app.config["OPENWA"]
    logs.set_role("host")
    set_flask_app(flask_app)
    start_exporter(9810 if config.metrics_port is None else config.metrics_port,
                   config.metrics_address)
    name = host_node_name(config)
    celery.worker_main(_celery_argv(
        config, "worker", "--session-host", "--pool", "solo", "--concurrency", "1",
        "--hostname", name, "--queues", f"host.{name}", "--without-mingle"))


def run_worker(flask_app: Flask) -> None:
    from tasks import celery
    from tasks.base import set_flask_app
    from tasks.telemetry import start_exporter

    config: Config = flask_app.config["OPENWA"]
    logs.set_role("worker")
    set_flask_app(flask_app)
    start_exporter(9811 if config.metrics_port is None else config.metrics_port,
                   config.metrics_address)
    celery.worker_main(_celery_argv(
        config, "worker", "--pool", "threads", "--concurrency", str(config.worker_concurrency),
        "--hostname", f"worker@{socket.gethostname()}", "--queues", WORKER_QUEUES,
        "--without-mingle"))


def run_beat(flask_app: Flask) -> None:
    from tasks import celery

    config: Config = flask_app.config["OPENWA"]
    logs.set_role("beat")
    config.data_dir.mkdir(parents=True, exist_ok=True)
    celery.start(_celery_argv(config, "beat", "--schedule",
                              str(config.data_dir / "celerybeat-schedule")))


def run_flower(flask_app: Flask) -> None:
    from tasks import celery

    config: Config = flask_app.config["OPENWA"]
    logs.set_role("flower")
    argv = ["flower", f"--port={config.flower_port}", f"--address={config.flower_address}"]
    if config.flower_basic_auth:
        argv.append(f"--basic_auth={config.flower_basic_auth}")
    elif config.flower_address not in ("127.0.0.1", "localhost", "::1"):
        log.warning("Flower listens on %s without FLOWER_BASIC_AUTH", config.flower_address)
    celery.start(argv)


# -- everything ----------------------------------------------------------------
class Platform:
    """`openwa run`: every process on one machine, stopped together and in order."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.redis: subprocess.Popen[bytes] | None = None
        self.stopping = False

    def _spawn(self, role: str, env: dict[str, str]) -> None:
        process = subprocess.Popen([sys.executable, "-m", "app", role], env=env,
                                   start_new_session=True)
        self.children.append((role, process))

    def _wait_ready(self, url: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.stopping:
            if any(p.poll() is not None for _, p in self.children):
                return False
            try:
                if requests.get(url, timeout=1).status_code == 200:
                    return True
            except requests.RequestException:
                pass
            time.sleep(0.2)
        return False

    def _wait_host(self, flask_app: Flask, timeout: float) -> bool:
        """Ready means a session can start now: the session host has reported in."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.stopping:
            with flask_app.app_context():
                if hosts.live_hosts(self.config):
                    return True
            time.sleep(0.2)
        return False

    def run(self, flask_app: Flask) -> int:
        started = time.monotonic()
        env = dict(os.environ)
        if not self.config.redis_url:
            self.redis, url = start_redis(self.config.data_dir)
            env["REDIS_URL"] = url
            print(f"embedded Redis: {url} (data in {self.config.data_dir / 'redis'})", flush=True)
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        with flask_app.app_context():
            upgrade()
            bootstrap_admin(self.config)
        for role in ROLES:
            self._spawn(role, env)
        base = f"http://127.0.0.1:{self.config.port}"
        if not (self._wait_ready(f"{base}{self.config.api_prefix}/health/ready", 120)
                and self._wait_host(flask_app, 120)):
            print("OpenWA did not become ready; stopping", file=sys.stderr, flush=True)
            return self.stop(1)
        key_path: Path = key_file(self.config)
        key = ("(the value of API_KEY_MASTER)" if self.config.api_key_master
               else key_path.read_text().strip() if key_path.exists()
               else f"(not found: {key_path} is missing; create one with `openwa keys create`)")
        print(f"\nOpenWA is ready in {time.monotonic() - started:.1f} s\n"
              f"  Dashboard: {base}/\n"
              f"  API:      {base}{self.config.api_prefix}\n"
              f"  Docs:     {base}{self.config.api_prefix}/docs\n"
              f"  Flower:   http://{self.config.flower_address}:{self.config.flower_port}\n"
              f"  API key:  {key}\n"
              f"Press Ctrl-C to stop.", flush=True)
        while not self.stopping:
            for role, process in self.children:
                if process.poll() is not None:
                    print(f"{role} exited with {process.returncode}; stopping", file=sys.stderr,
                          flush=True)
                    return self.stop(1)
            time.sleep(0.5)
        return self.stop(0)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.stopping = True

    def stop(self, code: int) -> int:
        """SIGTERM in reverse start order, SIGKILL what is still alive after 30 s."""
        self.stopping = True
        for _, process in reversed(self.children):
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + 30
        for _, process in reversed(self.children):
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self.redis is not None:
            self.redis.terminate()
            try:
                self.redis.wait(10)
            except subprocess.TimeoutExpired:
                self.redis.kill()
        print("OpenWA stopped", flush=True)
        return code
