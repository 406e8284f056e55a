"""The whole platform as real processes (gunicorn API included), spoken to over HTTP."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import requests

from app.embedded_redis import free_port
from tests.integration.conftest import ROOT, Proc, SessionFlows, wait_for

MASTER_KEY = "owa_k1_" + "ab" * 32


class LivePlatform(SessionFlows):
    """Every role as a process; the API spoken to over HTTP like a real client."""

    def __init__(self, env: dict[str, str], tmp_path: Path) -> None:
        self.env, self.tmp_path = env, tmp_path
        self.procs: list[Proc] = []
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}/api"
        self.key = MASTER_KEY
        self.http = requests.Session()
        self.http.headers["X-API-Key"] = self.key
        self._n = 0

    def start(self, role: str, **env: str) -> Proc:
        self._n += 1
        proc = Proc(role, {**self.env, **env}, self.tmp_path / f"{role}-{self._n}.log")
        self.procs.append(proc)
        return proc

    def migrate(self) -> None:
        result = subprocess.run([sys.executable, "-m", "app", "db", "upgrade"],
                                env=self.env, cwd=ROOT, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-3000:]

    def start_api(self, **env: str) -> Proc:
        self.migrate()
        proc = self.start("api", PORT=str(self.port), **env)
        wait_for(lambda: self._up() or not proc.alive(), 60, 0.1, "the API")
        assert proc.alive(), proc.output()[-3000:]
        return proc

    def _up(self) -> bool:
        try:
            return requests.get(f"{self.base}/health/ready", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.http.request(method, f"{self.base}{path}", timeout=30, **kwargs)

    def status(self, sid: str) -> dict[str, Any]:
        return self.call("GET", f"/sessions/{sid}").json()  # type: ignore[no-any-return]

    def request(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        reply = self.call(method, path, **kwargs)
        return reply.status_code, reply.json()

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            if proc.alive():
                os.killpg(proc.pid, signal.SIGCONT)
            proc.stop(timeout=20)


def base_env(tmp_path: Path, redis_url: str, database: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "CI"))}
    env.update(database)
    env.update({
        "REDIS_URL": redis_url,
        "DATA_PATH": str(tmp_path / "data"),
        "SESSION_DATA_PATH": str(tmp_path / "sessions"),
        "STORAGE_LOCAL_PATH": str(tmp_path / "media"),  # never the checkout's ./media
        "API_KEY_MASTER": MASTER_KEY,
        "LOG_FORMAT": "text", "LOG_LEVEL": "info", "PYTHONUNBUFFERED": "1",
        "API_WORKERS": "1", "API_THREADS": "16",
        "MOCK_AUTO_SCAN_SECONDS": "0", "MOCK_ACK_INTERVAL_SECONDS": "0.2",
        "HOST_POLL_INTERVAL": "0.05", "SESSION_PROBE_INTERVAL": "1",
        "SEND_WAIT_TIMEOUT": "0.5", "ENGINE_CALL_TIMEOUT": "5",
        "BROKER_VISIBILITY_TIMEOUT": "10", "BROKER_RESTORE_INTERVAL": "1",
        "BROKER_RESTORE_THROTTLE": "1",
        "SEND_SWEEP_AFTER": "5", "SEND_SWEEP_INTERVAL": "2",
        "RATE_LIMIT_ENABLED": "false", "API_DRAIN_SECONDS": "0", "BIND_ADDRESS": "127.0.0.1",
    })
    return env
