"""The real tools against the real processes: Prometheus scrapes the API (2 gunicorn
workers), a session host, a worker and Flower; Flower shows them; logs are JSON lines
with context and without secrets."""
from __future__ import annotations

import json
import re
import subprocess
import time

import pytest
import requests

from app.embedded_redis import free_port
from tests.integration.conftest import print_logs_if_failed, wait_for
from tests.live import MASTER_KEY, LivePlatform, base_env
from tests.monitoring import METRICS_BY_SOURCE
from tests.observability.test_metrics_endpoint import names
from tests.tooling import require_binary

pytestmark = [pytest.mark.integration, pytest.mark.monitoring, pytest.mark.slow]

FLOWER_AUTH = ("ops", "flower-pass-123")
ENCRYPTION_KEY = "enc-key-that-must-never-be-logged-0001"


@pytest.fixture
def stack(tmp_path, config, request):
    env = base_env(tmp_path, config.redis_url,
                   {"DATABASE_TYPE": "sqlite",
                    "DATABASE_SQLITE_PATH": str(tmp_path / "data" / "openwa.db")})
    env.update({"LOG_FORMAT": "json", "API_WORKERS": "2", "ENCRYPTION_KEY": ENCRYPTION_KEY,
                "FLOWER_BASIC_AUTH": ":".join(FLOWER_AUTH), "SEND_WAIT_TIMEOUT": "10"})
    live = LivePlatform(env, tmp_path)
    ports = {"host": free_port(), "worker": free_port(), "flower": free_port()}
    live.start_api()
    live.start("host", SESSION_HOST_NAME="host-obs@test", METRICS_PORT=str(ports["host"]))
    live.start("worker", METRICS_PORT=str(ports["worker"]))
    live.start("flower", FLOWER_PORT=str(ports["flower"]))
    live.ports = ports
    yield live
    live.stop_all()
    print_logs_if_failed(request, live.procs, tail=3000)


def scrape(url: str) -> str:
    return requests.get(url, timeout=5).text


def scrape_when_served(url: str, what: str) -> str:
    """A process's metrics once it serves them: a worker opens its endpoint when it has
    started, which on a busy machine comes after the sends of the test (seen in CI: refused)."""
    def attempt() -> str | None:
        try:
            return scrape(url)
        except requests.ConnectionError:
            return None
    return wait_for(attempt, 30, 0.2, what)


def test_prometheus_scrapes_every_process_and_reads_the_series_back(stack, tmp_path):
    prometheus = require_binary("prometheus", "Debian package prometheus")
    live = stack
    wait_for(lambda: live.call("GET", "/health/detailed").json()["checks"]["workers"]["liveHosts"] == 1,
             30, 0.1, "the host")
    session = live.create_ready_session("observed")
    created_key = live.call("POST", "/auth/api-keys", json={"name": "ops", "role": "viewer"}).json()["apiKey"]
    for n in range(5):
        assert live.call("POST", "/sessions/observed/messages/send-text",
                         json={"chatId": "15550000000", "text": f"m{n}"}).status_code == 201

    # Every name the dashboards and alerts rely on is really exported by its process.
    targets = {
        "api": f"{live.base}/metrics",
        "celery-host": f"http://127.0.0.1:{live.ports['host']}/metrics",
        "celery-worker": f"http://127.0.0.1:{live.ports['worker']}/metrics",
        "flower": f"http://127.0.0.1:{live.ports['flower']}/metrics",
    }
    exported = {name: names(scrape_when_served(url, f"{name}'s metrics")) for name, url in targets.items()}
    assert not set(METRICS_BY_SOURCE["api"]) - exported["api"]
    celery_names = exported["celery-host"] | exported["celery-worker"]
    assert not set(METRICS_BY_SOURCE["celery"]) - celery_names
    wait_for(lambda: not set(METRICS_BY_SOURCE["flower"]) - names(scrape(targets["flower"])),
             30, 0.5, "flower's worker metrics")

    port = free_port()
    config = tmp_path / "prometheus.yml"
    jobs = []
    for job, url in targets.items():
        host_port, path = re.match(r"http://([^/]+)(/.*)", url).groups()  # type: ignore[union-attr]
        jobs.append({"job_name": job, "metrics_path": path, "scrape_interval": "1s",
                     "static_configs": [{"targets": [host_port]}]})
    config.write_text(json.dumps({"global": {"scrape_interval": "1s"}, "scrape_configs": jobs}))
    server = subprocess.Popen([prometheus, f"--config.file={config}",
                               f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                               f"--web.listen-address=127.0.0.1:{port}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def query(expr: str) -> list:
            try:  # Prometheus takes a moment to listen: poll, do not sleep
                reply = requests.get(f"http://127.0.0.1:{port}/api/v1/query",
                                     params={"query": expr}, timeout=5).json()
            except requests.RequestException:
                return []
            return reply["data"]["result"] if reply.get("status") == "success" else []

        up = wait_for(lambda: len(r := query("up == 1")) == 4 and r, 60, 0.5, "all four targets up")
        assert {s["metric"]["job"] for s in up} == set(targets)
        sent = wait_for(lambda: query(f'messages_sent_total{{session_id="{session["id"]}",status="sent"}}'),
                        30, 0.5, "messages_sent_total")
        assert float(sent[0]["value"][1]) == 5
        requests_seen = wait_for(
            lambda: query('sum(http_requests_total{path="/api/sessions/<sid>/messages/send-text"})'),
            30, 0.5, "http_requests_total")
        assert float(requests_seen[0]["value"][1]) >= 5
        active = wait_for(lambda: query("active_sessions_total"), 30, 0.5, "active_sessions_total")
        assert float(active[0]["value"][1]) == 1
    finally:
        server.terminate()
        server.wait(10)

    # Flower: behind basic auth, shows the host and the send tasks.
    flower = f"http://127.0.0.1:{live.ports['flower']}"
    assert requests.get(f"{flower}/api/workers", timeout=5).status_code == 401
    workers = wait_for(lambda: (w := requests.get(f"{flower}/api/workers?refresh=1", auth=FLOWER_AUTH,
                                                  timeout=10).json()) and "host-obs@test" in w and w,
                       30, 1, "the session host in flower")
    assert "host-obs@test" in workers

    # Flower lists the tasks whose events it received: the five sends above may have run
    # before its event receiver connected (they do on a busy machine). Send until one shows.
    def a_send_in_flower() -> bool:
        assert live.call("POST", "/sessions/observed/messages/send-text",
                         json={"chatId": "15550000000", "text": "seen by flower"}).status_code == 201
        tasks = requests.get(f"{flower}/api/tasks", auth=FLOWER_AUTH, timeout=10).json()
        return any(t.get("name") == "tasks.sessions.send_message" for t in tasks.values())

    wait_for(a_send_in_flower, 30, 1, "a send task in flower")

    # Logs: JSON lines with context, and no secret anywhere.
    time.sleep(1)
    lines = []
    for proc in live.procs:
        for raw in proc.output().splitlines():
            if raw.startswith("{"):
                lines.append(json.loads(raw))
    assert lines
    for line in lines:
        assert {"timestamp", "level", "logger", "message", "service", "version"} <= set(line)
    assert any(rec.get("task_id") and rec.get("session_id") == session["id"] for rec in lines), \
        "no log line of a session task carries task_id and session_id"
    assert any(rec.get("request_id") for rec in lines), "no API log line carries a request_id"
    everything = "\n".join(proc.output() for proc in live.procs)
    for secret in (MASTER_KEY, created_key, ENCRYPTION_KEY, FLOWER_AUTH[1]):
        assert secret not in everything
