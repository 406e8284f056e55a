"""The OpenAPI document tells the truth: the real error shape and every status a route answers.

flask-smorest documents its own error body and a 422 for schema failures; OpenWA answers
``{statusCode, message, error, code}`` and 400. :class:`OpenWAApi` documents the real
body, and :func:`finish_document` gives each operation the error statuses it can answer:
the ones every route shares (authentication, scope, rate limit, input hygiene) derived
from the operation itself, plus the statuses of its service named in ``EXTRA_STATUSES``.
"""
from __future__ import annotations

import copy
import json
from http import HTTPStatus
from typing import Any

from flask import Response, current_app
from flask_smorest import Api

from app.config import settings
from app.schemas.common import ErrorSchema

METHODS = ("get", "post", "put", "patch", "delete")
ERROR_REF = {"$ref": "#/components/schemas/Error"}

_ENGINE = (409, 501, 502, 503, 504)  # engine_calls: not ready/started, unsupported, host errors
#: Statuses a route's own logic answers, beyond the shared ones. Keys: (method, path below
#: the API prefix). A new route with its own errors adds a line here.
EXTRA_STATUSES: dict[tuple[str, str], tuple[int, ...]] = {
    ("get", "/health/ready"): (503,),
    ("post", "/sessions"): (409,),
    ("delete", "/sessions/{sid}"): (503,),
    ("post", "/sessions/{sid}/start"): (429, 503),
    ("post", "/sessions/{sid}/stop"): (502, 503, 504),
    ("post", "/sessions/{sid}/restart"): (429, 502, 503, 504),
    ("post", "/sessions/{sid}/logout"): (502, 503, 504),
    ("get", "/sessions/{sid}/qr"): (409,),
    ("post", "/sessions/{sid}/pairing-code"): _ENGINE,
    ("post", "/sessions/{sid}/messages/send-text"): (409, 502, 503, 504),
    ("get", "/sessions/{sid}/contacts"): _ENGINE,
    ("get", "/sessions/{sid}/contacts/check/{number}"): _ENGINE,
    ("get", "/sessions/{sid}/chats"): _ENGINE,
    ("get", "/sessions/{sid}/groups"): _ENGINE,
    ("post", "/sessions/{sid}/mock/scan"): _ENGINE,
    ("post", "/sessions/{sid}/mock/disconnect"): _ENGINE,
    ("post", "/sessions/{sid}/webhooks"): (409,),
    ("put", "/auth/api-keys/{key_id}"): (409,),
    ("delete", "/auth/api-keys/{key_id}"): (409,),
    ("post", "/auth/api-keys/{key_id}/revoke"): (409,),
    # -- bulk sends (issue 13.5) ---
    ("post", "/sessions/{sid}/messages/send-bulk"): (409, 503),
    ("post", "/sessions/{sid}/messages/batch/{batch_id}/cancel"): (409,),
}
# -- message actions (issue 13.1): not ready / key reused, unsupported, host or broker errors
EXTRA_STATUSES.update({
    ("post", f"/sessions/{{sid}}/messages/{segment}"): (409, 501, 502, 503, 504)
    for segment in ("send-location", "send-contact", "send-poll", "reply", "forward", "react",
                    "delete", "edit", "star", "unstar", "pin", "unpin")})
EXTRA_STATUSES[("post", "/sessions/{sid}/mock/event")] = _ENGINE
#: Request bodies built on PartialUpdateSchema (an empty PUT is a 400).
NON_EMPTY_BODIES = ("ApiKeyUpdate", "WebhookUpdate")
# -- chats, contacts, groups (issue 13.2/3): body rules marshmallow cannot state --
BODY_RULES: dict[str, dict[str, Any]] = {
    # {presence} for the account, or {chatId, state} for one chat; never a mix.
    "Presence": {"oneOf": [
        {"required": ["presence"],
         "not": {"anyOf": [{"required": ["chatId"]}, {"required": ["state"]}]}},
        {"required": ["chatId", "state"], "not": {"required": ["presence"]}}]},
    "GroupSettingsUpdate": {"minProperties": 1},
    # Media sends (issue 12): exactly one of url / base64.
    **{name: {"oneOf": [{"required": ["url"], "not": {"required": ["base64"]}},
                        {"required": ["base64"], "not": {"required": ["url"]}}]}
       for name in ("SendMedia", "SendAudio", "SendSticker")},
}
#: Routes outside the rate limit (and the API-key scheme): health and metrics.
UNLIMITED = ("/health", "/metrics")


def _error(status: int) -> dict[str, Any]:
    return {"description": HTTPStatus(status).phrase,
            "content": {"application/json": {"schema": dict(ERROR_REF)}}}


def expected_statuses(method: str, path: str, operation: dict[str, Any],
                      path_params: bool, prefix: str) -> set[int]:
    """Every error status this operation can answer."""
    below = path[len(prefix):] if path.startswith(prefix + "/") else path
    statuses: set[int] = set(EXTRA_STATUSES.get((method, below), ()))
    secured = operation.get("security") != []
    if secured:
        statuses |= {401, 403}
    if not below.startswith(UNLIMITED):
        statuses.add(429)
    if path_params and secured:
        statuses.add(404)
    has_query = any(p.get("in") == "query" for p in operation.get("parameters", []))
    if method != "get" or has_query or "{number}" in below:
        statuses.add(400)  # schema rules, and app/hygiene.py for any JSON body
    if method != "get":
        statuses.add(413)  # MAX_CONTENT_LENGTH
    if below == "/metrics":
        statuses.add(401)
    # -- chats, contacts, groups (issue 13.2/3): routes of the engine surface say so --
    if operation.get("x-openwa-engine"):
        statuses |= set(_ENGINE)
    return statuses


def finish_document(document: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The document flask-smorest builds, with OpenWA's real error responses."""
    document = copy.deepcopy(document)
    for path, item in document.get("paths", {}).items():
        path_params = any(p.get("in") == "path" for p in item.get("parameters", [])) or "{" in path
        for method in METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            responses.pop("default", None)
            for status in sorted(expected_statuses(method, path, operation, path_params, prefix)):
                responses.setdefault(str(status), _error(status))
    components = document.get("components", {})
    for name in NON_EMPTY_BODIES:  # PartialUpdateSchema: at least one field
        if name in components.get("schemas", {}):
            components["schemas"][name]["minProperties"] = 1
    for name, rule in BODY_RULES.items():  # issue 13.2/3
        if name in components.get("schemas", {}):
            components["schemas"][name].update(copy.deepcopy(rule))
    responses = components.get("responses", {})
    for name in ("DEFAULT_ERROR", "UNPROCESSABLE_ENTITY"):
        responses.pop(name, None)
    if not responses:
        components.pop("responses", None)
    return document


class OpenWAApi(Api):
    """flask-smorest's Api, documenting OpenWA's error body and serving the finished document."""

    ERROR_SCHEMA = ErrorSchema

    def _openapi_json(self) -> Response:
        prefix = settings().api_prefix
        document = finish_document(self.spec.to_dict(), prefix)
        return current_app.response_class(json.dumps(document, indent=2),
                                          mimetype="application/json")
