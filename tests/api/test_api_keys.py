"""API keys: authentication, roles, scopes, key management and the bootstrap admin key."""
from __future__ import annotations

import hashlib
import hmac
import re
import stat
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from app import create_app
from app.extensions import db
from app.models import ApiKey
from app.services import api_keys
from tests.conftest import auth, make_config
from tests.factories import assert_error, assert_validation_error, make_session

KEY_FORMAT = re.compile(r"^owa_k1_[0-9a-f]{64}$")
KEY_FIELDS = {"id", "name", "keyPrefix", "role", "allowedSessions", "allowedIps", "isActive",
              "expiresAt", "lastUsedAt", "usageCount", "createdAt", "updatedAt",
              "allowedChats"}  # issue 13.7
KEYS_URL = "/api/auth/api-keys"


def key_row(app, raw: str) -> ApiKey | None:
    with app.app_context():
        row = db.session.scalar(select(ApiKey).where(ApiKey.key_prefix == raw[:12]))
        if row is not None:
            db.session.expunge(row)
        return row


def key_id(app, raw: str) -> str:
    row = key_row(app, raw)
    assert row is not None
    return row.id


def create_key(client, admin_key: str, **body) -> dict:
    response = client.post(KEYS_URL, json={"name": "made-by-test", **body}, headers=auth(admin_key))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def future(days: int = 30) -> str:
    return (datetime.now(timezone.utc) + timedelta(days=days)).isoformat()


# -- presenting a key -----------------------------------------------------------------------------
def test_x_api_key_header_authenticates(client, viewer_key):
    response = client.get("/api/sessions", headers={"X-API-Key": viewer_key})
    assert response.status_code == 200
    assert response.get_json() == []


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_authorization_bearer_authenticates(client, viewer_key, scheme):
    response = client.get("/api/sessions", headers={"Authorization": f"{scheme} {viewer_key}"})
    assert response.status_code == 200
    assert response.get_json() == []


def test_x_api_key_wins_over_bearer_when_both_are_given(client, viewer_key, admin_key):
    # A valid X-API-Key with a garbage bearer: the X-API-Key is used.
    response = client.get("/api/sessions", headers={"X-API-Key": viewer_key,
                                                    "Authorization": "Bearer owa_k1_garbage"})
    assert response.status_code == 200
    # A garbage X-API-Key with a valid bearer: still the X-API-Key, so 401.
    response = client.get("/api/sessions", headers={"X-API-Key": "owa_k1_garbage",
                                                    "Authorization": f"Bearer {admin_key}"})
    assert_error(response, 401)
    # A viewer X-API-Key with an admin bearer: the viewer's role decides.
    response = client.get(KEYS_URL, headers={"X-API-Key": viewer_key,
                                             "Authorization": f"Bearer {admin_key}"})
    assert_error(response, 403)
    response = client.post("/api/auth/validate", headers={"X-API-Key": viewer_key,
                                                          "Authorization": f"Bearer {admin_key}"})
    assert response.get_json()["role"] == "viewer"


@pytest.mark.parametrize("param", ["api_key", "apiKey", "apikey", "key", "token", "access_token",
                                   "x-api-key"])
def test_a_key_in_the_query_string_is_ignored(client, admin_key, param):
    body = assert_error(client.get(f"/api/sessions?{param}={admin_key}"), 401)
    assert body["message"] == "API key is missing"


@pytest.mark.parametrize("header", [
    {},
    {"X-API-Key": ""},
    {"Authorization": "Bearer "},
    {"Authorization": "Basic dXNlcjpwYXNz"},
])
def test_no_usable_key_is_401(client, header):
    body = assert_error(client.get("/api/sessions", headers=header), 401)
    assert body == {"statusCode": 401, "message": "API key is missing", "error": "Unauthorized"}


@pytest.mark.parametrize("presented", [
    "owa_k1_" + "0" * 64,
    "not-a-key",
    "owa_k1_" + "f" * 63,
])
def test_an_unknown_key_is_401(client, admin_key, presented):
    body = assert_error(client.get("/api/sessions", headers=auth(presented)), 401)
    assert body["message"] == "Invalid API key"


def test_a_revoked_key_is_401(app, client, admin_key, make_key):
    raw = make_key("operator")
    assert client.get("/api/sessions", headers=auth(raw)).status_code == 200
    response = client.post(f"{KEYS_URL}/{key_id(app, raw)}/revoke", headers=auth(admin_key))
    assert response.status_code == 200
    body = assert_error(client.get("/api/sessions", headers=auth(raw)), 401)
    assert body["message"] == "API key has been revoked"


def test_an_expired_key_is_401(app, client, make_key):
    raw = make_key("operator", expires_at=datetime.now(timezone.utc) + timedelta(hours=1))
    assert client.get("/api/sessions", headers=auth(raw)).status_code == 200
    with app.app_context():
        row = db.session.get(ApiKey, key_id(app, raw))
        row.expires_at = datetime.now(timezone.utc) - timedelta(seconds=1)
        db.session.commit()
    body = assert_error(client.get("/api/sessions", headers=auth(raw)), 401)
    assert body["message"] == "API key has expired"


def test_use_updates_last_used_at_and_usage_count(app, client, admin_key, make_key):
    raw = make_key("viewer")
    before = client.get(f"{KEYS_URL}/{key_id(app, raw)}", headers=auth(admin_key)).get_json()
    assert before["usageCount"] == 0 and before["lastUsedAt"] is None
    started = datetime.now(timezone.utc) - timedelta(seconds=1)
    for _ in range(3):
        assert client.get("/api/sessions", headers=auth(raw)).status_code == 200
    after = client.get(f"{KEYS_URL}/{key_id(app, raw)}", headers=auth(admin_key)).get_json()
    assert after["usageCount"] == 3
    last_used = datetime.fromisoformat(after["lastUsedAt"].replace("Z", "+00:00"))
    assert started <= last_used <= datetime.now(timezone.utc) + timedelta(seconds=1)


def _stored_usage(app, raw):
    from app.extensions import db
    from app.models import ApiKey

    with app.app_context():
        key = db.session.get(ApiKey, key_id(app, raw))
        return key.usage_count, key.last_used_at


def test_usage_is_written_in_the_background_within_a_second_not_per_request(app, client, make_key):
    """A request does not write its key's row (that write was one commit per request on one
    shared row); the process writes the sum at most a second later, nobody asking."""
    import time

    raw = make_key("viewer")
    for _ in range(5):
        assert client.get("/api/sessions", headers=auth(raw)).status_code == 200
    assert _stored_usage(app, raw) == (0, None)  # not yet: written by the timer
    deadline = time.monotonic() + 5
    while _stored_usage(app, raw)[0] != 5 and time.monotonic() < deadline:
        time.sleep(0.1)
    count, last_used = _stored_usage(app, raw)
    assert count == 5 and last_used is not None


# -- roles ----------------------------------------------------------------------------------------
RANK = {"viewer": 0, "operator": 1, "admin": 2}
ROUTES = [
    ("get", "/api/sessions", None, "viewer"),
    ("get", "/api/sessions/{sid}", None, "viewer"),
    ("get", "/api/sessions/{sid}/messages", None, "viewer"),
    ("post", "/api/auth/validate", None, "viewer"),
    ("get", "/api/health/detailed", None, "viewer"),
    ("post", "/api/sessions", {"name": "ladder-new"}, "operator"),
    ("post", "/api/sessions/{sid}/stop", None, "operator"),
    ("get", "/api/sessions/{sid}/qr", None, "operator"),
    ("post", "/api/sessions/{sid}/messages/send-text", {"chatId": "6281234567890", "text": "hi"},
     "operator"),
    ("get", KEYS_URL, None, "admin"),
    ("post", KEYS_URL, {"name": "ladder-key"}, "admin"),
]


@pytest.mark.parametrize("role", ["viewer", "operator", "admin"])
def test_role_ladder_viewer_operator_admin(app, client, make_key, role):
    session = make_session(app, "ladder")
    raw = make_key(role)
    for method, path, body, needed in ROUTES:
        url = path.format(sid=session.id)
        response = getattr(client, method)(url, json=body, headers=auth(raw))
        if RANK[role] >= RANK[needed]:
            assert response.status_code not in (401, 403), (role, method, url, response.get_json())
        else:
            error = assert_error(response, 403)
            assert needed in error["message"], (role, url, error)


# -- session scopes -------------------------------------------------------------------------------
@pytest.mark.parametrize("by", ["id", "name"])
def test_allowed_sessions_scope_refuses_other_sessions_with_403(app, client, make_key, by):
    mine, other = make_session(app, "mine"), make_session(app, "other")
    raw = make_key("operator", allowed_sessions=[getattr(mine, by)])
    for sid in (mine.id, mine.name):
        response = client.get(f"/api/sessions/{sid}", headers=auth(raw))
        assert response.status_code == 200
        assert response.get_json()["id"] == mine.id
    for sid in (other.id, other.name):
        assert_error(client.get(f"/api/sessions/{sid}", headers=auth(raw)), 403)
        assert_error(client.get(f"/api/sessions/{sid}/messages", headers=auth(raw)), 403)
        assert_error(client.post(f"/api/sessions/{sid}/start", headers=auth(raw)), 403)
    # A scoped key cannot even learn whether a session outside its scope exists.
    assert_error(client.get("/api/sessions/ghost", headers=auth(raw)), 403)


@pytest.mark.parametrize("by", ["id", "name"])
def test_allowed_sessions_scope_filters_the_list(app, client, make_key, viewer_key, by):
    mine = make_session(app, "mine", status="ready")
    make_session(app, "other", status="ready")
    make_session(app, "third")
    raw = make_key("viewer", allowed_sessions=[getattr(mine, by)])
    listed = client.get("/api/sessions", headers=auth(raw)).get_json()
    assert [s["id"] for s in listed] == [mine.id]
    assert client.get("/api/sessions?status=ready", headers=auth(raw)).get_json() == listed
    assert client.get("/api/sessions?status=created", headers=auth(raw)).get_json() == []
    assert len(client.get("/api/sessions", headers=auth(viewer_key)).get_json()) == 3


def test_a_scoped_key_creates_only_sessions_inside_its_scope(app, client, make_key):
    raw = make_key("operator", allowed_sessions=["alpha"])
    assert_error(client.post("/api/sessions", json={"name": "beta"}, headers=auth(raw)), 403)
    response = client.post("/api/sessions", json={"name": "alpha"}, headers=auth(raw))
    assert response.status_code == 201
    listed = client.get("/api/sessions", headers=auth(raw)).get_json()
    assert [s["name"] for s in listed] == ["alpha"]


def test_session_scope_is_checked_before_the_role(app, client, make_key):
    mine, other = make_session(app, "mine"), make_session(app, "other")
    raw = make_key("viewer", allowed_sessions=[mine.id])
    outside = assert_error(client.post(f"/api/sessions/{other.name}/start", headers=auth(raw)), 403)
    inside = assert_error(client.post(f"/api/sessions/{mine.name}/start", headers=auth(raw)), 403)
    assert "other" in outside["message"] and "operator" not in outside["message"]
    assert "operator" in inside["message"]


# -- IP scopes ------------------------------------------------------------------------------------
@pytest.mark.parametrize("allowed, inside, outside", [
    (["10.0.0.0/8"], ["10.0.0.5", "10.255.1.1"], ["192.168.1.5", "127.0.0.1", "2001:db8::1"]),
    (["203.0.113.7"], ["203.0.113.7"], ["203.0.113.8"]),
    (["2001:db8::/32"], ["2001:db8::1", "2001:db8:ffff::9"], ["2001:db9::1", "10.0.0.5", "::1"]),
    (["192.168.0.0/16", "fd00::/8"], ["192.168.3.4", "fd12::1"], ["10.0.0.5", "fe80::1"]),
])
def test_allowed_ips_refuses_other_addresses_with_403(client, make_key, allowed, inside, outside):
    raw = make_key("viewer", allowed_ips=allowed)
    for address in inside:
        response = client.get("/api/sessions", headers=auth(raw),
                              environ_base={"REMOTE_ADDR": address})
        assert response.status_code == 200, address
    for address in outside:
        response = client.get("/api/sessions", headers=auth(raw),
                              environ_base={"REMOTE_ADDR": address})
        body = assert_error(response, 403)
        assert "address" in body["message"], address


def test_a_forwarded_for_header_does_not_get_around_allowed_ips(client, make_key):
    raw = make_key("viewer", allowed_ips=["10.0.0.0/8"])
    response = client.get("/api/sessions", headers={**auth(raw), "X-Forwarded-For": "10.0.0.5",
                                                    "X-Real-IP": "10.0.0.5"},
                          environ_base={"REMOTE_ADDR": "198.51.100.9"})
    assert_error(response, 403)


def test_allowed_ips_are_normalised_to_networks(client, admin_key):
    created = create_key(client, admin_key,
                         allowedIps=["10.1.2.3/8", "203.0.113.7", "2001:DB8::/32"])
    assert created["allowedIps"] == ["10.0.0.0/8", "203.0.113.7/32", "2001:db8::/32"]


def test_an_invalid_allowed_ip_is_400(client, admin_key):
    response = client.post(KEYS_URL, json={"name": "bad-ip", "allowedIps": ["10.0.0.300"]},
                           headers=auth(admin_key))
    assert_validation_error(response, "allowedIps")


# -- /api/auth/validate ---------------------------------------------------------------------------
@pytest.mark.parametrize("role", ["viewer", "operator", "admin"])
def test_validate_answers_valid_role_and_scoped(client, make_key, role):
    response = client.post("/api/auth/validate", headers=auth(make_key(role)))
    assert response.status_code == 200
    assert response.get_json() == {"valid": True, "role": role, "scoped": False}


@pytest.mark.parametrize("scope", [{"allowed_sessions": ["any"]}, {"allowed_ips": ["10.0.0.0/8"]}])
def test_validate_reports_a_scoped_key(client, make_key, scope):
    response = client.post("/api/auth/validate", headers=auth(make_key("viewer", **scope)),
                           environ_base={"REMOTE_ADDR": "10.0.0.5"})
    assert response.get_json() == {"valid": True, "role": "viewer", "scoped": True}


def test_validate_with_an_unknown_key_is_401(client, admin_key):
    assert_error(client.post("/api/auth/validate", headers=auth("owa_k1_" + "a" * 64)), 401)


# -- key management -------------------------------------------------------------------------------
def test_create_returns_201_with_the_plaintext_key_once(app, client, admin_key):
    response = client.post(KEYS_URL, json={"name": "ci"}, headers=auth(admin_key))
    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == KEY_FIELDS | {"apiKey"}
    assert KEY_FORMAT.match(body["apiKey"])
    assert body["keyPrefix"] == body["apiKey"][:12]
    assert body["name"] == "ci"
    assert body["role"] == "operator"
    assert body["isActive"] is True
    assert body["usageCount"] == 0
    assert body["allowedSessions"] is None and body["allowedIps"] is None
    assert body["expiresAt"] is None and body["lastUsedAt"] is None
    # The new key works with its role.
    validate = client.post("/api/auth/validate", headers=auth(body["apiKey"]))
    assert validate.get_json() == {"valid": True, "role": "operator", "scoped": False}


def test_create_with_every_field(client, admin_key):
    expires = future()
    body = create_key(client, admin_key, name="scoped", role="viewer", allowedSessions=["alpha"],
                      allowedIps=["10.0.0.0/8", "2001:db8::/32"], expiresAt=expires)
    assert body["role"] == "viewer"
    assert body["allowedSessions"] == ["alpha"]
    assert body["allowedIps"] == ["10.0.0.0/8", "2001:db8::/32"]
    assert datetime.fromisoformat(body["expiresAt"]) == datetime.fromisoformat(expires)


def test_each_created_key_is_different(client, admin_key):
    keys = {create_key(client, admin_key)["apiKey"] for _ in range(5)}
    assert len(keys) == 5


def test_the_stored_hash_is_sha256_of_the_key_never_the_key(app, client, admin_key):
    raw = create_key(client, admin_key)["apiKey"]
    row = key_row(app, raw)
    assert row.key_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert row.key_hash != raw and raw not in row.key_hash
    assert row.key_prefix == raw[:12]
    with app.app_context():
        stored = [str(value) for row in db.session.execute(select(ApiKey.__table__)).all()
                  for value in row]
    assert all(raw not in value for value in stored)


def test_with_a_pepper_the_stored_hash_is_an_hmac(app, tmp_path, backend, redis_available):
    peppered = create_app(make_config(tmp_path / "peppered", backend, redis_available,
                                      api_key_pepper="pepper-0123456789"))
    with peppered.app_context():
        key, raw = api_keys.create({"name": "admin", "role": "admin"}, peppered.config["OPENWA"])
        stored = key.key_hash
    assert stored == hmac.new(b"pepper-0123456789", raw.encode(), hashlib.sha256).hexdigest()
    assert stored != hashlib.sha256(raw.encode()).hexdigest()
    assert peppered.test_client().get(KEYS_URL, headers=auth(raw)).status_code == 200
    # Without the pepper the same key is unknown.
    assert_error(app.test_client().get(KEYS_URL, headers=auth(raw)), 401)


def test_list_never_shows_the_key_or_its_hash(app, client, admin_key):
    created = create_key(client, admin_key, name="listed")
    response = client.get(KEYS_URL, headers=auth(admin_key))
    assert response.status_code == 200
    listed = response.get_json()
    assert isinstance(listed, list) and len(listed) == 2
    assert all(set(item) == KEY_FIELDS for item in listed)
    assert {item["name"] for item in listed} >= {"listed"}
    text = response.get_data(as_text=True)
    for raw in (created["apiKey"], admin_key):
        assert raw not in text
        assert key_row(app, raw).key_hash not in text


def test_get_one_key_never_shows_the_key(app, client, admin_key):
    created = create_key(client, admin_key, name="one")
    response = client.get(f"{KEYS_URL}/{created['id']}", headers=auth(admin_key))
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == KEY_FIELDS
    assert body["id"] == created["id"] and body["name"] == "one"
    assert created["apiKey"] not in response.get_data(as_text=True)
    assert key_row(app, created["apiKey"]).key_hash not in response.get_data(as_text=True)


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_an_unknown_key_id_is_404(client, admin_key, method):
    body = {"name": "x"} if method == "put" else None
    response = getattr(client, method)(f"{KEYS_URL}/nope", json=body, headers=auth(admin_key))
    assert assert_error(response, 404)["message"] == "API key 'nope' not found"


@pytest.mark.parametrize("path", ["revoke", "rotate"])
def test_revoke_or_rotate_of_an_unknown_key_is_404(client, admin_key, path):
    assert_error(client.post(f"{KEYS_URL}/nope/{path}", headers=auth(admin_key)), 404)


@pytest.mark.parametrize("body, field", [
    ({}, "name"),
    ({"name": ""}, "name"),
    ({"name": "x" * 101}, "name"),
    ({"name": "x", "role": "root"}, "role"),
    ({"name": "x", "allowedSessions": "alpha"}, "allowedSessions"),
    ({"name": "x", "expiresAt": "tomorrow"}, "expiresAt"),
    ({"name": "x", "apiKey": "owa_k1_" + "0" * 64}, "apiKey"),
    ({"name": "x", "keyHash": "0" * 64}, "keyHash"),
])
def test_create_with_invalid_fields_is_400(client, admin_key, body, field):
    response = client.post(KEYS_URL, json=body, headers=auth(admin_key))
    assert_validation_error(response, field)


def test_create_with_an_expiry_in_the_past_is_400(client, admin_key):
    past = (datetime.now(timezone.utc) - timedelta(minutes=1)).isoformat()
    response = client.post(KEYS_URL, json={"name": "x", "expiresAt": past}, headers=auth(admin_key))
    assert_validation_error(response, "expiresAt")


def test_update_changes_name_role_and_scopes(client, admin_key):
    created = create_key(client, admin_key, name="before")
    response = client.put(f"{KEYS_URL}/{created['id']}", headers=auth(admin_key), json={
        "name": "after", "role": "viewer", "allowedSessions": ["alpha", "beta"],
        "allowedIps": ["10.0.0.0/8"], "expiresAt": future()})
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == KEY_FIELDS
    assert (body["name"], body["role"]) == ("after", "viewer")
    assert body["allowedSessions"] == ["alpha", "beta"]
    assert body["allowedIps"] == ["10.0.0.0/8"]
    assert body["expiresAt"] is not None
    # Clearing the scopes.
    body = client.put(f"{KEYS_URL}/{created['id']}", headers=auth(admin_key),
                      json={"allowedSessions": None, "allowedIps": []}).get_json()
    assert body["allowedSessions"] is None and body["allowedIps"] is None
    # The key itself is unchanged and now a viewer.
    validate = client.post("/api/auth/validate", headers=auth(created["apiKey"])).get_json()
    assert validate == {"valid": True, "role": "viewer", "scoped": False}


def test_update_to_inactive_makes_the_key_401_and_back(client, admin_key):
    created = create_key(client, admin_key)
    url = f"{KEYS_URL}/{created['id']}"
    assert client.put(url, json={"isActive": False}, headers=auth(admin_key)).status_code == 200
    assert_error(client.get("/api/sessions", headers=auth(created["apiKey"])), 401)
    assert client.put(url, json={"isActive": True}, headers=auth(admin_key)).status_code == 200
    assert client.get("/api/sessions", headers=auth(created["apiKey"])).status_code == 200


@pytest.mark.parametrize("body, field", [
    ({"role": "superuser"}, "role"),
    ({"apiKey": "owa_k1_" + "0" * 64}, "apiKey"),
    ({"isActive": "maybe"}, "isActive"),
    ({"allowedIps": ["not-an-ip"]}, "allowedIps"),
])
def test_update_with_invalid_fields_is_400(client, admin_key, body, field):
    created = create_key(client, admin_key)
    response = client.put(f"{KEYS_URL}/{created['id']}", json=body, headers=auth(admin_key))
    assert_validation_error(response, field)


def test_update_with_an_expiry_in_the_past_is_400(client, admin_key):
    created = create_key(client, admin_key)
    past = (datetime.now(timezone.utc) - timedelta(minutes=1)).isoformat()
    response = client.put(f"{KEYS_URL}/{created['id']}", json={"expiresAt": past},
                          headers=auth(admin_key))
    assert_validation_error(response, "expiresAt")
    assert client.get("/api/sessions", headers=auth(created["apiKey"])).status_code == 200


def test_delete_is_204_and_the_key_is_gone(app, client, admin_key):
    created = create_key(client, admin_key)
    response = client.delete(f"{KEYS_URL}/{created['id']}", headers=auth(admin_key))
    assert response.status_code == 204
    assert response.get_data() == b""
    assert_error(client.get(f"{KEYS_URL}/{created['id']}", headers=auth(admin_key)), 404)
    assert_error(client.get("/api/sessions", headers=auth(created["apiKey"])), 401)
    assert key_row(app, created["apiKey"]) is None


def test_revoke_answers_the_inactive_key_and_it_gets_401(client, admin_key):
    created = create_key(client, admin_key)
    response = client.post(f"{KEYS_URL}/{created['id']}/revoke", headers=auth(admin_key))
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == KEY_FIELDS
    assert body["id"] == created["id"] and body["isActive"] is False
    assert_error(client.get("/api/sessions", headers=auth(created["apiKey"])), 401)
    listed = {k["id"]: k for k in client.get(KEYS_URL, headers=auth(admin_key)).get_json()}
    assert listed[created["id"]]["isActive"] is False


def test_rotate_gives_a_new_secret_keeps_id_and_scopes_and_kills_the_old_one(client, admin_key):
    created = create_key(client, admin_key, role="viewer", allowedSessions=["alpha"],
                         allowedIps=["10.0.0.0/8"])
    old = created["apiKey"]
    environ = {"REMOTE_ADDR": "10.0.0.5"}
    assert client.get("/api/sessions", headers=auth(old), environ_base=environ).status_code == 200
    response = client.post(f"{KEYS_URL}/{created['id']}/rotate", headers=auth(admin_key))
    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == KEY_FIELDS | {"apiKey"}
    new = body["apiKey"]
    assert KEY_FORMAT.match(new) and new != old
    assert body["keyPrefix"] == new[:12]
    for field in ("id", "name", "role", "allowedSessions", "allowedIps", "isActive", "expiresAt"):
        assert body[field] == created[field], field
    assert_error(client.get("/api/sessions", headers=auth(old), environ_base=environ), 401)
    assert client.get("/api/sessions", headers=auth(new), environ_base=environ).status_code == 200
    # The plaintext is not shown again.
    again = client.get(f"{KEYS_URL}/{created['id']}", headers=auth(admin_key))
    assert new not in again.get_data(as_text=True)


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_key_management_needs_admin(app, client, make_key, admin_key, role):
    raw = make_key(role)
    target = create_key(client, admin_key)["id"]
    calls = [("get", KEYS_URL, None), ("post", KEYS_URL, {"name": "x"}),
             ("get", f"{KEYS_URL}/{target}", None), ("put", f"{KEYS_URL}/{target}", {"name": "y"}),
             ("delete", f"{KEYS_URL}/{target}", None),
             ("post", f"{KEYS_URL}/{target}/revoke", None),
             ("post", f"{KEYS_URL}/{target}/rotate", None)]
    for method, url, body in calls:
        assert_error(getattr(client, method)(url, json=body, headers=auth(raw)), 403)
    assert client.get(f"{KEYS_URL}/{target}", headers=auth(admin_key)).get_json()["isActive"]


# -- the last active admin key --------------------------------------------------------------------
@pytest.mark.parametrize("method, path, body", [
    ("post", "/revoke", None),
    ("delete", "", None),
    ("put", "", {"role": "operator"}),
    ("put", "", {"role": "viewer"}),
    ("put", "", {"isActive": False}),
])
def test_the_last_active_admin_key_cannot_be_removed(app, client, admin_key, method, path, body):
    url = f"{KEYS_URL}/{key_id(app, admin_key)}{path}"
    response = getattr(client, method)(url, json=body, headers=auth(admin_key))
    error = assert_error(response, 409, "LAST_ADMIN_KEY")
    assert "admin" in error["message"]
    validate = client.post("/api/auth/validate", headers=auth(admin_key)).get_json()
    assert validate == {"valid": True, "role": "admin", "scoped": False}


def test_an_admin_key_can_be_revoked_while_another_admin_remains(app, client, admin_key, make_key):
    second = make_key("admin")
    response = client.post(f"{KEYS_URL}/{key_id(app, admin_key)}/revoke", headers=auth(second))
    assert response.status_code == 200
    assert_error(client.get(KEYS_URL, headers=auth(admin_key)), 401)
    # Now the second is the last one.
    response = client.delete(f"{KEYS_URL}/{key_id(app, second)}", headers=auth(second))
    assert_error(response, 409, "LAST_ADMIN_KEY")


def test_an_inactive_admin_does_not_count_as_the_remaining_admin(app, client, admin_key, make_key):
    spare = make_key("admin")
    assert client.put(f"{KEYS_URL}/{key_id(app, spare)}", json={"isActive": False},
                      headers=auth(admin_key)).status_code == 200
    response = client.delete(f"{KEYS_URL}/{key_id(app, admin_key)}", headers=auth(admin_key))
    assert_error(response, 409, "LAST_ADMIN_KEY")


def test_an_expired_admin_does_not_count_as_the_remaining_admin(app, client, admin_key, make_key):
    spare = make_key("admin", expires_at=datetime.now(timezone.utc) + timedelta(hours=1))
    with app.app_context():
        db.session.get(ApiKey, key_id(app, spare)).expires_at = (
            datetime.now(timezone.utc) - timedelta(minutes=1))
        db.session.commit()
    response = client.post(f"{KEYS_URL}/{key_id(app, admin_key)}/revoke", headers=auth(admin_key))
    assert_error(response, 409, "LAST_ADMIN_KEY")
    assert client.get(KEYS_URL, headers=auth(admin_key)).status_code == 200


def test_an_inactive_admin_key_can_be_deleted_when_it_is_not_the_last(
        app, client, admin_key, make_key):
    spare = make_key("admin")
    url = f"{KEYS_URL}/{key_id(app, spare)}"
    assert client.post(f"{url}/revoke", headers=auth(admin_key)).status_code == 200
    assert client.delete(url, headers=auth(admin_key)).status_code == 204


# -- bootstrap ------------------------------------------------------------------------------------
def _key_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(ApiKey))


def test_bootstrap_uses_api_key_master_verbatim(app, client, capsys):
    config = app.config["OPENWA"]
    config.api_key_master = "my-own-master-key-0123456789"
    with app.app_context():
        assert api_keys.bootstrap_admin(config) is None
    assert _key_count(app) == 1
    response = client.get(KEYS_URL, headers=auth("my-own-master-key-0123456789"))
    assert response.status_code == 200
    [row] = response.get_json()
    assert row["role"] == "admin" and row["isActive"] is True
    assert row["keyPrefix"] == "my-own-maste"
    assert not api_keys.key_file(config).exists()
    assert "my-own-master-key-0123456789" not in capsys.readouterr().out


def test_bootstrap_without_master_writes_a_generated_key_with_mode_0600(app, client, capsys):
    config = app.config["OPENWA"]
    assert config.api_key_master is None
    with app.app_context():
        raw = api_keys.bootstrap_admin(config)
    assert raw is not None and KEY_FORMAT.match(raw)
    path = api_keys.key_file(config)
    assert path == config.data_dir / ".api-key"
    assert path.read_text().strip() == raw
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # Printed once, so the operator can learn it.
    assert raw in capsys.readouterr().out
    validate = client.post("/api/auth/validate", headers=auth(raw)).get_json()
    assert validate == {"valid": True, "role": "admin", "scoped": False}


def test_bootstrap_tightens_an_existing_key_file_to_0600(app):
    config = app.config["OPENWA"]
    path = api_keys.key_file(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("stale\n")
    path.chmod(0o644)
    with app.app_context():
        raw = api_keys.bootstrap_admin(config)
    assert path.read_text() == raw + "\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_bootstrap_does_nothing_when_keys_exist(app, viewer_key, capsys):
    config = app.config["OPENWA"]
    config.api_key_master = "master-that-must-not-be-used"
    with app.app_context():
        assert api_keys.bootstrap_admin(config) is None
    config.api_key_master = None
    with app.app_context():
        assert api_keys.bootstrap_admin(config) is None
    assert _key_count(app) == 1
    assert not api_keys.key_file(config).exists()
    assert capsys.readouterr().out == ""
    assert_error(app.test_client().get(KEYS_URL, headers=auth("master-that-must-not-be-used")), 401)


# -- allowedChats (issue 13.7) ------------------------------------------------------------------
def test_allowed_chats_are_normalised_stored_and_changed(client, admin_key):
    created = client.post(KEYS_URL, headers=auth(admin_key), json={
        "name": "chat-scoped", "allowedChats": ["+1 555 123 4567", "120363000000000001@g.us"]})
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert body["allowedChats"] == ["120363000000000001@g.us", "15551234567@c.us"]
    updated = client.put(f"{KEYS_URL}/{body['id']}", headers=auth(admin_key),
                         json={"allowedChats": []})
    assert updated.status_code == 200 and updated.get_json()["allowedChats"] is None
    bad = client.post(KEYS_URL, headers=auth(admin_key),
                      json={"name": "bad", "allowedChats": ["not a chat"]})
    assert bad.status_code == 400
