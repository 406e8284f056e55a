"""Exposure (issue 16, point 6): metrics need METRICS_TOKEN beyond loopback, detailed health
is scope-filtered, security headers, no caching of responses with keys, a cap on created
sessions, owner-only data files, Flower behind its login."""
from __future__ import annotations

import os
import stat

import pytest

from app import create_app, flower_auth
from app.config import Config
from tests.conftest import auth, make_config
from tests.security import dispose


@pytest.fixture
def build(tmp_path, backend, redis_available, app):
    built: list = []

    def make(name: str, **overrides):
        made = create_app(make_config(tmp_path / name, backend, redis_available, **overrides))
        made.config["TESTING"] = True
        built.append(made)
        return made
    yield make
    dispose(built)


# -- metrics ----------------------------------------------------------------------------
def test_metrics_beyond_loopback_without_a_token_are_refused(build):
    reply = build("open", bind_address="0.0.0.0").test_client().get("/api/metrics")
    assert reply.status_code == 401
    assert reply.get_json()["code"] == "METRICS_TOKEN_REQUIRED"
    assert b"session_status" not in reply.data


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
def test_metrics_on_a_loopback_listener_need_no_token(build, address):
    reply = build("lo", bind_address=address).test_client().get("/api/metrics")
    assert reply.status_code == 200 and b"active_sessions_total" in reply.data


def test_metrics_with_a_token_need_it_wherever_they_listen(build):
    client = build("tok", bind_address="0.0.0.0", metrics_token="s3cret-token").test_client()
    assert client.get("/api/metrics").status_code == 401
    assert client.get("/api/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.get("/api/metrics", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200


# -- detailed health -------------------------------------------------------------------
def test_detailed_health_tells_a_scoped_key_only_about_its_sessions(client, admin_key, make_key):
    for name in ("mine", "theirs", "others"):
        assert client.post("/api/sessions", json={"name": name}, headers=auth(admin_key)).status_code == 201
    scoped = make_key("viewer", allowed_sessions=["mine"])
    body = client.get("/api/health/detailed", headers=auth(scoped)).get_json()
    assert body["checks"]["sessions"]["total"] == 1
    assert "hosts" not in body["checks"]["workers"]
    full = client.get("/api/health/detailed", headers=auth(admin_key)).get_json()
    assert full["checks"]["sessions"]["total"] == 3
    assert "hosts" in full["checks"]["workers"]


# -- headers ------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/api/sessions", "/api/health", "/api/openapi.json", "/api/nope"])
def test_standard_security_headers_on_every_response(client, viewer_key, path):
    reply = client.get(path, headers=auth(viewer_key))
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
    assert reply.headers["X-Frame-Options"] == "DENY"
    assert reply.headers["Referrer-Policy"] == "no-referrer"
    assert "default-src 'none'" in reply.headers["Content-Security-Policy"]


def test_a_new_key_is_never_cached(client, admin_key):
    reply = client.post("/api/auth/api-keys", json={"name": "fresh"}, headers=auth(admin_key))
    assert reply.status_code == 201 and reply.get_json()["apiKey"]
    assert reply.headers["Cache-Control"] == "no-store"
    rotated = client.post(f"/api/auth/api-keys/{reply.get_json()['id']}/rotate", headers=auth(admin_key))
    assert rotated.headers["Cache-Control"] == "no-store"


# -- created sessions -------------------------------------------------------------------
def test_max_created_sessions_is_a_clear_409(build):
    app = build("cap", max_created_sessions=2)
    from tests.conftest import _key
    key = _key(app, "operator")
    client = app.test_client()
    for name in ("one", "two"):
        assert client.post("/api/sessions", json={"name": name}, headers=auth(key)).status_code == 201
    refused = client.post("/api/sessions", json={"name": "three"}, headers=auth(key))
    assert refused.status_code == 409
    assert refused.get_json()["code"] == "MAX_CREATED_SESSIONS"
    assert len(client.get("/api/sessions", headers=auth(key)).get_json()) == 2
    assert client.delete("/api/sessions/one", headers=auth(key)).status_code == 204
    assert client.post("/api/sessions", json={"name": "three"}, headers=auth(key)).status_code == 201


def test_max_created_sessions_is_read_from_the_environment():
    assert Config.from_env({"MAX_CREATED_SESSIONS": "7"}).max_created_sessions == 7
    assert Config.from_env({}).max_created_sessions == 100


# -- data files ----------------------------------------------------------------------------
def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_data_files_are_owner_only(tmp_path, redis_available):
    data = tmp_path / "data"
    (data / "redis").mkdir(parents=True)
    (data / "redis").chmod(0o755)
    data.chmod(0o755)
    old = data / "redis" / "appendonly.aof"
    old.write_text("x")
    old.chmod(0o644)
    previous = os.umask(0o022)
    try:
        config = Config.from_env({"DATA_PATH": str(data), "REDIS_URL": redis_available,
                                  "LOG_FORMAT": "text", "LOG_LEVEL": "warning"})
        flask_app = create_app(config)
        from flask_migrate import upgrade
        with flask_app.app_context():
            upgrade()
        created = data / "created-later"
        created.write_text("y")
        assert mode(data) == 0o700
        assert mode(data / "redis") == 0o700
        assert mode(old) == 0o600
        assert mode(created) == 0o600
        for name in os.listdir(data):
            if name.startswith("openwa.db"):
                assert mode(data / name) == 0o600, name
        assert (data / "openwa.db").exists()
        dispose([flask_app])
    finally:
        os.umask(previous)


# -- Flower ------------------------------------------------------------------------------
def flower_config(tmp_path, **env):
    return Config.from_env({"DATA_PATH": str(tmp_path / "data"), **env})


def test_flower_on_loopback_without_credentials_asks_for_none(tmp_path):
    argv = flower_auth.secure_argv(flower_config(tmp_path), ["flower"])
    assert argv == ["flower"]
    assert not flower_auth.credentials_path(flower_config(tmp_path)).exists()


def test_flower_uses_flower_basic_auth_when_set(tmp_path):
    config = flower_config(tmp_path, FLOWER_BASIC_AUTH="ops:correct-horse")
    assert flower_auth.secure_argv(config, ["flower"]) == ["flower", "--basic_auth=ops:correct-horse"]


def test_flower_beyond_loopback_gets_generated_credentials_in_a_private_file(tmp_path, caplog):
    config = flower_config(tmp_path, FLOWER_ADDRESS="0.0.0.0")
    argv = flower_auth.secure_argv(config, ["flower"])
    path = flower_auth.credentials_path(config)
    credentials = path.read_text().strip()
    assert argv == ["flower", f"--basic_auth={credentials}"]
    user, password = credentials.split(":")
    assert user == "admin" and len(password) >= 24
    assert mode(path) == 0o600
    assert password not in caplog.text
    # The same credentials next time (the operator keeps the ones they were told about).
    assert flower_auth.secure_argv(config, ["flower"]) == argv


def test_every_flower_page_but_health_and_metrics_asks_for_the_login(tmp_path):
    """Every handler, whatever its own decorators, checks the login (Prometheus scrapes
    /metrics without one: counts only, no task arguments or results)."""
    import base64

    import tornado.httputil
    import tornado.web
    from flower.urls import handlers
    from flower.views import BaseHandler
    from flower.views.monitor import Healthcheck, Metrics

    flower_auth.protect_every_page()

    class Options:
        basic_auth = ["ops:pw"]
        auth = None

    application = tornado.web.Application()
    application.options = Options()

    class Connection:
        def set_close_callback(self, callback):
            pass

    def handler(cls, authorization=None):
        headers = tornado.httputil.HTTPHeaders()
        if authorization:
            headers["Authorization"] = authorization
        request = tornado.httputil.HTTPServerRequest(method="GET", uri="/x", headers=headers,
                                                     connection=Connection())
        return cls(application, request)

    found = [getattr(spec, "handler_class", None) or spec[1] for spec in handlers]
    classes = {cls for cls in found if isinstance(cls, type) and issubclass(cls, BaseHandler)}
    assert Metrics in classes and len(classes) > 10
    for cls in classes - {Healthcheck, Metrics}:
        with pytest.raises(tornado.web.HTTPError) as refused:
            handler(cls).prepare()
        assert refused.value.status_code == 401, cls
    from flower.views.tasks import TasksView
    good = "Basic " + base64.b64encode(b"ops:pw").decode()
    handler(TasksView, good).prepare()  # the right login passes
    handler(Healthcheck).prepare()
    handler(Metrics).prepare()


def test_a_shared_folder_is_left_as_it_is(tmp_path, redis_available):
    """DATABASE_SQLITE_PATH (or any data folder) in a folder everyone writes to, as /tmp:
    the database's own files become owner-only, the folder and everything else in it stay
    as they were (before, the folder became 0700 and every file in it 0600: /tmp closed to
    every other user and program of the machine)."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    others = shared / "someone-elses"
    others.mkdir()
    others.chmod(0o755)
    (others / "file").write_text("z")
    (others / "file").chmod(0o644)
    inner = tmp_path / "data" / "scratch"  # a shared folder inside DATA_PATH is skipped too
    inner.mkdir(parents=True)
    inner.chmod(0o1777)
    (inner / "theirs").write_text("w")
    (inner / "theirs").chmod(0o644)
    previous = os.umask(0o022)
    try:
        config = Config.from_env({"DATA_PATH": str(tmp_path / "data"), "REDIS_URL": redis_available,
                                  "DATABASE_TYPE": "sqlite",
                                  "DATABASE_SQLITE_PATH": str(shared / "openwa.db"),
                                  "SESSION_DATA_PATH": str(shared),
                                  "LOG_FORMAT": "text", "LOG_LEVEL": "warning"})
        flask_app = create_app(config)
        from flask_migrate import upgrade
        with flask_app.app_context():
            upgrade()
        again = create_app(config)  # a second start finds the database there
        assert mode(shared) == 0o1777
        assert mode(others) == 0o755 and mode(others / "file") == 0o644
        assert mode(inner) == 0o1777 and mode(inner / "theirs") == 0o644
        assert mode(tmp_path / "data") == 0o700
        databases = [name for name in os.listdir(shared) if name.startswith("openwa.db")]
        assert "openwa.db" in databases
        for name in databases:
            assert mode(shared / name) == 0o600, name
        dispose([flask_app, again])
    finally:
        os.umask(previous)
