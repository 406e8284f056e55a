from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import auth
from tests.webhooks.receiver import Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    try:
        server.stop()
    except Exception:
        pass


@pytest.fixture
def wh_app(app):
    """Local receivers are private addresses: allow them, with fast retries."""
    config = app.config["OPENWA"]
    config.webhook_allow_private = True
    config.webhook_retry_delay_ms = 50
    config.webhook_timeout_ms = 1000
    config.encryption_key = "test-encryption-key-0123456789"
    return app


@pytest.fixture
def session_id(wh_app, client, operator_key) -> str:
    return client.post("/api/sessions", json={"name": "hooked"}, headers=auth(operator_key)).get_json()["id"]
