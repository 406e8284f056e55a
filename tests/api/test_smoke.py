from tests.conftest import auth


def test_health_is_public_with_and_without_prefix(client):
    for path in ("/health", "/api/health", "/api/health/live"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.get_json()["status"] == "ok"


def test_create_session_needs_operator_and_returns_created(client, operator_key, viewer_key):
    assert client.post("/api/sessions", json={"name": "one"}, headers=auth(viewer_key)).status_code == 403
    response = client.post("/api/sessions", json={"name": "one"}, headers=auth(operator_key))
    assert response.status_code == 201
    assert response.get_json()["status"] == "created"
