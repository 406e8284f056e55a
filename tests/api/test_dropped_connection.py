"""A database connection that drops during the API key look-up of a chat route.

The chat guard and the rate limiter look the key up before the view and swallow what goes
wrong (the view gives the answer). A dropped connection must not leave the view an
"invalid transaction" (PendingRollbackError, a 500): CI saw exactly that while PostgreSQL
restarted under load. The drop is injected at the driver boundary, once, as the server's
disconnect would be seen.
"""
from __future__ import annotations

from typing import Any, Iterator

import pytest
from sqlalchemy import event

from app.extensions import db
from tests.conftest import auth
from tests.factories import make_session, messages_of


@pytest.fixture
def drop_first_key_lookup(app) -> Iterator[list[str]]:  # type: ignore[no-untyped-def]
    """Make the first statement on api_keys fail as a dropped connection does."""
    dropped: list[str] = []
    with app.app_context():
        engine = db.engine
        dbapi = engine.dialect.loaded_dbapi

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not dropped and "FROM api_keys" in statement:
            dropped.append(statement)
            raise dbapi.OperationalError("server closed the connection unexpectedly")

    def mark_disconnect(context: Any) -> None:
        if dropped and "closed the connection" in str(context.original_exception):
            context.is_disconnect = True

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "handle_error", mark_disconnect)
    try:
        yield dropped
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "handle_error", mark_disconnect)


def test_a_read_whose_guard_lost_the_connection_is_served(app, client, admin_key,
                                                          drop_first_key_lookup):
    session = make_session(app, status="ready")
    response = client.get(f"/api/sessions/{session.name}/messages?limit=5",
                          headers=auth(admin_key))
    assert drop_first_key_lookup, "the fault was not injected: the test proves nothing"
    # The guard's look-up failed; the view's own look-up runs on a clean session.
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"messages": [], "total": 0}


def test_a_send_whose_guard_lost_the_connection_is_stored_once(app, client, admin_key,
                                                               drop_first_key_lookup):
    session = make_session(app, status="ready", desired_state="running")
    response = client.post(f"/api/sessions/{session.id}/messages/send-text",
                           json={"chatId": "15550000000", "text": "after the drop"},
                           headers=auth(admin_key))
    assert drop_first_key_lookup
    assert response.status_code == 202, response.get_json()
    [row] = messages_of(app, session.id)
    assert (row.id, row.body, row.status) == (response.get_json()["id"], "after the drop",
                                              "pending")
