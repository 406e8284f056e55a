"""/api/metrics: every series of section 10.6, route templates as paths, the token."""
from __future__ import annotations

from flask import Flask

from app import create_app
from tests.conftest import auth, make_config
from tests.monitoring import METRICS_BY_SOURCE


def names(text: str) -> set[str]:
    found = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            name, kind = line.split()[2:4]
            found.add(name)
            if kind == "histogram":
                found.update({f"{name}_bucket", f"{name}_sum", f"{name}_count"})
            if kind == "counter" and not name.endswith("_total"):
                found.add(f"{name}_total")
    return found


def test_metrics_export_every_api_series_of_the_contract(client, operator_key):
    client.get("/api/sessions", headers=auth(operator_key))
    body = client.get("/api/metrics").get_data(as_text=True)
    missing = set(METRICS_BY_SOURCE["api"]) - names(body)
    assert not missing, missing


def test_request_metrics_use_the_route_template_not_the_raw_url(client, operator_key):
    session = client.post("/api/sessions", json={"name": "metered"}, headers=auth(operator_key)).get_json()
    client.get(f"/api/sessions/{session['id']}", headers=auth(operator_key))
    client.get("/api/sessions/no-such-session", headers=auth(operator_key))
    body = client.get("/api/metrics").get_data(as_text=True)
    assert 'http_requests_total{method="GET",path="/api/sessions/<sid>",status="200"}' in body
    assert 'http_requests_total{method="GET",path="/api/sessions/<sid>",status="404"}' in body
    assert not any(session["id"] in line for line in body.splitlines() if line.startswith("http_"))
    assert "no-such-session" not in body


def test_session_gauges_follow_the_database(client, operator_key, app: Flask):
    client.post("/api/sessions", json={"name": "gauged"}, headers=auth(operator_key))
    body = client.get("/api/metrics").get_data(as_text=True)
    assert 'session_status{session_id=' in body and 'status="created"} 1.0' in body
    assert "active_sessions_total 0.0" in body


def test_metrics_need_the_token_when_one_is_set(tmp_path, backend, redis_available):
    app = create_app(make_config(tmp_path, backend, redis_available, metrics_token="s3cret-token"))
    client = app.test_client()
    refused = client.get("/api/metrics")
    assert refused.status_code == 401 and refused.get_json()["statusCode"] == 401
    assert client.get("/api/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/api/metrics", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200


def test_request_id_is_honoured_or_generated_and_returned(client):
    given = client.get("/api/health", headers={"X-Request-ID": "abc-123"})
    assert given.headers["X-Request-ID"] == "abc-123"
    made = client.get("/api/health", headers={"X-Request-ID": "bad id with spaces"})
    assert made.headers["X-Request-ID"] and made.headers["X-Request-ID"] != "bad id with spaces"
