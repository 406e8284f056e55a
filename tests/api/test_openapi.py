"""The OpenAPI document at /api/openapi.json and Swagger UI at /api/docs."""
from __future__ import annotations

import re

import pytest

from app.version import VERSION

METHODS = {"get", "post", "put", "patch", "delete"}
PUBLIC = ["/health", "/health/live", "/health/ready",
          "/api/health", "/api/health/live", "/api/health/ready"]
NOT_DOCUMENTED = {"/api/openapi.json", "/api/docs"}
METRICS = "/api/metrics"


@pytest.fixture
def spec(client) -> dict:
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response.get_json()


def openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def api_routes(app, prefix: str = "/api") -> dict[str, set[str]]:
    routes: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(prefix + "/") or rule.rule in NOT_DOCUMENTED:
            continue
        if rule.rule.startswith("/api/docs/"):
            continue
        methods = {m.lower() for m in rule.methods} & METHODS
        routes.setdefault(openapi_path(rule.rule), set()).update(methods)
    return routes


def operations(spec: dict):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, operation


def test_the_document_is_openapi_3_for_this_version(spec):
    assert spec["openapi"].startswith("3.")
    assert spec["info"]["title"] == "OpenWA"
    assert spec["info"]["version"] == VERSION


def test_every_api_route_is_documented_with_its_methods(app, spec):
    routes = api_routes(app)
    assert len(routes) > 20
    missing = {path: sorted(methods - set(spec["paths"].get(path, {})))
               for path, methods in routes.items()}
    assert {path: m for path, m in missing.items() if m} == {}


def test_the_metrics_route_is_documented(app, spec):
    assert METRICS in api_routes(app)
    assert "get" in spec["paths"].get(METRICS, {})


def test_the_document_has_no_path_that_is_not_a_route(app, spec):
    routes = {openapi_path(rule.rule) for rule in app.url_map.iter_rules()}
    assert set(spec["paths"]) - routes == set()


def test_every_operation_has_a_summary(spec):
    without = [(path, method) for path, method, operation in operations(spec)
               if not (operation.get("summary") or "").strip()]
    assert without == []


def test_api_key_and_bearer_security_schemes_exist_and_apply_by_default(spec):
    schemes = spec["components"]["securitySchemes"]
    assert schemes["ApiKeyAuth"] == {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    assert schemes["BearerAuth"]["type"] == "http"
    assert schemes["BearerAuth"]["scheme"].lower() == "bearer"
    assert {"ApiKeyAuth": []} in spec["security"]
    assert {"BearerAuth": []} in spec["security"]


@pytest.mark.parametrize("path", PUBLIC)
def test_public_health_routes_need_no_security(spec, path):
    assert spec["paths"][path]["get"]["security"] == []


def test_only_public_routes_opt_out_of_security(spec):
    public = {(path, method) for path, method, operation in operations(spec)
              if operation.get("security") == []}
    assert public == {(path, "get") for path in PUBLIC}


def test_the_idempotency_key_header_is_documented_on_send_text(spec):
    operation = spec["paths"]["/api/sessions/{sid}/messages/send-text"]["post"]
    names = {(p["in"], p["name"]) for p in operation.get("parameters", [])}
    assert ("header", "Idempotency-Key") in names


def test_swagger_ui_is_served_at_api_docs(client):
    response = client.get("/api/docs")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert "swagger-ui" in html
    assert "/api/openapi.json" in html


# -- issue 16: the document tells the truth ------------------------------------------------
#: Readiness answers 503 with its own body (api.md: "else 503 with details").
READY_503 = {("/api/health/ready", "503"), ("/health/ready", "503")}


def test_errors_are_documented_in_the_openwa_shape(spec):
    error = spec["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"statusCode", "message", "error"}
    assert set(error["properties"]) == {"statusCode", "message", "error", "code"}
    assert "UNPROCESSABLE_ENTITY" not in spec["components"].get("responses", {})
    for path, method, operation in operations(spec):
        assert "422" not in operation["responses"], (path, method)
        assert "default" not in operation["responses"], (path, method)
        for status, response in operation["responses"].items():
            if int(status) >= 400 and (path, status) not in READY_503:
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}, (path, method, status)


def test_every_operation_documents_the_statuses_it_shares(spec):
    missing = []
    for path, method, operation in operations(spec):
        responses = set(operation["responses"])
        secured = operation.get("security") != []
        expected = set()
        if secured:
            expected |= {"401", "403"}
        if secured and "{" in path:
            expected.add("404")
        if method != "get":
            expected |= {"400", "413"}
        if "/health" not in path and path != METRICS:
            expected.add("429")
        if not expected <= responses:
            missing.append((method, path, sorted(expected - responses)))
    assert missing == []


def test_every_route_documents_a_success_body(spec):
    without = [(path, method) for path, method, operation in operations(spec)
               if not any(s.startswith("2") and (s == "204" or "content" in r)
                          for s, r in operation["responses"].items())]
    assert without == []


def test_health_routes_document_their_bodies(spec):
    for path in PUBLIC:
        body = spec["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]
        assert body["schema"]
    assert "503" in spec["paths"]["/api/health/ready"]["get"]["responses"]


def test_the_rules_the_server_enforces_are_in_the_schemas(spec):
    schemas = spec["components"]["schemas"]
    hooks = schemas["WebhookCreate"]["properties"]
    assert hooks["url"]["pattern"].startswith("^https?://")
    assert hooks["headers"]["additionalProperties"]["pattern"]
    assert hooks["retryCount"]["maximum"] == 20
    assert schemas["SendText"]["properties"]["chatId"]["pattern"]
    assert schemas["ApiKeyCreate"]["properties"]["allowedIps"]["items"]["pattern"]
    assert schemas["ApiKeyUpdate"]["minProperties"] == 1
    assert schemas["WebhookUpdate"]["minProperties"] == 1
    history = {p["name"]: p for p in spec["paths"]["/api/sessions/{sid}/messages"]["get"]["parameters"]}
    assert history["until"]["schema"]["maximum"] == 2 ** 53 - 1


def test_a_message_id_is_never_an_action_name(spec):
    params = spec["paths"]["/api/sessions/{sid}/messages/{message_id}"]["parameters"]
    (message_id,) = [p for p in params if p["name"] == "message_id"]
    from app.api.messages import ACTION_SEGMENTS
    assert "send-text" in ACTION_SEGMENTS and "send-image" in ACTION_SEGMENTS
    assert "send-bulk" in ACTION_SEGMENTS and "batch" in ACTION_SEGMENTS
    assert message_id["schema"]["not"] == {"enum": list(ACTION_SEGMENTS)}
    # Each is the first segment of a POST route of its own (`batch` of batch/{id}/cancel).
    for segment in ACTION_SEGMENTS:
        prefix = f"/api/sessions/{{sid}}/messages/{segment}"
        assert any((path == prefix or path.startswith(prefix + "/")) and "post" in item
                   for path, item in spec["paths"].items()), segment


def test_a_media_send_documents_exactly_one_of_url_and_base64(spec):
    """The server refuses both or neither (400); the document says so, so that a client
    generated from it (and schemathesis) never builds such a body."""
    operation = spec["paths"]["/api/sessions/{sid}/messages/send-image"]["post"]
    ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    body = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert {tuple(option["required"]) for option in body["oneOf"]} == {("url",), ("base64",)}
    for kind in ("audio", "sticker", "video", "document"):
        operation = spec["paths"][f"/api/sessions/{{sid}}/messages/send-{kind}"]["post"]
        ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        assert "oneOf" in spec["components"]["schemas"][ref.rsplit("/", 1)[1]], kind


def test_a_webhooks_inline_media_is_documented_with_its_limit_and_failures(spec):
    """issue 12.4: a boolean in the bodies and the webhook JSON, whose description says what
    is inlined and what happens when it cannot be."""
    schemas = spec["components"]["schemas"]
    for name in ("WebhookCreate", "WebhookUpdate", "Webhook"):
        field = schemas[name]["properties"]["inlineMedia"]
        assert field["type"] == "boolean", name
        for words in ("media.base64", "1 MiB", "MEDIA_TOO_LARGE", "MEDIA_GONE", "retried",
                      "X-OpenWA-Signature"):
            assert words in field["description"], (name, words)
