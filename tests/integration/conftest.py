"""Real processes for integration tests: session hosts, workers and beat as subprocesses
of `python -m app <role>`, on the real Redis and the test database; the API in-process."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.extensions import db
from app.models import Host, Session
from tests.conftest import auth
from tests.databases import env_for

ROOT = Path(__file__).resolve().parents[2]


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05,
             message: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {message}")


def print_logs_if_failed(request: pytest.FixtureRequest, procs: list[Proc], tail: int = 4000) -> None:
    """After a failed test, the end of each process's log: why it failed is usually there."""
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        for proc in procs:
            print(f"----- {proc.role} ({proc.log_path.name}) -----\n{proc.output()[-tail:]}")


class Proc:
    """A platform process with its output in a log file (shown when a test fails)."""

    def __init__(self, role: str, env: dict[str, str], log_path: Path) -> None:
        self.role, self.log_path = role, log_path
        self.log = open(log_path, "ab")
        self.process = subprocess.Popen([sys.executable, "-m", "app", role], env=env, cwd=ROOT,
                                        stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.alive():
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        return self.process.returncode

    def kill(self) -> None:
        """kill -9 of the whole process group (the worker and anything it spawned)."""
        if self.alive():
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


class SessionFlows:
    """Session steps every platform flavour shares; each says how it speaks to the API."""

    def request(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        """(status code, JSON body) of one API call; ``path`` is below /api."""
        raise NotImplementedError

    def wait_status(self, sid: str, status: str, timeout: float = 30) -> dict[str, Any]:
        def check() -> Any:
            body = self.request("GET", f"/sessions/{sid}")[1]
            return body if body["status"] == status else None

        return wait_for(check, timeout, 0.05, f"session {sid} to be {status}")  # type: ignore[no-any-return]

    def create_ready_session(self, name: str) -> dict[str, Any]:
        assert self.request("POST", "/sessions", json={"name": name})[0] == 201
        assert self.request("POST", f"/sessions/{name}/start")[0] == 200
        self.wait_status(name, "qr_ready")
        assert self.request("POST", f"/sessions/{name}/mock/scan")[0] == 200
        return self.wait_status(name, "ready")


class Platform(SessionFlows):
    """The API (a Flask test client) plus real Celery processes sharing its database."""

    def __init__(self, app: Flask, client: FlaskClient, key: str, env: dict[str, str],
                 tmp_path: Path) -> None:
        self.app, self.client, self.key, self.env, self.tmp_path = app, client, key, env, tmp_path
        self.procs: list[Proc] = []
        self._n = 0

    def start(self, role: str, **env: str) -> Proc:
        self._n += 1
        proc = Proc(role, {**self.env, **env}, self.tmp_path / f"{role}-{self._n}.log")
        self.procs.append(proc)
        return proc

    def start_host(self, name: str = "host1@test", wait: bool = True, **env: str) -> Proc:
        proc = self.start("host", SESSION_HOST_NAME=name, **env)
        if wait:
            wait_for(lambda: self.host_live(name) or not proc.alive(), 30, 0.1, f"host {name}")
            assert proc.alive(), proc.output()[-3000:]
        return proc

    def host_live(self, name: str) -> bool:
        with self.app.app_context():
            return db.session.get(Host, name) is not None

    # -- API helpers -------------------------------------------------------
    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {**auth(self.key), **kwargs.pop("headers", {})}
        return self.client.open(f"/api{path}", method=method, headers=headers, **kwargs)

    def session_row(self, sid: str) -> Session:
        with self.app.app_context():
            session = db.session.scalar(select(Session).where(
                (Session.id == sid) | (Session.name == sid)))
            assert session is not None
            db.session.expunge(session)
            return session

    def request(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        reply = self.api(method, path, **kwargs)
        return reply.status_code, reply.get_json()

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()


@pytest.fixture
def platform_env(config: Any, backend: tuple[str, str], tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("CI", None)
    env.update(env_for(*backend))
    env.update({
        "REDIS_URL": config.redis_url,
        "DATA_PATH": str(config.data_dir),
        "SESSION_DATA_PATH": str(config.session_data_path),
        "STORAGE_LOCAL_PATH": str(config.storage_local_path),  # media the API stored
        "LOG_FORMAT": "text",
        "LOG_LEVEL": "info",
        "MOCK_AUTO_SCAN_SECONDS": "0",
        "MOCK_ACK_INTERVAL_SECONDS": "0.2",
        "HOST_POLL_INTERVAL": "0.05",
        "SESSION_LEASE_TTL": "6",
        "SESSION_PROBE_INTERVAL": "1",
        "PYTHONUNBUFFERED": "1",
    })
    return env


@pytest.fixture
def platform(app: Flask, client: FlaskClient, admin_key: str, platform_env: dict[str, str],
             tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Platform]:
    app.config["OPENWA"].send_wait_timeout = 10.0
    app.config["OPENWA"].engine_call_timeout = 10.0
    app.config["OPENWA"].session_lease_ttl = 6
    plat = Platform(app, client, admin_key, platform_env, tmp_path)
    yield plat
    plat.stop_all()
    print_logs_if_failed(request, plat.procs)
