"""Session status during failover: a session no live host holds is not reported ``ready``."""
from __future__ import annotations

from datetime import timedelta

from flask import Flask
from sqlalchemy import select

from app.extensions import db
from app.models import RUNNING, Session, Webhook, WebhookDelivery, utcnow
from app.services.events import set_status_if
from app.services.sessions import UNHELD_REASON, report_unheld
from tests.factories import load_session, make_session


def _session(app: Flask, status: str, lease_seconds: float | None, **fields: object) -> str:
    lease = {} if lease_seconds is None else {
        "lease_holder": "host-a@test", "lease_expires_at": utcnow() + timedelta(seconds=lease_seconds)}
    session = make_session(app, status=status, desired_state=RUNNING, **lease, **fields)
    with app.app_context():
        db.session.add(Webhook(session_id=session.id, url="http://127.0.0.1:9/hook", events=["*"]))
        db.session.commit()
    return session.id


def _events(app: Flask, session_id: str) -> list[tuple[str, dict[str, object]]]:
    with app.app_context():
        return [(d.event, d.data) for d in db.session.scalars(
            select(WebhookDelivery).where(WebhookDelivery.session_id == session_id)
            .order_by(WebhookDelivery.seq))]


def test_a_ready_session_whose_lease_expired_becomes_disconnected_and_says_so(app: Flask) -> None:
    dead_host = _session(app, "ready", -1)
    showing_qr = _session(app, "qr_ready", -1, qr_code="2@stale")
    never_held = _session(app, "ready", None)
    held = _session(app, "ready", 30)
    starting = _session(app, "initializing", -1)

    with app.app_context():
        assert report_unheld() == 3
        assert report_unheld() == 0  # reported once, not on every probe

    for sid in (dead_host, showing_qr, never_held):
        row = load_session(app, sid)
        assert row is not None and row.status == "disconnected" and row.last_error == UNHELD_REASON
    assert load_session(app, showing_qr).qr_code is None  # type: ignore[union-attr]
    assert _events(app, dead_host) == [
        ("session.status", {"status": "disconnected", "previousStatus": "ready",
                            "reason": UNHELD_REASON}),
        ("session.disconnected", {"reason": UNHELD_REASON})]
    for sid, status in ((held, "ready"), (starting, "initializing")):
        assert load_session(app, sid).status == status  # type: ignore[union-attr]
        assert _events(app, sid) == []


def test_a_host_that_took_the_session_meanwhile_wins(app: Flask) -> None:
    sid = _session(app, "ready", -1)
    with app.app_context():
        # Another host claimed the lease after the probe listed the session.
        db.session.execute(db.update(Session).where(Session.id == sid).values(
            lease_expires_at=utcnow() + timedelta(seconds=30)))
        db.session.commit()
        unheld = Session.lease_expires_at <= utcnow()
        assert set_status_if(sid, "disconnected", unheld) is False
    assert load_session(app, sid).status == "ready"  # type: ignore[union-attr]
    assert _events(app, sid) == []
