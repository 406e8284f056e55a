"""`openwa run`: every process of one machine, owned and supervised by one parent.

- Owned: each child (the roles and the embedded redis-server) gets a parent-death signal, so
  none outlives this process however it dies, and this process holds the data folder's lock
  (passed down to the roles), so a second `openwa run` or `openwa beat` on the folder refuses.
- Supervised: a role that exits is logged with its last error line and started again after a
  backoff (1, 2, 4, 8 ... s); only a crash loop (CRASH_LIMIT exits within CRASH_WINDOW seconds)
  stops the platform, with one line naming the role and its last error.
"""
from __future__ import annotations

import collections
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import requests
from flask import Flask
from flask_migrate import upgrade

from app.config import Config, ConfigError
from app.embedded_redis import start as start_redis
from app.launch.guard import FOLDER_LOCK, InstanceLock, InstanceLocked, dies_with_me
from app.launch.roles import ROLES, host_node_name
from app.services import hosts
from app.services.api_keys import bootstrap_admin, key_file

CRASH_LIMIT = 5  # exits of one role ...
CRASH_WINDOW = 120.0  # ... within this many seconds stop the platform
BACKOFF_MAX = 30.0
STOP_TIMEOUT = 30.0
# What a role gets when this process dies. The API's master gets SIGKILL (its workers follow
# at once through their own parent-death signal): the API keeps nothing that is not
# committed, and gunicorn's own quick stop took 9-12 s here. Celery and Flower get SIGTERM,
# their warm shutdown (a session host finishes its task and closes its browsers).
DEATH_SIGNAL = {"api": signal.SIGKILL}
_ERROR_LINE = re.compile(r"^openwa: |^[\w.]*(Error|Exception)\b|\b(ERROR|CRITICAL|FATAL)\b|"
                         r'"level": ?"(error|critical)"|Unrecoverable error')
_output_lock = threading.Lock()


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"code {code}"


@dataclass
class Child:
    """One role: its current process, its recent exits and its last lines of stderr."""

    role: str
    process: subprocess.Popen[bytes] | None = None
    exits: collections.deque[float] = field(default_factory=collections.deque)
    lines: collections.deque[str] = field(
        default_factory=lambda: collections.deque(maxlen=40))
    restart_at: float | None = None

    def last_error(self) -> str:
        lines = [line for line in self.lines if line.strip()]
        for line in reversed(lines):
            if _ERROR_LINE.search(line.strip()):
                return line.strip()[:400]
        return ""


def _forward(stream: IO[bytes], child: Child) -> None:
    """Copy a child's stderr to ours line by line, remembering its last lines."""
    for raw in iter(stream.readline, b""):
        child.lines.append(raw.decode(errors="replace"))
        with _output_lock:
            try:
                sys.stderr.buffer.write(raw)
                sys.stderr.buffer.flush()
            except (OSError, ValueError):
                pass
    stream.close()


class Platform:
    """`openwa run`: the roles of ROLES plus, without REDIS_URL, an embedded Redis."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.children = [Child(role) for role in ROLES]
        self.redis: subprocess.Popen[bytes] | None = None
        self.redis_port: int | None = None
        self.lock: InstanceLock | None = None
        self.env: dict[str, str] = {}
        self.stopping = False
        self.failed: str | None = None

    # -- children ------------------------------------------------------------
    def _spawn(self, child: Child) -> None:
        assert self.lock is not None
        argv = [sys.executable, "-m", "app", child.role]
        if child.role == "beat":  # beat shares the folder lock this process holds
            argv += ["--lock-fd", str(self.lock.fd)]
        process = subprocess.Popen(
            dies_with_me(argv, DEATH_SIGNAL.get(child.role, signal.SIGTERM)), env=self.env,
            start_new_session=True, stderr=subprocess.PIPE, pass_fds=(self.lock.fd,))
        assert process.stderr is not None
        threading.Thread(target=_forward, args=(process.stderr, child), daemon=True,
                         name=f"stderr-{child.role}").start()
        child.process, child.restart_at = process, None
        child.lines.clear()

    def _say(self, line: str) -> None:
        with _output_lock:
            print(f"openwa: {line}", file=sys.stderr, flush=True)

    def _start_redis(self) -> None:
        self.redis, url = start_redis(self.config.data_dir, self.redis_port)
        self.redis_port = int(url.rsplit(":", 1)[1].split("/")[0])
        self.env["REDIS_URL"] = url

    def supervise(self) -> bool:
        """One round: note exits, restart what is due. False once a role is crash-looping."""
        now = time.monotonic()
        if self.redis is not None and self.redis.poll() is not None and not self.stopping:
            self._say(f"embedded redis-server exited with {describe_exit(self.redis.returncode)}"
                      "; restarting it on the same port")
            try:
                self._start_redis()
            except RuntimeError as problem:
                self.failed = f"embedded redis-server cannot restart: {problem}"
                self._say(f"{self.failed}; stopping OpenWA")
                return False
        for child in self.children:
            process = child.process
            if process is not None and process.poll() is not None:
                child.process = None
                time.sleep(0.05)  # let the reader take the last lines
                child.exits.append(now)
                while child.exits and now - child.exits[0] > CRASH_WINDOW:
                    child.exits.popleft()
                error = child.last_error()
                what = f"{child.role} exited with {describe_exit(process.returncode)}"
                if len(child.exits) >= CRASH_LIMIT:
                    self.failed = (f"{child.role} is crash-looping ({len(child.exits)} exits in "
                                   f"{CRASH_WINDOW:.0f} s); last error: {error or what}")
                    self._say(f"{self.failed}; stopping OpenWA")
                    return False
                delay = min(2.0 ** (len(child.exits) - 1), BACKOFF_MAX)
                child.restart_at = now + delay
                self._say(f"{what}{': ' + error if error else ''}; restarting it in {delay:.0f} s "
                          f"({len(child.exits)} exit(s) in the last {CRASH_WINDOW:.0f} s)")
            if child.process is None and child.restart_at is not None and now >= child.restart_at:
                self._spawn(child)
                assert child.process is not None
                self._say(f"{child.role} restarted (pid {child.process.pid})")
        return True

    # -- readiness -------------------------------------------------------------
    def _wait(self, check: Any, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.stopping:
            if not self.supervise():
                return False
            if check():
                return True
            time.sleep(0.2)
        return False

    def _api_ready(self) -> bool:
        url = f"http://127.0.0.1:{self.config.port}{self.config.api_prefix}/health/ready"
        try:
            return requests.get(url, timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def _host_ready(self, flask_app: Flask) -> bool:
        """Ready means a session can start now: the session host has reported in."""
        with flask_app.app_context():
            return bool(hosts.live_hosts(self.config))

    # -- the whole -------------------------------------------------------------
    def run(self, flask_app: Flask) -> int:
        started = time.monotonic()
        try:
            host_node_name(self.config)
        except ConfigError as error:
            self._say(f"configuration error: {error}")
            return 2
        try:
            self.lock = InstanceLock.acquire(self.config.data_dir / FOLDER_LOCK,
                                             what="openwa run", api=self._base_url())
            self.env = dict(os.environ)
            if not self.config.redis_url:
                self._start_redis()
                print(f"embedded Redis: {self.env['REDIS_URL']} "
                      f"(data in {self.config.data_dir / 'redis'})", flush=True)
        except InstanceLocked as error:
            self._say(str(error))
            if self.lock is not None:
                self.lock.release()
            return 1
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._on_signal)
        with flask_app.app_context():
            upgrade()
            bootstrap_admin(self.config)
        for child in self.children:
            self._spawn(child)
        if not (self._wait(self._api_ready, 120)
                and self._wait(lambda: self._host_ready(flask_app), 120)):
            if not self.failed and not self.stopping:
                self._say("OpenWA did not become ready; stopping")
            return self.stop(0 if self.stopping and not self.failed else 1)
        self._banner(started)
        while not self.stopping:
            if not self.supervise():
                return self.stop(1)
            time.sleep(0.2)
        return self.stop(0)

    def _base_url(self) -> str:
        return f"http://127.0.0.1:{self.config.port}"

    def _banner(self, started: float) -> None:
        base = self._base_url()
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

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.stopping = True

    def stop(self, code: int) -> int:
        """SIGTERM in reverse start order, SIGKILL what is still alive after 30 s."""
        self.stopping = True
        running = [c.process for c in reversed(self.children)
                   if c.process is not None and c.process.poll() is None]
        for process in running:
            process.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT
        for process in running:
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
        if self.lock is not None:
            self.lock.release()
        print("OpenWA stopped", flush=True)
        return code
