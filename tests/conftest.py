"""Shared fixtures: the app on real SQLite and real PostgreSQL, a client, and API keys."""
from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib
from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import upgrade
from sqlalchemy import text

from app import create_app
from app.config import WAJS_DEFAULT_PATH, Config
from app.embedded_redis import free_port
from app.extensions import db
from app.models import Base
from app.services import api_keys
from tests.databases import REDIS_URL, env_for, postgres_database
from tests.standin import StandIn
from tests.tooling import missing, require_binary

# Each xdist worker (or the single process) gets its own Redis database index.
# TEST_REDIS_DB moves a whole run elsewhere (two checkouts testing on one machine).
_REDIS_DB = int(os.environ.get("TEST_REDIS_DB", "9")) + int(
    os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:] or 0)
_counter = itertools.count()


def redis_url(index: int | None = None) -> str:
    return f"{REDIS_URL}/{_REDIS_DB if index is None else index}"


@pytest.fixture(scope="session")
def redis_available() -> str:
    url = redis_url()
    try:
        redis_lib.Redis.from_url(url, socket_timeout=2).ping()
    except redis_lib.exceptions.ConnectionError as error:
        missing(f"Redis at {url} is not reachable: {error}")
    return url


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A migrated database per backend for the whole run: (backend, url or path)."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("sqlite") / "openwa.db"
        yield "sqlite", str(path)
    else:
        with postgres_database() as url:
            yield "postgres", url


def make_config(tmp_path: Path, backend: tuple[str, str], redis: str, **overrides: Any) -> Config:
    env = {
        **env_for(*backend),
        "REDIS_URL": redis,
        "DATA_PATH": str(tmp_path / "data"),
        "SESSION_DATA_PATH": str(tmp_path / "sessions"),
        "STORAGE_LOCAL_PATH": str(tmp_path / "media"),  # never the checkout's ./media
        "LOG_FORMAT": "text",
        "LOG_LEVEL": "warning",
        "SEND_WAIT_TIMEOUT": "0.5",
        "ENGINE_CALL_TIMEOUT": "1",
        "RATE_LIMIT_MAX": "100000",
        "BIND_ADDRESS": "127.0.0.1",
    }
    return Config.from_env(env, **overrides)


_migrated: set[str] = set()


def _reset(app: Flask, key: str) -> None:
    with app.app_context():
        if key not in _migrated:
            upgrade()
            _migrated.add(key)
        else:
            with db.engine.begin() as conn:
                for table in reversed(Base.metadata.sorted_tables):
                    conn.execute(text(f'DELETE FROM "{table.name}"'))


@pytest.fixture
def config(tmp_path: Path, backend: tuple[str, str], redis_available: str) -> Config:
    return make_config(tmp_path, backend, redis_available)


@pytest.fixture
def app(config: Config, backend: tuple[str, str]) -> Iterator[Flask]:
    flask_app = create_app(config)
    flask_app.config["TESTING"] = True
    _reset(flask_app, backend[1])
    redis_lib.Redis.from_url(config.redis_url).flushdb()
    # No app context stays pushed: each request gets its own, as in production.
    yield flask_app
    with flask_app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def other(app: Flask) -> Iterator[FlaskClient]:
    """A second API process's worth of app: same database and Redis, its own caches (the
    key and session caches' tests: a change made through one is seen by the other)."""
    second = create_app(app.config["OPENWA"])
    second.config["TESTING"] = True
    yield second.test_client()
    with second.app_context():
        db.session.remove()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def _key(app: Flask, role: str, **extra: Any) -> str:
    with app.app_context():
        _, raw = api_keys.create({"name": f"{role}-{next(_counter)}", "role": role, **extra},
                                 app.config["OPENWA"])
    return raw


@pytest.fixture
def admin_key(app: Flask) -> str:
    return _key(app, "admin")


@pytest.fixture
def operator_key(app: Flask) -> str:
    return _key(app, "operator")


@pytest.fixture
def viewer_key(app: Flask) -> str:
    return _key(app, "viewer")


@pytest.fixture
def make_key(app: Flask):  # type: ignore[no-untyped-def]
    """Create a key with any role and scopes: ``make_key("operator", allowed_sessions=[...])``."""
    return lambda role="operator", **extra: _key(app, role, **extra)


def auth(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


# Lets fixtures see whether the test failed (to print the logs of the processes it ran).
@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


# -- the selenium engine: Chromium, chromedriver, the wa-js bundle and the stand-in ------------
ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_TEST_ARGS = ["--no-sandbox", "--disable-dev-shm-usage"]


@pytest.fixture(scope="session")
def wajs_bundle() -> str:
    """The wa-js bundle `make wajs` installs (or WAJS_BUNDLE_PATH); skip/fail without it."""
    path = Path(os.environ.get("WAJS_BUNDLE_PATH") or ROOT / WAJS_DEFAULT_PATH)
    if not path.is_file():
        missing(f"wa-js bundle not found at {path}: run `make wajs`")
    return str(path.resolve())


@pytest.fixture(scope="session")
def chromium(wajs_bundle: str) -> dict[str, str]:
    """Paths of Chromium, chromedriver and the wa-js bundle; skip/fail when one is missing."""
    return {
        "browser": require_binary("chromium", "apt-get install chromium"),
        "driver": require_binary("chromedriver", "apt-get install chromium-driver"),
        "wajs": wajs_bundle,
    }


@pytest.fixture(scope="module")
def standin() -> Iterator[StandIn]:
    server = StandIn().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A local S3-compatible server on loopback (moto's ThreadedMotoServer), per module."""
    server_module = pytest.importorskip("moto.server", reason="pip install moto[server]")
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(),
                                              verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
