"""Operators' routes: stats overview, the audit log (and its retention), infrastructure
status, backups on demand and a webhook's recent deliveries."""
from __future__ import annotations

from datetime import timedelta

import redis as redis_lib
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEntry, Host, WebhookDelivery, utcnow
from app.services import audit
from tests.conftest import auth
from tests.factories import assert_error, assert_validation_error, make_message, make_session


def test_overview_counts_sessions_and_seven_days_of_messages_within_the_key_scope(app, client, make_key):
    ready = make_session(app, status="ready")
    other = make_session(app, status="disconnected")
    make_session(app, status="qr_ready")
    make_message(app, ready.id)
    make_message(app, ready.id, from_me=True)
    make_message(app, other.id)
    make_message(app, ready.id, created_at=utcnow() - timedelta(days=2))
    make_message(app, ready.id, created_at=utcnow() - timedelta(days=9))

    body = client.get("/api/sessions/stats/overview", headers=auth(make_key("viewer"))).get_json()
    assert (body["total"], body["active"], body["ready"], body["disconnected"]) == (3, 2, 1, 1)
    assert body["byStatus"]["qr_ready"] == 1 and body["byStatus"]["failed"] == 0
    assert len(body["messagesByDay"]) == 7
    assert body["messagesToday"] == 3 == body["messagesByDay"][-1]["total"]
    assert body["messagesByDay"][-1]["incoming"] == 2 and body["messagesByDay"][-1]["outgoing"] == 1
    assert body["messagesByDay"][-3]["total"] == 1
    assert sum(day["total"] for day in body["messagesByDay"]) == 4  # nine days ago is out

    scoped = make_key("viewer", allowed_sessions=[other.name])
    body = client.get("/api/sessions/stats/overview", headers=auth(scoped)).get_json()
    assert (body["total"], body["disconnected"], body["messagesToday"]) == (1, 1, 1)


def test_changes_are_audited_with_their_actor_and_filters_apply(app, client, admin_key):
    headers = auth(admin_key)
    created = client.post("/api/auth/api-keys", json={"name": "ops", "role": "viewer"}, headers=headers)
    key_id = created.get_json()["id"]
    assert client.post(f"/api/auth/api-keys/{key_id}/rotate", headers=headers).status_code == 201
    assert client.post(f"/api/auth/api-keys/{key_id}/revoke", headers=headers).status_code in (200, 201)
    assert client.post("/api/sessions", json={"name": "audited"}, headers=headers).status_code == 201
    assert client.delete("/api/sessions/audited", headers=headers).status_code == 204
    assert client.get("/api/sessions", headers=auth("owa_k1_" + "f" * 64)).status_code == 401

    body = client.get("/api/audit", headers=headers).get_json()
    actions = [entry["action"] for entry in body["data"]]
    assert body["total"] == len(actions)
    assert actions[:6] == ["auth.failed", "session.deleted", "session.created", "apikey.revoked",
                           "apikey.rotated", "apikey.created"]
    rotated = body["data"][4]
    assert rotated["targetId"] == key_id and rotated["actorKeyPrefix"] == admin_key[:12]
    assert admin_key not in str(body) and created.get_json()["apiKey"] not in str(body)

    keys_only = client.get("/api/audit?action=apikey.*", headers=headers).get_json()
    assert {e["action"] for e in keys_only["data"]} == {"apikey.created", "apikey.rotated", "apikey.revoked"}
    assert client.get("/api/audit?action=session.created", headers=headers).get_json()["total"] == 1
    future = (utcnow() + timedelta(hours=1)).isoformat()
    assert client.get("/api/audit", query_string={"since": future}, headers=headers).get_json()["total"] == 0
    page = client.get("/api/audit?limit=2&offset=1", headers=headers).get_json()
    assert page["data"][0]["action"] == "session.deleted"
    assert_validation_error(client.get("/api/audit?since=yesterday", headers=headers), "since")
    assert_validation_error(client.get("/api/audit?limit=0", headers=headers), "limit")


def test_audit_and_infra_are_for_admins_only(client, operator_key, viewer_key):
    for key in (operator_key, viewer_key):
        for path in ("/api/audit", "/api/infra/status", "/api/infra/backups"):
            assert_error(client.get(path, headers=auth(key)), 403)
        assert_error(client.post("/api/infra/backups", headers=auth(key)), 403)


def test_audit_entries_older_than_the_retention_are_pruned(app):
    app.config["OPENWA"].audit_retention_days = 30
    with app.app_context():
        audit.record("session.created", "session", "old")
        db.session.commit()
        db.session.execute(AuditEntry.__table__.update().values(created_at=utcnow() - timedelta(days=31)))
        audit.record("session.created", "session", "new")
        db.session.commit()
        assert audit.prune() == 1
        db.session.commit()
        assert [e.target_id for e in db.session.scalars(select(AuditEntry))] == ["new"]


def test_infra_status_lists_hosts_leases_queues_and_checks(app, client, admin_key):
    with app.app_context():
        db.session.add(Host(name="h1@test", capacity=5, held=1))
        db.session.commit()
    make_session(app, name="leased", status="ready", lease_holder="h1@test", lease_token=3,
                 lease_expires_at=utcnow() + timedelta(seconds=30))
    body = client.get("/api/infra/status", headers=auth(admin_key)).get_json()
    assert body["hosts"][0]["name"] == "h1@test" and body["hosts"][0]["live"] is True
    assert body["hosts"][0]["capacity"] == 5 and body["hosts"][0]["sessionsHeld"] == 1
    assert body["leases"][0]["name"] == "leased" and body["leases"][0]["holder"] == "h1@test"
    assert body["queues"]["default"] == 0 and body["queues"]["host.h1@test"] == 0
    assert body["database"]["status"] == "ok" and body["broker"]["status"] == "ok"
    assert body["storage"]["type"] == "local" and body["lastBackup"] is None
    assert set(body["links"]) == {"flower", "grafana"}


def test_a_backup_on_demand_is_queued_for_a_worker_and_audited(app, client, admin_key, config):
    reply = client.post("/api/infra/backups", headers=auth(admin_key))
    assert reply.status_code == 202
    assert reply.get_json()["status"] == "queued" and reply.get_json()["id"]
    assert redis_lib.Redis.from_url(config.redis_url).llen("backups") == 1
    entry = client.get("/api/audit?action=backup.requested", headers=auth(admin_key)).get_json()["data"][0]
    assert entry["targetId"] == reply.get_json()["id"]
    assert client.get("/api/infra/backups", headers=auth(admin_key)).get_json() == []


def test_recent_deliveries_of_a_webhook_newest_first(app, client, operator_key):
    session = make_session(app)
    app.config["OPENWA"].webhook_allow_private = True
    hook = client.post(f"/api/sessions/{session.id}/webhooks", json={"url": "http://127.0.0.1:9/h"},
                       headers=auth(operator_key)).get_json()
    with app.app_context():
        for n in range(3):
            db.session.add(WebhookDelivery(webhook_id=hook["id"], session_id=session.id,
                                           event="message.received", data={"n": n}))
        db.session.commit()
    rows = client.get(f"/api/sessions/{session.id}/webhooks/{hook['id']}/deliveries?limit=2",
                      headers=auth(operator_key)).get_json()
    assert len(rows) == 2 and rows[0]["event"] == "message.received"
    assert_error(client.get(f"/api/sessions/{session.id}/webhooks/nope/deliveries",
                            headers=auth(operator_key)), 404)
