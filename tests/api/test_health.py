"""Health routes: public liveness and readiness (with and without /api), detailed for any key."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from app import create_app
from app.extensions import celery_app, db
from app.models import Host
from app.version import VERSION
from tests.conftest import auth, make_config
from tests.factories import assert_error, make_session


def parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert parsed.utcoffset() == timedelta(0)
    return parsed


@pytest.mark.parametrize("path", ["/health", "/api/health"])
def test_health_is_public_and_answers_ok_with_a_timestamp(client, path):
    response = client.get(path)
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"status", "timestamp"}
    assert body["status"] == "ok"
    assert abs(parse_time(body["timestamp"]) - datetime.now(timezone.utc)) < timedelta(minutes=1)


@pytest.mark.parametrize("path", ["/health/live", "/api/health/live"])
def test_live_is_public_and_answers_ok(client, path):
    response = client.get(path)
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


@pytest.mark.parametrize("path", ["/health/ready", "/api/health/ready"])
def test_ready_is_200_when_database_and_broker_answer(client, path):
    response = client.get(path)
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok"
    assert body["details"]["database"]["status"] == "ok"
    assert body["details"]["broker"]["status"] == "ok"


@pytest.mark.parametrize("path", ["/health", "/api/health/live", "/api/health/ready"])
def test_public_health_ignores_a_bad_key(client, path):
    response = client.get(path, headers=auth("owa_k1_" + "0" * 64))
    assert response.status_code == 200


def test_ready_is_503_with_details_when_the_database_is_down(tmp_path, redis_available):
    # Nothing listens on port 1: the connection is refused at once.
    config = make_config(tmp_path, ("postgres", "postgresql://openwa:pw@127.0.0.1:1/openwa"),
                         redis_available)
    broken = create_app(config)
    response = broken.test_client().get("/api/health/ready")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "error"
    assert body["details"]["database"]["status"] == "error"
    assert body["details"]["broker"]["status"] == "ok"
    # The error names the kind of failure, never the address, credentials or SQL.
    text = response.get_data(as_text=True)
    for leak in ("SELECT", "127.0.0.1", "openwa:pw", "Traceback"):
        assert leak not in text
    with broken.app_context():
        db.engine.dispose()


@pytest.mark.parametrize("path", ["/health/detailed", "/api/health/detailed"])
def test_detailed_needs_a_key(client, path):
    assert_error(client.get(path), 401)
    assert_error(client.get(path, headers=auth("owa_k1_" + "0" * 64)), 401)


@pytest.mark.parametrize("path", ["/health/detailed", "/api/health/detailed"])
def test_detailed_reports_version_uptime_and_every_check(app, client, viewer_key, path):
    make_session(app, status="ready")
    make_session(app, status="ready")
    make_session(app)
    with app.app_context():
        db.session.add(Host(name="host@health-test", capacity=5, held=0))
        db.session.commit()
    response = client.get(path, headers=auth(viewer_key))
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"status", "version", "uptime", "timestamp", "checks"}
    assert body["status"] == "ok"
    assert body["version"] == VERSION
    assert isinstance(body["uptime"], (int, float)) and body["uptime"] >= 0
    parse_time(body["timestamp"])
    checks = body["checks"]
    assert set(checks) == {"database", "redis", "broker", "sessions", "workers"}
    for name in ("database", "redis", "broker"):
        assert checks[name]["status"] == "ok", name
    sessions = checks["sessions"]
    assert sessions["total"] == 3
    assert sessions["byStatus"] == {"ready": 2, "created": 1}
    assert sessions["max"] == app.config["OPENWA"].max_sessions
    workers = checks["workers"]
    assert workers["liveHosts"] == 1
    assert workers["freeCapacity"] == 5
    assert [h["name"] for h in workers["hosts"]] == ["host@health-test"]


def test_ready_is_503_with_details_when_the_broker_is_down(tmp_path, redis_available):
    config = make_config(tmp_path, ("sqlite", str(tmp_path / "openwa.db")), "redis://127.0.0.1:1/0")
    broken = create_app(config)
    try:
        response = broken.test_client().get("/api/health/ready")
    finally:
        # The Celery app is one per process: point it back at the real broker.
        celery_app.conf.update(broker_url=redis_available, result_backend=redis_available)
        with broken.app_context():
            db.engine.dispose()
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "error"
    assert body["details"]["broker"]["status"] == "error"
    assert body["details"]["database"]["status"] == "ok"
