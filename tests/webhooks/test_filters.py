"""Webhook ``filters`` (issue 13.4): an AND of chatId, from, type, isGroup, fromMe, hasMedia,
bodyContains; an event that does not match is not written to that webhook's outbox."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import WebhookDelivery
from app.services import webhooks
from app.services.webhooks.filters import matches
from tests.conftest import auth

GROUP = "120363000000000001@g.us"
MESSAGE = {"chatId": "15551234567@c.us", "from": "15551234567@c.us", "type": "text",
           "fromMe": False, "body": "Order #42 shipped", "media": None}


@pytest.mark.parametrize("filters, expected", [
    (None, True), ({}, True),
    ({"chatId": "15551234567@c.us"}, True), ({"chatId": "15550000001@c.us"}, False),
    ({"from": "15551234567@c.us"}, True), ({"type": "image"}, False),
    ({"isGroup": False}, True), ({"isGroup": True}, False),
    ({"fromMe": False}, True), ({"fromMe": True}, False),
    ({"hasMedia": False}, True), ({"hasMedia": True}, False),
    ({"bodyContains": "order #42"}, True), ({"bodyContains": "refund"}, False),
    ({"chatId": "15551234567@c.us", "bodyContains": "shipped", "fromMe": False}, True),
    ({"chatId": "15551234567@c.us", "bodyContains": "refund"}, False),  # AND
])
def test_matches_is_an_and_of_the_given_conditions(filters, expected):
    assert matches(filters, MESSAGE) is expected


def test_an_event_without_the_filtered_field_does_not_match():
    assert matches({"chatId": "15551234567@c.us"}, {"status": "ready"}) is False
    assert matches({"isGroup": True}, {"groupId": GROUP, "chatId": GROUP}) is True
    assert matches({"hasMedia": True}, {**MESSAGE, "media": {"mimetype": "image/png"}}) is True


def test_filters_are_stored_shown_and_applied_to_the_outbox(wh_app, client, operator_key,
                                                            session_id, receiver):
    reply = client.post(f"/api/sessions/{session_id}/webhooks", headers=auth(operator_key), json={
        "url": receiver.url, "events": ["*"],
        "filters": {"isGroup": True, "bodyContains": "deploy", "from": "15551234567"}})
    assert reply.status_code == 201, reply.get_json()
    hook = reply.get_json()
    assert hook["filters"] == {"isGroup": True, "bodyContains": "deploy",
                               "from": "15551234567@c.us"}
    with wh_app.app_context():
        data = {"chatId": GROUP, "from": "15551234567@c.us", "body": "Deploy done"}
        webhooks.emit(session_id, "message.received", data)
        webhooks.emit(session_id, "message.received", {**data, "chatId": "15551234567@c.us"})
        webhooks.emit(session_id, "message.received", {**data, "body": "lunch?"})
        webhooks.emit(session_id, "session.status", {"status": "ready"})
        db.session.commit()
        written = db.session.scalar(select(func.count()).select_from(WebhookDelivery)
                                    .where(WebhookDelivery.webhook_id == hook["id"]))
    assert written == 1
    # an empty object removes them
    reply = client.put(f"/api/sessions/{session_id}/webhooks/{hook['id']}",
                       headers=auth(operator_key), json={"filters": {}})
    assert reply.status_code == 200 and reply.get_json()["filters"] is None


@pytest.mark.parametrize("filters", [{"chat": "x"}, {"isGroup": "yes"}, {"chatId": "nope"},
                                     {"bodyContains": ""}, "everything"])
def test_bad_filters_are_400(wh_app, client, operator_key, session_id, receiver, filters):
    reply = client.post(f"/api/sessions/{session_id}/webhooks", headers=auth(operator_key),
                        json={"url": receiver.url, "filters": filters})
    assert reply.status_code == 400 and reply.get_json()["statusCode"] == 400
