"""The auth matrix, generated from the OpenAPI document (issue 16): every secured operation
× every way a key can be refused → the documented 401/403. A new route is covered the
moment it is documented, and an undocumented or role-less one fails the first test.

Adding a refusal (``allowedChats`` of issue 13) is one entry in CASES.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from app.extensions import db
from app.models import ApiKey, utcnow
from app.services import api_keys
from tests.conftest import _key

METHODS = ("get", "post", "put", "patch", "delete")
ROLES = ("viewer", "operator", "admin")
PUBLIC = {"/health", "/health/live", "/health/ready",
          "/api/health", "/api/health/live", "/api/health/ready"}


@dataclass(frozen=True)
class Case:
    """One way to be refused: the key to present (None: none) and which operations it
    applies to (given the operation's role and path)."""

    name: str
    status: int
    key: Callable[[Any, dict[str, Any]], str | None]
    applies: Callable[[str, str], bool] = lambda role, path: True


def _set(app, raw: str, **values: Any) -> str:
    with app.app_context():
        key = db.session.scalar(db.select(ApiKey).where(
            ApiKey.key_hash == api_keys.hash_key(raw, app.config["OPENWA"].api_key_pepper)))
        for name, value in values.items():
            setattr(key, name, value)
        db.session.commit()
    return raw


CASES = [
    Case("no key", 401, lambda app, r: None),
    Case("wrong key", 401, lambda app, r: "owa_k1_" + "0" * 64),
    Case("malformed key", 401, lambda app, r: "Bearer-ish nonsense"),
    Case("revoked", 401, lambda app, r: _set(app, _key(app, "admin"), is_active=False)),
    Case("expired", 401,
         lambda app, r: _set(app, _key(app, "admin"), expires_at=utcnow() - timedelta(seconds=1))),
    Case("IP-denied", 403, lambda app, r: _key(app, "admin", allowed_ips=["192.0.2.0/24"])),
    Case("viewer where it writes", 403, lambda app, r: _key(app, "viewer"),
         lambda role, path: role in ("operator", "admin")),
    Case("operator on admin routes", 403, lambda app, r: _key(app, "operator"),
         lambda role, path: role == "admin"),
    Case("other session's scope", 403,
         lambda app, r: _key(app, "admin", allowed_sessions=["someone-else"]),
         lambda role, path: "{sid}" in path),
    # allowedChats (issue 13.7): default-deny on chat routes; only the lists are filtered.
    Case("other chat's scope", 403,
         lambda app, r: _key(app, "admin", allowed_chats=["15550000001@c.us"]),
         lambda role, path: re.search(r"/\{sid\}/(messages|chats|contacts|groups|presence)", path)
         is not None and re.search(r"/\{sid\}/(chats|contacts|groups)$", path) is None),
]


@pytest.fixture
def document(client) -> dict[str, Any]:
    return client.get("/api/openapi.json").get_json()  # type: ignore[no-any-return]


def secured_operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, operation) for path, item in document["paths"].items()
            for method, operation in item.items()
            if method in METHODS and operation.get("security") != []]


@pytest.fixture
def resources(client, admin_key) -> dict[str, str]:
    """A real resource behind every path parameter, so a refusal is not a 404 in disguise."""
    headers = {"X-API-Key": admin_key}
    sid = client.post("/api/sessions", json={"name": "matrix"}, headers=headers).get_json()["id"]
    key_id = client.post("/api/auth/api-keys", json={"name": "target"}, headers=headers).get_json()["id"]
    return {"sid": sid, "key_id": key_id, "webhook_id": "w-1", "message_id": "m-1", "batch_id": "b-1",
            "delivery_id": "d-1", "number": "15551234567", "chatId": "15551234567@c.us",
            "contactId": "15551234567@c.us", "groupId": "120363000000000001@g.us"}


def test_every_operation_is_public_or_names_its_role(document):
    unguarded = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            if operation.get("security") == []:
                if path not in PUBLIC:
                    unguarded.append(f"{method.upper()} {path} (public)")
            elif path != "/api/metrics" and operation.get("x-openwa-role") not in ROLES:
                unguarded.append(f"{method.upper()} {path} (no role)")
    assert unguarded == []


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_the_matrix(app, client, document, resources, case: Case):
    raw = case.key(app, resources)
    headers = {} if raw is None else {"X-API-Key": raw}
    tried, wrong = 0, []
    for method, path, operation in secured_operations(document):
        if path == "/api/metrics":
            continue  # METRICS_TOKEN, not API keys: tests/security/test_exposure.py
        if not case.applies(operation["x-openwa-role"], path):
            continue
        url = re.sub(r"\{(\w+)\}", lambda m: resources[m.group(1)], path)
        reply = client.open(url, method=method.upper(), headers=headers)
        tried += 1
        body = reply.get_json(silent=True) or {}
        if reply.status_code != case.status or body.get("statusCode") != case.status:
            wrong.append(f"{method.upper()} {path}: {reply.status_code} {body}")
        elif str(case.status) not in operation["responses"]:
            wrong.append(f"{method.upper()} {path}: {case.status} is not documented")
    assert wrong == []
    total = len([1 for _, path, _ in secured_operations(document) if path != "/api/metrics"])
    assert total >= 38
    if case.name in EVERY_OPERATION:
        assert tried == total  # nothing filtered out by accident
    else:
        assert 0 < tried < total


EVERY_OPERATION = {"no key", "wrong key", "malformed key", "revoked", "expired", "IP-denied"}
