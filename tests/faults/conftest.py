"""Fault-injection fixtures: the platform on private Redis / PostgreSQL instances that
the tests may kill and restart."""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.services import PrivatePostgres, PrivateRedis
from tests.integration.conftest import print_logs_if_failed
from tests.live import LivePlatform, base_env

pytestmark = pytest.mark.faults


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path / "redis")
    server.start()
    yield server
    server.kill()


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    server.init()
    yield server
    server.destroy()


@pytest.fixture
def live(tmp_path: Path, private_redis: PrivateRedis, request: pytest.FixtureRequest) -> Iterator[LivePlatform]:
    env = base_env(tmp_path, private_redis.url,
                   {"DATABASE_TYPE": "sqlite",
                    "DATABASE_SQLITE_PATH": str(tmp_path / "data" / "openwa.db")})
    platform = LivePlatform(env, tmp_path)
    yield platform
    platform.stop_all()
    print_logs_if_failed(request, platform.procs)


def sent_ids(session_dir: Path) -> list[str]:
    """What the mock engine really sent, in order (its own record, kept in the profile)."""
    path = session_dir / "sent.jsonl"
    if not path.exists():
        return []
    ids = []
    for line in path.read_text().splitlines():
        try:
            ids.append(json.loads(line)["id"])
        except (ValueError, KeyError):
            continue
    return ids


def now() -> float:
    return time.monotonic()
