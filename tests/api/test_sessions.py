"""Session routes: create, list, get, start/stop/restart/logout, delete, QR, pairing code, and
the engine-backed reads (contacts, chats, groups) with no session host running."""
from __future__ import annotations

import base64
import io
from datetime import datetime, timedelta, timezone

import pytest
import redis as redis_lib
from PIL import Image
from sqlalchemy import func, select

from app.extensions import db
from app.models import ApiKey, Host, IdempotencyKey, Message, Session
from tests.conftest import auth
from tests.factories import (
    assert_error,
    assert_validation_error,
    load_session,
    make_message,
    make_session,
)

zxingcpp = pytest.importorskip("zxingcpp")

SESSION_FIELDS = {"id", "name", "status", "phone", "pushName", "connectedAt", "lastActive",
                  "createdAt", "updatedAt", "lastError"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
RAW_QR = ("2@Yv0Tk9m7Qm1xQ0r6w3kz1L0o2fP9aHn5bC8dE4gJ7iK1lM3nO5pQ7rS9tU==,"
          "Xk8yR2v5Tz1Qw4Ep7Ls0Kd3Mf6Nh9Bj2Cg5Vb8Xn1Za4=,"
          "aGVsbG8gb3BlbndhIHRlc3Q=,ZmFrZSBhZHYgc2VjcmV0IGtleQ==")


def decode_png(png: bytes) -> list[str]:
    assert png.startswith(PNG_SIGNATURE)
    with Image.open(io.BytesIO(png)) as image:
        assert image.format == "PNG"
        return [result.text for result in zxingcpp.read_barcodes(image.convert("L"))]


def parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert parsed.utcoffset() == timedelta(0), value
    return parsed


def profile_dir(app, session_id: str):
    path = app.config["OPENWA"].session_data_path / session_id
    (path / "Default").mkdir(parents=True, exist_ok=True)
    (path / "Default" / "Cookies").write_bytes(b"credentials")
    return path


# -- create ---------------------------------------------------------------------------------------
def test_create_returns_201_with_status_created(client, operator_key):
    response = client.post("/api/sessions", json={"name": "main-phone"}, headers=auth(operator_key))
    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == SESSION_FIELDS
    assert body["name"] == "main-phone"
    assert body["status"] == "created"
    for field in ("phone", "pushName", "connectedAt", "lastActive", "lastError"):
        assert body[field] is None, field
    parse_time(body["createdAt"])
    parse_time(body["updatedAt"])


@pytest.mark.parametrize("name", ["abc", "A_b-9", "x" * 50, "0123456789", "---", "___"])
def test_create_accepts_3_to_50_letters_digits_underscore_dash(client, operator_key, name):
    response = client.post("/api/sessions", json={"name": name}, headers=auth(operator_key))
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["name"] == name


@pytest.mark.parametrize("name", ["ab", "x" * 51, "", "has space", "dot.name", "slash/name",
                                  "ünïcode", "semi;colon", "new\nline", 123, None, ["abc"]])
def test_create_refuses_other_names_with_400(client, operator_key, name):
    response = client.post("/api/sessions", json={"name": name}, headers=auth(operator_key))
    assert_validation_error(response, "name")


def test_create_with_a_taken_name_is_409(app, client, operator_key):
    assert client.post("/api/sessions", json={"name": "taken"},
                       headers=auth(operator_key)).status_code == 201
    response = client.post("/api/sessions", json={"name": "taken"}, headers=auth(operator_key))
    body = assert_error(response, 409)
    assert "taken" in body["message"]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Session)) == 1


# -- list and get ---------------------------------------------------------------------------------
def test_list_is_a_bare_array_of_sessions(app, client, viewer_key):
    first, second = make_session(app, "first"), make_session(app, "second", status="ready")
    response = client.get("/api/sessions", headers=auth(viewer_key))
    assert response.status_code == 200
    body = response.get_json()
    assert isinstance(body, list)
    assert {s["id"] for s in body} == {first.id, second.id}
    assert all(set(s) == SESSION_FIELDS for s in body)


def test_list_filters_by_status(app, client, viewer_key):
    make_session(app, "one", status="ready")
    make_session(app, "two", status="ready")
    make_session(app, "three", status="failed")
    make_session(app, "four")
    ready = client.get("/api/sessions?status=ready", headers=auth(viewer_key)).get_json()
    assert sorted(s["name"] for s in ready) == ["one", "two"]
    failed = client.get("/api/sessions?status=failed", headers=auth(viewer_key)).get_json()
    assert [s["name"] for s in failed] == ["three"]
    assert client.get("/api/sessions?status=qr_ready", headers=auth(viewer_key)).get_json() == []


def test_list_with_an_unknown_status_is_400(client, viewer_key):
    assert_validation_error(client.get("/api/sessions?status=running", headers=auth(viewer_key)),
                            "status")


def test_get_by_id_and_by_name(app, client, viewer_key):
    session = make_session(app, "by-either", status="ready", phone="6281234567890",
                           push_name="Ada")
    for sid in (session.id, session.name):
        response = client.get(f"/api/sessions/{sid}", headers=auth(viewer_key))
        assert response.status_code == 200
        body = response.get_json()
        assert set(body) == SESSION_FIELDS
        assert (body["id"], body["name"], body["status"]) == (session.id, "by-either", "ready")
        assert (body["phone"], body["pushName"]) == ("6281234567890", "Ada")


def test_get_an_unknown_session_is_404(client, viewer_key):
    body = assert_error(client.get("/api/sessions/nobody", headers=auth(viewer_key)), 404)
    assert body == {"statusCode": 404, "message": "Session 'nobody' not found",
                    "error": "Not Found"}


@pytest.mark.parametrize("path", ["", "/start", "/stop", "/restart", "/logout", "/qr"])
def test_every_session_route_answers_404_for_an_unknown_session(client, admin_key, path):
    method = "get" if path in ("", "/qr") else "post"
    response = getattr(client, method)(f"/api/sessions/nobody{path}", headers=auth(admin_key))
    assert assert_error(response, 404)["message"] == "Session 'nobody' not found"


def test_session_json_never_contains_lease_profile_or_qr_internals(app, client, viewer_key):
    session = make_session(
        app, "internal", status="qr_ready", desired_state="running", qr_code="2@SECRET-QR-STRING",
        lease_holder="host@secret-host-name", lease_token=41, reconnect_attempts=3,
        lease_expires_at=datetime.now(timezone.utc) + timedelta(seconds=30))
    for url in (f"/api/sessions/{session.id}", "/api/sessions"):
        response = client.get(url, headers=auth(viewer_key))
        body = response.get_json()
        for item in body if isinstance(body, list) else [body]:
            assert set(item) == SESSION_FIELDS
        text = response.get_data(as_text=True)
        for secret in ("SECRET-QR-STRING", "secret-host-name", "lease", "desired", "profile",
                       "qrCode", str(app.config["OPENWA"].session_data_path)):
            assert secret not in text, secret


# -- start ----------------------------------------------------------------------------------------
def test_start_answers_initializing_and_persists_the_desired_state(app, client, operator_key):
    session = make_session(app, "starter", last_error="old failure")
    response = client.post(f"/api/sessions/{session.name}/start", headers=auth(operator_key))
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == SESSION_FIELDS
    assert (body["id"], body["status"], body["lastError"]) == (session.id, "initializing", None)
    row = load_session(app, session.id)
    assert (row.desired_state, row.status) == ("running", "initializing")


@pytest.mark.parametrize("status", ["failed", "disconnected"])
def test_a_stopped_or_failed_session_can_be_started_again(app, client, operator_key, status):
    session = make_session(app, status=status)
    response = client.post(f"/api/sessions/{session.id}/start", headers=auth(operator_key))
    assert response.status_code == 200
    assert response.get_json()["status"] == "initializing"


def test_a_double_start_is_400_and_dispatches_once(app, client, operator_key, config):
    # A live host with room, so the first start is dispatched to its queue.
    with app.app_context():
        db.session.add(Host(name="host@api-test", capacity=5, held=0))
        db.session.commit()
    broker = redis_lib.Redis.from_url(config.redis_url)
    session = make_session(app, "twice")
    first = client.post(f"/api/sessions/{session.id}/start", headers=auth(operator_key))
    assert first.status_code == 200
    second = client.post(f"/api/sessions/{session.id}/start", headers=auth(operator_key))
    body = assert_error(second, 400, "SESSION_RUNNING")
    assert "twice" in body["message"]
    assert broker.llen("host.host@api-test") == 1
    row = load_session(app, session.id)
    assert (row.desired_state, row.status) == ("running", "initializing")


def test_start_at_max_sessions_is_429_with_a_code(app, client, operator_key):
    app.config["OPENWA"].max_sessions = 2
    running = [make_session(app, status="ready", desired_state="running") for _ in range(2)]
    waiting = make_session(app, "waiting")
    response = client.post(f"/api/sessions/{waiting.id}/start", headers=auth(operator_key))
    body = assert_error(response, 429, "MAX_SESSIONS_REACHED")
    assert "2" in body["message"]
    row = load_session(app, waiting.id)
    assert (row.desired_state, row.status) == ("stopped", "created")
    # A running session is still "already running", not over the limit.
    response = client.post(f"/api/sessions/{running[0].id}/start", headers=auth(operator_key))
    assert_error(response, 400, "SESSION_RUNNING")
    # Stopping one frees a slot.
    assert client.post(f"/api/sessions/{running[1].id}/stop",
                       headers=auth(operator_key)).status_code == 200
    response = client.post(f"/api/sessions/{waiting.id}/start", headers=auth(operator_key))
    assert response.status_code == 200


# -- stop, restart, logout, delete ----------------------------------------------------------------
def _linked(app, name: str = "linked") -> Session:
    now = datetime.now(timezone.utc)
    return make_session(app, name, status="ready", desired_state="running", phone="6281234567890",
                        push_name="Ada", connected_at=now, last_active=now)


def test_stop_keeps_phone_push_name_and_profile_and_stays_stopped(app, client, operator_key):
    session = _linked(app)
    profile = profile_dir(app, session.id)
    response = client.post(f"/api/sessions/{session.id}/stop", headers=auth(operator_key))
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == SESSION_FIELDS
    assert body["status"] == "disconnected"
    assert (body["phone"], body["pushName"]) == ("6281234567890", "Ada")
    row = load_session(app, session.id)
    assert row.desired_state == "stopped"
    assert (profile / "Default" / "Cookies").read_bytes() == b"credentials"


def test_stop_of_a_never_started_session_keeps_it_created(app, client, operator_key):
    session = make_session(app)
    response = client.post(f"/api/sessions/{session.id}/stop", headers=auth(operator_key))
    assert response.status_code == 200
    assert response.get_json()["status"] == "created"
    assert load_session(app, session.id).desired_state == "stopped"


def test_restart_keeps_credentials_and_answers_initializing(app, client, operator_key):
    session = _linked(app)
    profile = profile_dir(app, session.id)
    response = client.post(f"/api/sessions/{session.id}/restart", headers=auth(operator_key))
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "initializing"
    assert (body["phone"], body["pushName"]) == ("6281234567890", "Ada")
    assert load_session(app, session.id).desired_state == "running"
    assert (profile / "Default" / "Cookies").exists()


def test_logout_clears_phone_push_name_and_wipes_the_profile(app, client, operator_key):
    session = _linked(app)
    profile = profile_dir(app, session.id)
    response = client.post(f"/api/sessions/{session.id}/logout", headers=auth(operator_key))
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == SESSION_FIELDS
    assert body["status"] == "disconnected"
    assert (body["phone"], body["pushName"], body["connectedAt"]) == (None, None, None)
    assert not profile.exists()
    row = load_session(app, session.id)
    assert (row.desired_state, row.phone, row.push_name) == ("stopped", None, None)
    assert row.qr_code is None


def test_delete_is_204_and_removes_rows_and_profile(app, client, operator_key):
    session = _linked(app, "doomed")
    keep = make_session(app, "kept")
    profile = profile_dir(app, session.id)
    kept_profile = profile_dir(app, keep.id)
    message = make_message(app, session.id)
    make_message(app, keep.id)
    with app.app_context():
        api_key_id = db.session.scalars(select(ApiKey.id)).one()
        db.session.add(IdempotencyKey(api_key_id=api_key_id, key="k1", request_hash="0" * 64,
                                      session_id=session.id, message_id=message.id))
        db.session.commit()
    response = client.delete(f"/api/sessions/{session.name}", headers=auth(operator_key))
    assert response.status_code == 204
    assert response.get_data() == b""
    assert_error(client.get(f"/api/sessions/{session.id}", headers=auth(operator_key)), 404)
    assert not profile.exists()
    assert kept_profile.exists()
    with app.app_context():
        assert db.session.get(Session, session.id) is None
        assert db.session.scalar(select(func.count()).select_from(Message)
                                 .where(Message.session_id == session.id)) == 0
        assert db.session.scalar(select(func.count()).select_from(IdempotencyKey)) == 0
        assert db.session.scalar(select(func.count()).select_from(Message)) == 1
    # The name is free again.
    assert client.post("/api/sessions", json={"name": "doomed"},
                       headers=auth(operator_key)).status_code == 201


def test_delete_twice_is_404(app, client, operator_key):
    session = make_session(app)
    response = client.delete(f"/api/sessions/{session.id}", headers=auth(operator_key))
    assert response.status_code == 204
    assert_error(client.delete(f"/api/sessions/{session.id}", headers=auth(operator_key)), 404)


@pytest.mark.parametrize("method, path", [("post", "/start"), ("post", "/stop"),
                                          ("post", "/restart"), ("post", "/logout"),
                                          ("delete", "")])
def test_lifecycle_routes_need_operator(app, client, viewer_key, method, path):
    session = _linked(app)
    response = getattr(client, method)(f"/api/sessions/{session.id}{path}",
                                       headers=auth(viewer_key))
    assert_error(response, 403)
    row = load_session(app, session.id)
    assert (row.status, row.desired_state, row.phone) == ("ready", "running", "6281234567890")


# -- QR -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("status, qr", [("created", None), ("initializing", None),
                                        ("ready", None), ("qr_ready", None),
                                        ("ready", RAW_QR)])
def test_qr_is_409_when_none_is_pending(app, client, operator_key, status, qr):
    session = make_session(app, status=status, qr_code=qr)
    for fmt in ("", "?format=raw", "?format=image"):
        response = client.get(f"/api/sessions/{session.id}/qr{fmt}", headers=auth(operator_key))
        assert_error(response, 409, "QR_NOT_AVAILABLE")


def test_qr_default_is_a_png_data_url_that_decodes_to_the_raw_string(app, client, operator_key):
    session = make_session(app, status="qr_ready", qr_code=RAW_QR)
    response = client.get(f"/api/sessions/{session.name}/qr", headers=auth(operator_key))
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"qrCode", "status"}
    assert body["status"] == "qr_ready"
    prefix = "data:image/png;base64,"
    assert body["qrCode"].startswith(prefix)
    assert decode_png(base64.b64decode(body["qrCode"][len(prefix):], validate=True)) == [RAW_QR]


def test_qr_format_raw_gives_the_raw_string(app, client, operator_key):
    session = make_session(app, status="qr_ready", qr_code=RAW_QR)
    response = client.get(f"/api/sessions/{session.id}/qr?format=raw", headers=auth(operator_key))
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.get_json() == {"qr": RAW_QR}


def test_qr_format_image_gives_png_bytes(app, client, operator_key):
    session = make_session(app, status="qr_ready", qr_code=RAW_QR)
    response = client.get(f"/api/sessions/{session.id}/qr?format=image", headers=auth(operator_key))
    assert response.status_code == 200
    assert response.mimetype == "image/png"
    assert decode_png(response.get_data()) == [RAW_QR]


def test_qr_format_base64_gives_bare_base64_png(app, client, operator_key):
    session = make_session(app, status="qr_ready", qr_code=RAW_QR)
    response = client.get(f"/api/sessions/{session.id}/qr?format=base64",
                          headers=auth(operator_key))
    body = response.get_json()
    assert body["status"] == "qr_ready"
    assert decode_png(base64.b64decode(body["qrCode"], validate=True)) == [RAW_QR]


def test_qr_with_an_unknown_format_is_400(app, client, operator_key):
    session = make_session(app, status="qr_ready", qr_code=RAW_QR)
    response = client.get(f"/api/sessions/{session.id}/qr?format=svg", headers=auth(operator_key))
    assert_validation_error(response, "format")


def test_qr_needs_operator(app, client, viewer_key):
    session = make_session(app, status="qr_ready", qr_code=RAW_QR)
    response = client.get(f"/api/sessions/{session.id}/qr?format=raw", headers=auth(viewer_key))
    assert_error(response, 403)
    assert RAW_QR not in response.get_data(as_text=True)


# -- pairing code ---------------------------------------------------------------------------------
def test_pairing_code_of_a_session_that_is_not_started_is_409(app, client, operator_key):
    session = make_session(app)
    response = client.post(f"/api/sessions/{session.id}/pairing-code",
                           json={"phoneNumber": "6281234567890"}, headers=auth(operator_key))
    assert_error(response, 409, "SESSION_NOT_STARTED")


@pytest.mark.parametrize("body", [{}, {"phoneNumber": "abc"}, {"phoneNumber": "123"},
                                  {"phoneNumber": 6281234567890},
                                  {"phoneNumber": "6281234567890", "extra": 1}])
def test_pairing_code_with_an_invalid_body_is_400(app, client, operator_key, body):
    session = make_session(app, status="initializing", desired_state="running")
    response = client.post(f"/api/sessions/{session.id}/pairing-code", json=body,
                           headers=auth(operator_key))
    assert_validation_error(response)


def test_pairing_code_without_a_session_host_is_504(app, client, operator_key):
    session = make_session(app, status="initializing", desired_state="running")
    response = client.post(f"/api/sessions/{session.id}/pairing-code",
                           json={"phoneNumber": "+6281234567890"}, headers=auth(operator_key))
    assert_error(response, 504, "ENGINE_TIMEOUT")


# -- contacts, chats, groups (engine calls) -------------------------------------------------------
ENGINE_READS = ["/contacts", "/chats", "/groups", "/contacts/check/6281234567890"]
# Each waits ENGINE_CALL_TIMEOUT (1 s); the number check takes the same path as the lists.
ENGINE_TIMEOUTS = ["/contacts", "/chats", "/groups"]


@pytest.mark.parametrize("path", ENGINE_READS)
@pytest.mark.parametrize("status", ["created", "qr_ready", "disconnected"])
def test_engine_reads_of_a_session_that_is_not_ready_are_409(app, client, viewer_key, path, status):
    session = make_session(app, status=status)
    response = client.get(f"/api/sessions/{session.id}{path}", headers=auth(viewer_key))
    body = assert_error(response, 409, "SESSION_NOT_READY")
    assert status in body["message"]


@pytest.mark.parametrize("path", ENGINE_TIMEOUTS)
def test_engine_reads_without_a_session_host_are_504(app, client, viewer_key, path):
    session = make_session(app, status="ready", desired_state="running")
    response = client.get(f"/api/sessions/{session.name}{path}", headers=auth(viewer_key))
    body = assert_error(response, 504, "ENGINE_TIMEOUT")
    assert body["error"] == "Gateway Timeout"


@pytest.mark.parametrize("number", ["abc", "1234", "1" * 21])
def test_check_number_with_an_invalid_number_is_400(app, client, viewer_key, number):
    session = make_session(app, status="ready")
    response = client.get(f"/api/sessions/{session.id}/contacts/check/{number}",
                          headers=auth(viewer_key))
    assert_validation_error(response, "number")


@pytest.mark.parametrize("path", ENGINE_READS)
def test_engine_reads_of_an_unknown_session_are_404(client, viewer_key, path):
    assert_error(client.get(f"/api/sessions/nobody{path}", headers=auth(viewer_key)), 404)
