"""The platform as real processes (gunicorn API, session host, worker) for /events and the
dashboard, and a python-socketio client that speaks OpenWA's /events protocol."""
from __future__ import annotations

import queue
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib
import socketio

from tests.integration.conftest import print_logs_if_failed, wait_for
from tests.live import LivePlatform, base_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class EventsClient:
    """One /events connection; every frame it receives lands in ``frames``."""

    def __init__(self, base_url: str, key: str | None, headers: dict[str, str] | None = None) -> None:
        self.frames: queue.Queue[dict[str, Any]] = queue.Queue()
        self.sio = socketio.Client(reconnection=False)
        self.sio.on("message", self.frames.put, namespace="/events")
        self.sio.connect(base_url, namespaces=["/events"], transports=["websocket"],
                         auth={"apiKey": key} if key else None, headers=headers or {},
                         wait_timeout=10)
        self._n = 0

    def send(self, frame: dict[str, Any]) -> str:
        self._n += 1
        frame.setdefault("requestId", f"r{self._n}")
        self.sio.emit("message", frame, namespace="/events")
        return str(frame["requestId"])

    def reply(self, request_id: str, timeout: float = 10) -> dict[str, Any]:
        """The answer to one request (events arriving meanwhile are kept)."""
        return self.next(lambda f: f.get("requestId") == request_id, timeout)

    def next(self, match: Any, timeout: float = 15) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        kept: list[dict[str, Any]] = []
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no matching frame in {timeout} s; saw {kept}")
                try:
                    frame = self.frames.get(timeout=left)
                except queue.Empty:
                    continue
                if match(frame):
                    return frame
                kept.append(frame)
        finally:
            for frame in kept:
                self.frames.put(frame)

    def event(self, name: str, timeout: float = 15, **data: Any) -> dict[str, Any]:
        return self.next(lambda f: f.get("type") == "event" and f["payload"]["event"] == name
                         and all(f["payload"]["data"].get(k) == v for k, v in data.items()),
                         timeout)

    def close(self) -> None:
        self.sio.disconnect()


@pytest.fixture
def live_stack(tmp_path: Path, redis_available: str, request: pytest.FixtureRequest) -> Iterator[LivePlatform]:
    env = base_env(tmp_path, redis_available,
                   {"DATABASE_TYPE": "sqlite",
                    "DATABASE_SQLITE_PATH": str(tmp_path / "data" / "openwa.db")})
    env.update(getattr(request, "param", {}) or {})
    redis_lib.Redis.from_url(redis_available).flushdb()  # this run's own DB index only
    live = LivePlatform(env, tmp_path)
    yield live
    live.stop_all()
    print_logs_if_failed(request, live.procs)


def start_host(live: LivePlatform, name: str) -> None:
    """A session host, waited for: a start before it reports in would wait for beat's probe."""
    live.start("host", SESSION_HOST_NAME=name)
    wait_for(lambda: live.call("GET", "/health/detailed").json()["checks"]["workers"]["liveHosts"] >= 1,
             60, 0.2, f"host {name}")


@pytest.fixture
def root_url(live_stack: LivePlatform) -> str:
    return live_stack.base[: -len("/api")]
