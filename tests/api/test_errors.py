"""Every error, whatever raised it, has the OpenWA shape
``{statusCode, message, error[, code]}``."""
from __future__ import annotations

import pytest
from flask import abort
from sqlalchemy.exc import ProgrammingError

from app import create_app
from app.errors import ApiError
from app.extensions import limiter
from tests.conftest import auth, make_config
from tests.factories import assert_error, assert_validation_error, make_session

TEXT_URL = "/api/sessions/{}/messages/send-text"


# -- 400 ------------------------------------------------------------------------------------------
def test_validation_failure_is_400_with_a_list_of_field_messages(client, operator_key):
    response = client.post("/api/sessions", json={}, headers=auth(operator_key))
    messages = assert_validation_error(response, "name")
    assert messages == ["name: Missing data for required field."]


def test_several_invalid_fields_are_all_listed(client, app, operator_key):
    session = make_session(app, status="ready")
    response = client.post(TEXT_URL.format(session.id), json={"chatId": "x", "text": ""},
                           headers=auth(operator_key))
    messages = assert_validation_error(response, "chatId", "text")
    assert len(messages) == 2


def test_unknown_body_field_is_400(client, operator_key):
    response = client.post("/api/sessions", json={"name": "valid-name", "engine": "x"},
                           headers=auth(operator_key))
    assert assert_validation_error(response, "engine") == ["engine: Unknown field."]


def test_malformed_json_is_400(client, operator_key):
    response = client.post("/api/sessions", data='{"name": "abc",', content_type="application/json",
                           headers=auth(operator_key))
    assert assert_validation_error(response) == ["Invalid JSON body."]


def test_a_json_body_that_is_not_an_object_is_400(client, operator_key):
    for body in ([{"name": "abc"}], "abc", 42, None):
        response = client.post("/api/sessions", json=body, headers=auth(operator_key))
        assert_validation_error(response)


@pytest.mark.parametrize("body, fields", [
    ({"chatId": 6281234567890, "text": "hi"}, ["chatId"]),
    ({"chatId": "6281234567890", "text": ["hi"]}, ["text"]),
    ({"chatId": "6281234567890", "text": {"body": "hi"}}, ["text"]),
    ({"chatId": None, "text": None}, ["chatId", "text"]),
    ({"chatId": "6281234567890", "text": "hi", "mentions": "6281234567890"}, ["mentions"]),
])
def test_wrong_types_are_400(client, app, operator_key, body, fields):
    session = make_session(app, status="ready")
    response = client.post(TEXT_URL.format(session.id), json=body, headers=auth(operator_key))
    assert_validation_error(response, *fields)


@pytest.mark.parametrize("body, field", [
    ({"chatId": "6281234567890", "text": "a\x00b"}, "text"),
    ({"chatId": "62812\x0034567890", "text": "hi"}, "chatId"),
    ({"chatId": "6281234567890", "text": "hi", "quotedMessageId": "x\x00"}, "quotedMessageId"),
])
def test_nul_bytes_in_strings_are_400(client, app, operator_key, body, field):
    session = make_session(app, status="ready")
    response = client.post(TEXT_URL.format(session.id), json=body, headers=auth(operator_key))
    assert_validation_error(response, field)


def test_nul_byte_in_a_session_name_is_400(client, operator_key):
    response = client.post("/api/sessions", json={"name": "abc\x00def"}, headers=auth(operator_key))
    assert_validation_error(response, "name")


def test_text_over_4096_characters_is_400(client, app, operator_key):
    session = make_session(app, status="ready")
    response = client.post(TEXT_URL.format(session.id),
                           json={"chatId": "6281234567890", "text": "x" * 4097},
                           headers=auth(operator_key))
    assert_validation_error(response, "text")


@pytest.mark.parametrize("chat_id", ["hello", "", "123", "abc@c.us", "6281234567890@s.whatsapp.net",
                                     "12345678901234567890123", "+62 812 abc", "62812@g.us.evil"])
def test_chat_id_that_is_neither_a_number_nor_a_whatsapp_id_is_400(
        client, app, operator_key, chat_id):
    session = make_session(app, status="ready")
    response = client.post(TEXT_URL.format(session.id), json={"chatId": chat_id, "text": "hi"},
                           headers=auth(operator_key))
    assert_validation_error(response, "chatId")


# -- 401 / 403 ------------------------------------------------------------------------------------
def test_missing_key_is_401(client):
    body = assert_error(client.get("/api/sessions"), 401)
    assert body["error"] == "Unauthorized"
    assert isinstance(body["message"], str)


def test_role_refused_is_403(client, viewer_key):
    response = client.post("/api/sessions", json={"name": "abc"}, headers=auth(viewer_key))
    body = assert_error(response, 403)
    assert "operator" in body["message"]


# -- 404 / 405 ------------------------------------------------------------------------------------
def test_unknown_route_is_404_in_the_error_shape(client, viewer_key):
    body = assert_error(client.get("/api/no-such-thing", headers=auth(viewer_key)), 404)
    assert body["error"] == "Not Found"


def test_unknown_resource_is_404_naming_it(client, viewer_key):
    body = assert_error(client.get("/api/sessions/ghost", headers=auth(viewer_key)), 404)
    assert body["message"] == "Session 'ghost' not found"


def test_wrong_method_is_405_in_the_error_shape(client, operator_key):
    body = assert_error(client.patch("/api/sessions", json={}, headers=auth(operator_key)), 405)
    assert body["error"] == "Method Not Allowed"


# -- 409 / 413 ------------------------------------------------------------------------------------
def test_conflict_is_409_with_a_code(client, app, operator_key):
    session = make_session(app, status="created")
    response = client.post(TEXT_URL.format(session.id),
                           json={"chatId": "6281234567890", "text": "hi"},
                           headers=auth(operator_key))
    body = assert_error(response, 409, "SESSION_NOT_READY")
    assert body["error"] == "Conflict"


def test_body_over_the_size_limit_is_413(client, operator_key):
    too_big = b'{"name": "' + b"x" * (21 * 1024 * 1024) + b'"}'
    response = client.post("/api/sessions", data=too_big, content_type="application/json",
                           headers=auth(operator_key))
    body = assert_error(response, 413)
    assert body["error"] == "Request Entity Too Large"


# -- 500 ------------------------------------------------------------------------------------------
SECRET_SQL = "SELECT key_hash FROM api_keys WHERE secret = 'hunter2'"


def _boom_routes(app):
    def crash():
        raise RuntimeError("database password is hunter2")

    def crash_sql():
        raise ProgrammingError(SECRET_SQL, {"secret": "hunter2"}, Exception("syntax error hunter2"))

    def crash_abort():
        abort(500, description="hunter2 leaked through abort")

    app.add_url_rule("/api/_test/crash", "crash", crash)
    app.add_url_rule("/api/_test/crash-sql", "crash_sql", crash_sql)
    app.add_url_rule("/api/_test/crash-abort", "crash_abort", crash_abort)


@pytest.mark.parametrize("path", ["/api/_test/crash", "/api/_test/crash-sql",
                                  "/api/_test/crash-abort"])
def test_a_500_never_leaks_a_traceback_or_sql(app, path):
    _boom_routes(app)
    response = app.test_client().get(path)
    body = assert_error(response, 500)
    assert body == {"statusCode": 500, "message": body["message"], "error": "Internal Server Error"}
    text = response.get_data(as_text=True)
    for leak in ("hunter2", "Traceback", "SELECT", "File \"", "RuntimeError", "ProgrammingError"):
        assert leak not in text


def test_an_api_error_keeps_its_status_code_and_headers(app):
    def unavailable():
        raise ApiError("Message broker is unavailable", status=503, code="BROKER_UNAVAILABLE",
                       headers={"Retry-After": "5"})

    app.add_url_rule("/api/_test/unavailable", "unavailable", unavailable)
    response = app.test_client().get("/api/_test/unavailable")
    assert assert_error(response, 503, "BROKER_UNAVAILABLE") == {
        "statusCode": 503, "message": "Message broker is unavailable",
        "error": "Service Unavailable", "code": "BROKER_UNAVAILABLE"}
    # The rate limiter may only push Retry-After later, never earlier.
    assert int(response.headers["Retry-After"]) >= 5


# -- 429 ------------------------------------------------------------------------------------------
def test_a_request_over_a_limit_is_429_with_retry_after_and_code(app, make_key):
    """The shape and headers of a rate-limit refusal, on a throwaway route limited to 2."""
    app.add_url_rule("/api/_test/limited", "limited",
                     limiter.limit("2 per minute")(lambda: {"ok": True}))
    client = app.test_client()
    key = make_key("viewer")
    for _ in range(2):
        assert client.get("/api/_test/limited", headers=auth(key)).status_code == 200
    response = client.get("/api/_test/limited", headers=auth(key))
    assert assert_error(response, 429, "RATE_LIMITED") == {
        "statusCode": 429, "message": "Too many requests", "error": "Too Many Requests",
        "code": "RATE_LIMITED"}
    retry_after = response.headers.get("Retry-After")
    assert retry_after is not None and retry_after.isdigit() and 1 <= int(retry_after) <= 60


@pytest.fixture
def limited_app(app, tmp_path, backend, redis_available):
    """A second app on the same database with RATE_LIMIT_MAX=3."""
    limited = create_app(make_config(tmp_path / "limited", backend, redis_available,
                                     rate_limit_max=3))
    limited.config["TESTING"] = True
    return limited


def test_rate_limit_max_refuses_the_fourth_request_with_429(limited_app, make_key):
    key = make_key("viewer")
    client = limited_app.test_client()
    for _ in range(3):
        assert client.get("/api/sessions", headers=auth(key)).status_code == 200
    response = client.get("/api/sessions", headers=auth(key))
    body = assert_error(response, 429, "RATE_LIMITED")
    assert body["error"] == "Too Many Requests"
    retry_after = response.headers.get("Retry-After")
    assert retry_after is not None and retry_after.isdigit() and int(retry_after) >= 1


def test_rate_limit_counts_each_key_separately(limited_app, make_key):
    first, second = make_key("viewer"), make_key("viewer")
    client = limited_app.test_client()
    for _ in range(3):
        client.get("/api/sessions", headers=auth(first))
    assert client.get("/api/sessions", headers=auth(first)).status_code == 429
    assert client.get("/api/sessions", headers=auth(second)).status_code == 200


def test_unauthenticated_requests_are_rate_limited_by_address(limited_app):
    client = limited_app.test_client()
    for _ in range(3):
        assert client.get("/api/sessions").status_code == 401
    assert_error(client.get("/api/sessions"), 429, "RATE_LIMITED")


def test_health_routes_are_exempt_from_the_rate_limit(limited_app, make_key):
    key = make_key("viewer")
    client = limited_app.test_client()
    for _ in range(3):
        client.get("/api/sessions", headers=auth(key))
    assert client.get("/api/sessions", headers=auth(key)).status_code == 429
    for _ in range(2):
        for path in ("/health", "/api/health", "/api/health/live", "/health/live",
                     "/api/health/ready"):
            assert client.get(path).status_code == 200, path
        assert client.get("/api/health/detailed", headers=auth(key)).status_code == 200


def test_health_routes_are_exempt_from_rate_limits(app):
    """Health calls are never counted: no rate-limit headers, however many are made."""
    client = app.test_client()
    for _ in range(5):
        for path in ("/health", "/api/health", "/api/health/live", "/health/live",
                     "/api/health/ready", "/health/ready"):
            response = client.get(path)
            assert response.status_code == 200, path
            assert "X-RateLimit-Limit" not in response.headers, path
