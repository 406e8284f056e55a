"""`openwa run` owns its processes (issue 19) and supervises them (issue 17 items 1, 4).

Every test starts the real platform (`python -m app run`: gunicorn, session host, worker,
beat, Flower and the embedded redis-server) in a scratch folder and kills real processes.
"""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
import redis
import requests

from app.embedded_redis import free_port
from app.embedded_redis import start as start_redis
from tests.integration.conftest import SessionFlows, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
KEY = "owa_k1_" + "cd" * 32


def run_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DATABASE_", "REDIS_", "CI", "SESSION_HOST_NAME"))}
    env.update({
        "DATA_PATH": str(tmp_path / "data"), "SESSION_DATA_PATH": str(tmp_path / "sessions"),
        "PORT": str(free_port()), "FLOWER_PORT": str(free_port()), "METRICS_PORT": "0",
        "API_KEY_MASTER": KEY, "LOG_FORMAT": "text", "PYTHONUNBUFFERED": "1",
        "API_WORKERS": "2", "API_DRAIN_SECONDS": "0", "RATE_LIMIT_ENABLED": "false",
        "MOCK_AUTO_SCAN_SECONDS": "0", "SESSION_PROBE_INTERVAL": "1",
        "BACKUP_SCHEDULE": "off",
    })
    env.update(extra)
    return env


class Run(SessionFlows):
    """One `openwa run` process, its output in a file, its API over HTTP."""

    def __init__(self, env: dict[str, str], cwd: Path, name: str = "run") -> None:
        self.env = env
        self.log_path = cwd / f"{name}.log"
        self.log = open(self.log_path, "ab")
        self.base = f"http://127.0.0.1:{env['PORT']}/api"
        self.process = subprocess.Popen([sys.executable, "-m", "app", "run"], env=env, cwd=cwd,
                                        stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        self.http = requests.Session()
        self.http.headers["X-API-Key"] = KEY

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 240) -> None:
        def ready() -> bool:
            assert self.process.poll() is None, self.output()[-5000:]
            return "OpenWA is ready in" in self.output()

        wait_for(ready, timeout, 0.3, "openwa run to be ready")

    def healthy(self) -> bool:
        try:
            return requests.get(f"{self.base}/health/ready", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def request(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        reply = self.http.request(method, f"{self.base}{path}", timeout=30, **kwargs)
        return reply.status_code, reply.json()

    def children(self) -> dict[str, psutil.Process]:
        """Direct children by role (``redis`` for the embedded server)."""
        found = {}
        for child in psutil.Process(self.process.pid).children():
            try:
                cmd = child.cmdline()
            except psutil.NoSuchProcess:
                continue
            if any("redis-server" in part for part in cmd):
                found["redis"] = child
            elif "app" in cmd:
                found[cmd[cmd.index("app") + 1]] = child
        return found

    def descendants(self) -> list[psutil.Process]:
        return psutil.Process(self.process.pid).children(recursive=True)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(90)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()


def gone(processes: list[psutil.Process]) -> list[psutil.Process]:
    """Those of ``processes`` still running (a zombie waiting for init counts as gone)."""
    alive = []
    for process in processes:
        try:
            if process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process)
        except psutil.NoSuchProcess:
            pass
    return alive


def kill_all(processes: list[psutil.Process]) -> None:
    for process in processes:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass


@pytest.fixture
def runs(tmp_path):
    started: list[Run] = []
    yield started
    for run in started:
        leftovers = run.descendants() if run.process.poll() is None else []
        run.stop()
        kill_all(gone(leftovers))


def test_kill_9_of_the_runner_takes_every_child_and_redis_with_it_then_a_new_run_starts(
        tmp_path, runs):
    env = run_env(tmp_path)
    runs.append(first := Run(env, tmp_path, "first"))
    first.wait_ready()
    children = first.children()
    assert set(children) == {"api", "host", "worker", "beat", "flower", "redis"}, children
    family = first.descendants()
    workers = children["api"].children()
    assert len(workers) == 2, "two gunicorn workers under the API"
    try:
        os.kill(first.process.pid, signal.SIGKILL)
        first.process.wait()
        started = time.monotonic()
        wait_for(lambda: not gone(family), 20, 0.1, "every child of the killed runner to exit")
        print(f"every child gone {time.monotonic() - started:.1f} s after kill -9 of the runner")
    finally:
        kill_all(gone(family))
    # The folder's lock died with them: the same DATA_PATH and port start again cleanly.
    runs.append(second := Run(env, tmp_path, "second"))
    second.wait_ready()
    assert second.healthy()
    assert "in use by" not in second.output()


def test_a_second_runner_or_beat_on_the_same_folder_is_refused_while_the_first_serves(
        tmp_path, runs):
    env = run_env(tmp_path)
    runs.append(first := Run(env, tmp_path, "first"))
    first.wait_ready()
    other_ports = {**env, "PORT": str(free_port()), "FLOWER_PORT": str(free_port())}
    for argv in (["run"], ["beat"]):
        started = time.monotonic()
        refused = subprocess.run([sys.executable, "-m", "app", *argv], env=other_ports,
                                 cwd=tmp_path, capture_output=True, text=True, timeout=60)
        lines = [line for line in refused.stderr.splitlines() if line.strip()]
        assert refused.returncode == 1, refused.stderr[-3000:]
        assert lines == [
            f"openwa: {(tmp_path / 'data').resolve()} is in use by openwa run "
            f"(pid {first.process.pid}, api http://127.0.0.1:{env['PORT']}, since "
            f"{lines[0].split('since ')[1].split(')')[0]}); stop it first or use another DATA_PATH"
        ], refused.stderr
        print(f"`openwa {argv[0]}` refused in {time.monotonic() - started:.1f} s")
    # A second embedded Redis on the folder is refused, naming the running one.
    with pytest.raises(RuntimeError, match=r"redis is in use by embedded redis-server \(pid "
                                           rf"{first.children()['redis'].pid}, port \d+"):
        start_redis(tmp_path / "data")
    assert first.healthy()
    assert first.process.poll() is None
    assert len(first.children()) == 6


def test_a_killed_role_is_restarted_as_a_child_and_the_platform_keeps_working(tmp_path, runs):
    runs.append(run := Run(run_env(tmp_path), tmp_path))
    run.wait_ready()
    run.create_ready_session("demo")
    for role in ("host", "api"):
        victim = run.children()[role]
        workers = victim.children()
        victim.kill()
        if role == "api":
            # gunicorn's workers leave with their master, so the port is free at once.
            wait_for(lambda: not gone(workers), 3, 0.05, "the gunicorn workers to exit")
        wait_for(lambda: re.search(rf"openwa: {role} exited with signal SIGKILL; restarting it "
                                   r"in 1 s \(1 exit\(s\) in the last 120 s\)", run.output()),
                 20, 0.2, f"the supervisor to notice the {role} exit")
        wait_for(lambda: role in run.children() and run.children()[role].pid != victim.pid,
                 30, 0.2, f"a new {role} process under the runner")
    wait_for(run.healthy, 60, 0.3, "the restarted API")
    # ... and the restarted API bound it on its first try (gunicorn logs each failed bind).
    assert "Connection in use" not in run.output()
    run.wait_status("demo", "ready", 60)
    status, body = run.request("POST", "/sessions/demo/messages/send-text",
                               json={"chatId": "15550000000", "text": "after the restarts"})
    assert status in (201, 202), body

    def sent() -> bool:
        history = run.request("GET", "/sessions/demo/messages?limit=20")[1]
        return any(m["body"] == "after the restarts" and m["status"] in ("sent", "delivered", "read")
                   for m in history["messages"])

    wait_for(sent, 60, 0.3, "the message sent through the restarted host")
    assert run.process.poll() is None


def test_a_crash_loop_stops_the_platform_with_one_line_naming_the_role_and_its_error(
        tmp_path, runs):
    with socket.socket() as taken:  # Flower cannot bind its port: it fails at every start
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env = run_env(tmp_path, FLOWER_PORT=str(taken.getsockname()[1]))
        runs.append(run := Run(env, tmp_path))
        code = run.process.wait(240)
    out = run.output()
    assert code == 1, out[-5000:]
    restarts = re.findall(r"openwa: flower exited with code \d+: .*; restarting it in (\d+) s", out)
    assert restarts == ["1", "2", "4", "8"], out[-5000:]
    stop = re.findall(r"openwa: flower is crash-looping \(5 exits in 120 s\); last error: (.*); "
                      r"stopping OpenWA", out)
    print(f"crash loop: {stop}")
    assert len(stop) == 1 and re.search(r"Address already in use|Errno 98", stop[0]), out[-5000:]
    assert "OpenWA stopped" in out
    for role in ("api", "host", "worker", "beat"):
        assert f"openwa: {role} exited" not in out, f"{role} should have run undisturbed"


def test_messages_queued_before_a_hard_kill_are_sent_by_the_next_run(tmp_path, runs):
    env = run_env(tmp_path, SEND_WAIT_TIMEOUT="0.5")
    runs.append(first := Run(env, tmp_path, "first"))
    first.wait_ready()
    first.create_ready_session("demo")
    host = first.children()["host"]
    host.suspend()  # the session's host takes nothing from its queue: the sends wait there
    texts = [f"queued {n}" for n in range(5)]
    for text in texts:
        status, body = first.request("POST", "/sessions/demo/messages/send-text",
                                     json={"chatId": "15550000000", "text": text})
        assert status == 202 and body["status"] == "pending", body
    family = first.descendants()
    os.kill(first.process.pid, signal.SIGKILL)
    first.process.wait()
    host.kill()  # frozen, it cannot take its SIGTERM; every other child leaves by itself
    wait_for(lambda: not gone(family), 20, 0.1, "every child of the killed runner to exit")

    # The append-only file kept the queue: read it with a bare server on the same folder.
    server, url = start_redis(tmp_path / "data")
    try:
        client = redis.Redis.from_url(url)
        # The doorbell (app/services/doorbell.py): the first send enqueued the session's task
        # (which the frozen host's pending BRPOP may already have popped), the others wait
        # on the session's bell list for a task to take them.
        rung = {item.decode() for key in client.scan_iter("openwa:bell:*")
                if client.type(key) == b"list" for item in client.lrange(key, 0, -1)}
        assert len(rung) >= len(texts) - 1, "the session's waiting sends did not survive the kill"
    finally:
        server.terminate()
        server.wait(10)

    runs.append(second := Run(env, tmp_path, "second"))
    second.wait_ready()

    def all_sent() -> bool:
        history = second.request("GET", "/sessions/demo/messages?limit=50")[1]
        done = {m["body"] for m in history["messages"]
                if m["status"] in ("sent", "delivered", "read") and m["direction"] == "outgoing"}
        return set(texts) <= done

    wait_for(all_sent, 120, 0.5, "the queued messages to be sent by the new run")
