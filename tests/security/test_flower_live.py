"""Flower as `openwa flower` runs it, with FLOWER_BASIC_AUTH: every page and API call asks
for the login (Flower 2.2 itself leaves several open), /healthcheck and /metrics do not."""
from __future__ import annotations

from pathlib import Path

import pytest
import requests

from app.embedded_redis import free_port
from tests.integration.conftest import wait_for
from tests.live import LivePlatform, base_env

LOGIN = ("ops", "flower-pass-123")
PROTECTED = ["/", "/workers", "/tasks", "/tasks/datatable?draw=1&start=0&length=10",
             "/task/0d8e2c1e-0000-0000-0000-000000000000", "/broker", "/worker/nobody",
             "/api/workers", "/api/tasks", "/api/task/info/0d8e2c1e-0000-0000-0000-000000000000",
             "/api/queues/length"]


@pytest.fixture
def flower(tmp_path: Path, redis_available: str):
    env = base_env(tmp_path, redis_available, {"DATABASE_TYPE": "sqlite",
                                               "DATABASE_SQLITE_PATH": str(tmp_path / "db.sqlite")})
    env["FLOWER_BASIC_AUTH"] = ":".join(LOGIN)
    platform = LivePlatform(env, tmp_path)
    port = free_port()
    proc = platform.start("flower", FLOWER_PORT=str(port), FLOWER_ADDRESS="127.0.0.1")
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return requests.get(f"{base}/healthcheck", timeout=1).status_code == 200
        except requests.RequestException:
            return not proc.alive()

    wait_for(up, 60, 0.2, "flower")
    assert proc.alive(), proc.output()[-3000:]
    yield base
    platform.stop_all()


def test_every_flower_page_and_api_call_needs_the_login(flower):
    for path in PROTECTED:
        reply = requests.get(f"{flower}{path}", timeout=10)
        assert reply.status_code == 401, (path, reply.status_code)
        wrong = requests.get(f"{flower}{path}", auth=("ops", "nope"), timeout=10)
        assert wrong.status_code == 401, path
    assert requests.get(f"{flower}/tasks", auth=LOGIN, timeout=10).status_code == 200
    assert requests.get(f"{flower}/api/workers", auth=LOGIN, timeout=10).status_code == 200


def test_healthcheck_and_metrics_stay_open_for_probes_and_prometheus(flower):
    assert requests.get(f"{flower}/healthcheck", timeout=10).text == "OK"
    metrics = requests.get(f"{flower}/metrics", timeout=10)
    assert metrics.status_code == 200 and "flower_" in metrics.text
