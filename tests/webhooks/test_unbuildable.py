"""A webhook whose request cannot be built (stored before registration checked headers and
secrets) becomes a dead letter with a reason that names no secret, and the line moves on."""
from __future__ import annotations

import json
import logging

import pytest
from sqlalchemy import select

from app.crypto import Box
from app.extensions import db
from app.models import Webhook, WebhookDelivery
from app.services import webhooks
from tests.conftest import auth
from tests.webhooks.test_delivery import drain, hook, incoming

SECRET_VALUE = "日本語-secret-token"


def store_raw(app, webhook_id, headers):
    """Write what the API now refuses straight into the row (as an older release could)."""
    with app.app_context():
        box = Box.from_config(app.config["OPENWA"])
        row = db.session.get(Webhook, webhook_id)
        row.headers_enc = box.encrypt(json.dumps(headers))
        db.session.commit()


def deliveries(app, webhook_id):
    with app.app_context():
        found = list(db.session.scalars(select(WebhookDelivery).where(
            WebhookDelivery.webhook_id == webhook_id).order_by(WebhookDelivery.seq)))
        db.session.expunge_all()
        return found


@pytest.mark.parametrize("headers", [
    {"X-Token": SECRET_VALUE},
    {"X-Token": "line\r\nX-Injected: " + SECRET_VALUE},
    {"X Bad Name": SECRET_VALUE},
])
def test_an_unbuildable_delivery_is_a_dead_letter_naming_no_secret_and_the_line_moves_on(
        wh_app, client, operator_key, session_id, receiver, caplog, headers):
    webhook_id = hook(client, operator_key, session_id, receiver.url)
    store_raw(wh_app, webhook_id, headers=headers)
    incoming(wh_app, session_id, 1)
    incoming(wh_app, session_id, 2)
    with caplog.at_level(logging.DEBUG):
        result = drain(wh_app, webhook_id)
    rows = deliveries(wh_app, webhook_id)
    assert [r.status for r in rows] == ["dead", "dead"]  # neither blocks the line
    assert result["dead"] == 2
    for row in rows:
        assert row.attempts == 1 and row.last_status_code is None
        assert row.last_error.startswith("unbuildable:")
        assert SECRET_VALUE not in row.last_error and "日本語" not in row.last_error
    assert receiver.bodies() == []
    assert SECRET_VALUE not in caplog.text and "日本語" not in caplog.text
    # The dead letters are listed without the value either.
    admin = client.get("/api/webhooks/delivery-failures", headers=auth(make_admin(wh_app)))
    assert admin.status_code == 200 and SECRET_VALUE not in admin.get_data(as_text=True)
    # Fixed through the API, the next event is delivered.
    assert client.put(f"/api/sessions/{session_id}/webhooks/{webhook_id}",
                      json={"headers": {"X-Token": "ascii"}, "secret": "0123456789abcdef"},
                      headers=auth(operator_key)).status_code == 200
    incoming(wh_app, session_id, 3)
    assert drain(wh_app, webhook_id)["delivered"] == 1
    assert len(receiver.bodies()) == 1


def make_admin(app):
    from tests.conftest import _key
    return _key(app, "admin")


def test_send_test_on_an_unbuildable_webhook_reports_it_without_the_value(
        wh_app, client, operator_key, session_id, receiver):
    webhook_id = hook(client, operator_key, session_id, receiver.url)
    store_raw(wh_app, webhook_id, headers={"X-Token": SECRET_VALUE})
    reply = client.post(f"/api/sessions/{session_id}/webhooks/{webhook_id}/test",
                        headers=auth(operator_key))
    assert reply.status_code == 200
    body = reply.get_json()
    assert body["success"] is False and body["error"].startswith("unbuildable:")
    assert SECRET_VALUE not in reply.get_data(as_text=True)
    assert receiver.bodies() == []


def test_the_drain_task_result_holds_no_header_value(wh_app, client, operator_key, session_id,
                                                     receiver):
    """The Celery task returns drain()'s counts: nothing of a write-only field."""
    webhook_id = hook(client, operator_key, session_id, receiver.url)
    store_raw(wh_app, webhook_id, headers={"X-Token": SECRET_VALUE})
    incoming(wh_app, session_id, 1)
    with wh_app.app_context():
        result = webhooks.drain(webhook_id)
    assert set(result) == {"delivered", "retried", "dead"} and result["dead"] == 1
    assert SECRET_VALUE not in repr(result)
