"""Private service instances that fault tests may stop, kill and restart: never the shared
PostgreSQL on 5432 or Redis on 6379."""
from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from app.embedded_redis import REDIS_SERVER, free_port
from tests.databases import admin_query
from tests.tooling import missing


class PrivateRedis:
    """redis-server on its own port, without persistence (a restart loses what it held)."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                redis.Redis.from_url(self.url, socket_timeout=0.5).ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("private redis did not start")

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        missing(f"{name} not found (Debian package postgresql)")
    return found[-1]


class PrivatePostgres:
    """A throwaway cluster made with initdb, run as the postgres user on its own port."""

    def __init__(self) -> None:
        try:
            self.user = pwd.getpwnam("postgres")
        except KeyError:
            missing("no postgres system user to run a private cluster")
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="openwa-pg-", dir="/tmp"))
        os.chown(self.root, self.user.pw_uid, self.user.pw_gid)
        self.data = self.root / "data"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/openwa"

    def _as_postgres(self, *args: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *args], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def init(self) -> None:
        self._as_postgres(_pg_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres")
        self.start()
        admin_query(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                    "CREATE DATABASE openwa")

    def start(self) -> None:
        self._as_postgres(_pg_bin("pg_ctl"), "-D", str(self.data), "-w", "-l",
                          str(self.root / "log"), "-o",
                          f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1", "start")

    def stop(self, mode: str = "fast") -> None:
        self._as_postgres(_pg_bin("pg_ctl"), "-D", str(self.data), "-w", "-m", mode, "stop")

    def destroy(self) -> None:
        try:
            self.stop("immediate")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.root, ignore_errors=True)


def children_of(pid: int) -> list[int]:
    """The live child processes of ``pid`` (from /proc), e.g. a gunicorn master's workers."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as handle:
                stat = handle.read()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces, so split after its ")".
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and fields[1] == str(pid) and fields[0] != "Z":
            found.append(int(entry))
    return found


class Supervisor:
    """Restarts whatever role dies, after a delay, as systemd or Docker would: each role
    runs in its own process group, and what is left of a dead role's group is killed before
    the role starts again (systemd's KillMode=control-group, a container's exit).

    ``roles`` maps a name to a function that starts it and returns an object with ``alive()``
    and ``pid`` (a ``Proc``), or to a ``PrivateRedis``. ``delay`` gives each restart's delay.
    """

    def __init__(self, roles: dict[str, Any], delay: Callable[[], float]) -> None:
        self.starters = roles
        self.delay = delay
        self.running: dict[str, Any] = {}
        self.restarts: dict[str, int] = {name: 0 for name in roles}
        self.due: dict[str, float] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._watch, name="supervisor", daemon=True)

    def start(self) -> "Supervisor":
        for name in self.starters:
            self.running[name] = self._launch(name)
        self.thread.start()
        return self

    def _launch(self, name: str) -> Any:
        starter = self.starters[name]
        if isinstance(starter, PrivateRedis):
            if not self._alive(starter):
                starter.start()
            return starter
        return starter()

    @staticmethod
    def _alive(process: Any) -> bool:
        if isinstance(process, PrivateRedis):
            return process.process is not None and process.process.poll() is None
        return bool(process.alive())

    def _watch(self) -> None:
        while not self.stopping.wait(0.1):
            try:
                self._restart_the_dead()
            except Exception as error:  # noqa: BLE001 - a failed start is retried next round
                print(f"supervisor: {type(error).__name__}: {error}", flush=True)

    def _restart_the_dead(self) -> None:
        with self.lock:
            for name, process in list(self.running.items()):
                if self._alive(process):
                    continue
                now = time.monotonic()
                if name not in self.due:
                    self.due[name] = now + self.delay()
                elif now >= self.due[name]:
                    del self.due[name]
                    if not isinstance(process, PrivateRedis):
                        with contextlib.suppress(ProcessLookupError, PermissionError):
                            os.killpg(process.pid, signal.SIGKILL)  # orphans of the role
                    self.running[name] = self._launch(name)
                    self.restarts[name] += 1

    def get(self, name: str) -> Any:
        with self.lock:
            return self.running[name]

    def all_alive(self) -> bool:
        with self.lock:
            return all(self._alive(p) for p in self.running.values())

    def describe(self) -> dict[str, str]:
        """Each role: alive, or its exit status (for a failing test's output)."""
        with self.lock:
            out = {}
            for name, process in self.running.items():
                popen = process.process if hasattr(process, "process") else None
                code = popen.poll() if popen is not None else None
                out[name] = "alive" if code is None else f"exited {code}"
            return out

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(10)
