"""Message routes: send-text (no session host runs, so a send to a ready session stays
pending and answers 202), Idempotency-Key, and the stored history."""
from __future__ import annotations

import threading
import time

import pytest
import redis as redis_lib

from app.extensions import celery_app
from app.services import doorbell, replies
from tests.conftest import auth
from tests.factories import (
    assert_error,
    assert_validation_error,
    make_message,
    make_session,
    messages_of,
)

MESSAGE_FIELDS = {"id", "messageId", "sessionId", "chatId", "from", "to", "fromMe", "direction",
                  "type", "body", "caption", "media", "quotedMessageId", "status", "timestamp",
                  "createdAt",
                  # message actions (issue 13.1): what later actions and events changed
                  "content", "reactions", "edited", "editedAt", "revoked", "deleted", "starred",
                  "pinnedUntil"}
CHAT = "6281234567890@c.us"


def send_url(session) -> str:
    return f"/api/sessions/{session.id}/messages/send-text"


def history(client, key, session, query: str = "") -> dict:
    response = client.get(f"/api/sessions/{session.id}/messages{query}", headers=auth(key))
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert set(body) == {"messages", "total"}
    return body


@pytest.fixture
def ready(app):
    return make_session(app, "ready-one", status="ready", desired_state="running",
                        phone="6289999999999", push_name="Me")


# -- send-text ------------------------------------------------------------------------------------
@pytest.mark.parametrize("status", ["created", "initializing", "qr_ready", "authenticating",
                                    "disconnected", "failed"])
def test_send_to_a_session_that_is_not_ready_is_409_and_stores_nothing(app, client, operator_key,
                                                                       status):
    session = make_session(app, status=status)
    response = client.post(send_url(session), json={"chatId": CHAT, "text": "hi"},
                           headers=auth(operator_key))
    body = assert_error(response, 409, "SESSION_NOT_READY")
    assert status in body["message"]
    assert messages_of(app, session.id) == []


def test_send_to_a_ready_session_answers_202_pending_and_stores_the_message(
        app, client, operator_key, ready):
    started = time.monotonic()
    response = client.post(send_url(ready), json={"chatId": CHAT, "text": "hello there"},
                           headers=auth(operator_key))
    elapsed = time.monotonic() - started
    assert response.status_code == 202
    # It waited for the engine (SEND_WAIT_TIMEOUT is 0.5 s here), then gave up without hanging.
    assert 0.5 <= elapsed < 5, elapsed
    body = response.get_json()
    assert set(body) == {"id", "status"}
    assert body["status"] == "pending"
    [row] = messages_of(app, ready.id)
    assert row.id == body["id"]
    assert (row.status, row.chat_id, row.body, row.type) == ("pending", CHAT, "hello there", "text")
    assert row.from_me is True
    assert row.wa_message_id is None
    # The stored message is readable through the API with its status.
    one = client.get(f"/api/sessions/{ready.id}/messages/{body['id']}", headers=auth(operator_key))
    assert one.status_code == 200
    assert one.get_json()["status"] == "pending"


def test_a_send_reads_nothing_of_its_session_after_the_commit(app, client, operator_key, ready):
    # Scale (issue 18): the commit expires the session row; touching it afterwards (to ring
    # the doorbell) cost a SELECT and a transaction left open until the request ended.
    from sqlalchemy import event as sa_event

    from app.extensions import db

    seen: list[str] = []
    with app.app_context():
        engine = db.engine

    def on_statement(_conn, _cursor, statement: str, *_args) -> None:
        verb = statement.split()[0].upper()
        seen.append(f"{verb} sessions" if "FROM sessions" in statement else verb)

    def on_commit(_conn) -> None:
        seen.append("COMMIT")

    sa_event.listen(engine, "before_cursor_execute", on_statement)
    sa_event.listen(engine, "commit", on_commit)
    try:
        response = client.post(send_url(ready), json={"chatId": CHAT, "text": "once"},
                               headers=auth(operator_key))
    finally:
        sa_event.remove(engine, "before_cursor_execute", on_statement)
        sa_event.remove(engine, "commit", on_commit)
    assert response.status_code == 202
    assert "INSERT" in seen and "COMMIT" in seen
    after = seen[seen.index("COMMIT", seen.index("INSERT")) + 1:]
    assert not [s for s in after if s.endswith(" sessions")], seen


def test_a_bare_phone_number_is_normalised_to_c_us(app, client, operator_key, ready):
    response = client.post(send_url(ready), json={"chatId": "+62 812-3456-7890", "text": "hi"},
                           headers=auth(operator_key))
    assert response.status_code == 202
    stored = history(client, operator_key, ready)["messages"]
    assert [m["chatId"] for m in stored] == ["6281234567890@c.us"]
    assert stored[0]["to"] == "6281234567890@c.us"
    assert stored[0]["id"] == response.get_json()["id"]
    # The normalised id also finds it in a chatId filter given as a bare number.
    assert history(client, operator_key, ready, "?chatId=6281234567890")["total"] == 1


def test_a_group_id_is_kept_as_is(app, client, operator_key, ready):
    group = "120363041234567890@g.us"
    response = client.post(send_url(ready), json={"chatId": group, "text": "hi all"},
                           headers=auth(operator_key))
    assert response.status_code == 202
    assert [m.chat_id for m in messages_of(app, ready.id)] == [group]


def test_text_of_exactly_4096_characters_is_accepted(app, client, operator_key, ready):
    response = client.post(send_url(ready), json={"chatId": CHAT, "text": "x" * 4096},
                           headers=auth(operator_key))
    assert response.status_code == 202
    assert len(messages_of(app, ready.id)[0].body) == 4096


@pytest.mark.parametrize("body, fields", [
    ({"chatId": CHAT, "text": "x" * 4097}, ["text"]),
    ({"chatId": CHAT, "text": ""}, ["text"]),
    ({"chatId": CHAT}, ["text"]),
    ({"text": "hi"}, ["chatId"]),
    ({"chatId": "not a chat", "text": "hi"}, ["chatId"]),
    ({"chatId": CHAT, "text": "hi", "mentions": ["nobody"]}, ["mentions"]),
    ({"chatId": CHAT, "text": "hi", "priority": "high"}, ["priority"]),
])
def test_an_invalid_send_is_400_and_stores_nothing(app, client, operator_key, ready, body, fields):
    response = client.post(send_url(ready), json=body, headers=auth(operator_key))
    assert_validation_error(response, *fields)
    assert messages_of(app, ready.id) == []


def test_send_needs_operator(app, client, viewer_key, ready):
    response = client.post(send_url(ready), json={"chatId": CHAT, "text": "hi"},
                           headers=auth(viewer_key))
    assert_error(response, 403)
    assert messages_of(app, ready.id) == []


def test_send_to_an_unknown_session_is_404(client, operator_key):
    response = client.post("/api/sessions/nobody/messages/send-text",
                           json={"chatId": CHAT, "text": "hi"}, headers=auth(operator_key))
    assert_error(response, 404)


# -- Idempotency-Key ------------------------------------------------------------------------------
def test_the_same_idempotency_key_and_body_returns_the_first_message(app, client, operator_key,
                                                                     ready):
    headers = {**auth(operator_key), "Idempotency-Key": "order-1001"}
    body = {"chatId": CHAT, "text": "your order shipped"}
    first = client.post(send_url(ready), json=body, headers=headers)
    second = client.post(send_url(ready), json=body, headers=headers)
    assert first.status_code == second.status_code == 202
    assert first.get_json() == second.get_json()
    assert len(messages_of(app, ready.id)) == 1


def test_a_bare_number_and_its_c_us_form_are_the_same_request(app, client, operator_key, ready):
    headers = {**auth(operator_key), "Idempotency-Key": "same-chat"}
    first = client.post(send_url(ready), json={"chatId": "6281234567890", "text": "hi"},
                        headers=headers)
    second = client.post(send_url(ready), json={"chatId": CHAT, "text": "hi"}, headers=headers)
    assert first.get_json()["id"] == second.get_json()["id"]
    assert len(messages_of(app, ready.id)) == 1


def test_the_same_idempotency_key_with_another_body_is_409(app, client, operator_key, ready):
    headers = {**auth(operator_key), "Idempotency-Key": "order-1002"}
    assert client.post(send_url(ready), json={"chatId": CHAT, "text": "one"},
                       headers=headers).status_code == 202
    response = client.post(send_url(ready), json={"chatId": CHAT, "text": "two"}, headers=headers)
    assert_error(response, 409, "IDEMPOTENCY_KEY_REUSED")
    assert [m.body for m in messages_of(app, ready.id)] == ["one"]


def test_the_same_idempotency_key_on_another_session_is_409(app, client, operator_key, ready):
    other = make_session(app, "other-ready", status="ready")
    headers = {**auth(operator_key), "Idempotency-Key": "order-1003"}
    body = {"chatId": CHAT, "text": "one"}
    assert client.post(send_url(ready), json=body, headers=headers).status_code == 202
    assert_error(client.post(send_url(other), json=body, headers=headers), 409,
                 "IDEMPOTENCY_KEY_REUSED")
    assert messages_of(app, other.id) == []


def test_different_idempotency_keys_store_two_messages(app, client, operator_key, ready):
    body = {"chatId": CHAT, "text": "same text"}
    first = client.post(send_url(ready), json=body,
                        headers={**auth(operator_key), "Idempotency-Key": "a"})
    second = client.post(send_url(ready), json=body,
                         headers={**auth(operator_key), "Idempotency-Key": "b"})
    assert first.get_json()["id"] != second.get_json()["id"]
    assert len(messages_of(app, ready.id)) == 2


def test_idempotency_keys_belong_to_the_api_key_that_used_them(app, client, make_key, ready):
    body = {"chatId": CHAT, "text": "same text"}
    first = client.post(send_url(ready), json=body,
                        headers={**auth(make_key("operator")), "Idempotency-Key": "shared"})
    second = client.post(send_url(ready), json=body,
                         headers={**auth(make_key("operator")), "Idempotency-Key": "shared"})
    assert first.status_code == second.status_code == 202
    assert first.get_json()["id"] != second.get_json()["id"]
    assert len(messages_of(app, ready.id)) == 2


@pytest.mark.parametrize("value", ["", "   ", "x" * 201])
def test_an_invalid_idempotency_key_is_400(app, client, operator_key, ready, value):
    response = client.post(send_url(ready), json={"chatId": CHAT, "text": "hi"},
                           headers={**auth(operator_key), "Idempotency-Key": value})
    assert_validation_error(response, "Idempotency-Key")
    assert messages_of(app, ready.id) == []


# -- history --------------------------------------------------------------------------------------
def test_history_is_messages_and_total_newest_first(app, client, viewer_key, ready):
    ids = [make_message(app, ready.id, timestamp=1_700_000_000 + i).id for i in range(3)]
    body = history(client, viewer_key, ready)
    assert body["total"] == 3
    assert [m["id"] for m in body["messages"]] == ids[::-1]
    assert all(set(m) == MESSAGE_FIELDS for m in body["messages"])
    first = body["messages"][-1]
    assert first["sessionId"] == ready.id
    assert first["direction"] == "incoming" and first["fromMe"] is False
    assert first["timestamp"] == 1_700_000_000
    assert isinstance(first["timestamp"], int)


def test_history_of_an_empty_session(client, viewer_key, ready):
    assert history(client, viewer_key, ready) == {"messages": [], "total": 0}


def test_history_only_shows_the_sessions_own_messages(app, client, viewer_key, ready):
    other = make_session(app, "other")
    make_message(app, other.id)
    mine = make_message(app, ready.id)
    assert [m["id"] for m in history(client, viewer_key, ready)["messages"]] == [mine.id]


def test_history_filters_by_chat_direction_and_type(app, client, viewer_key, ready):
    alice, bob = "6281111111111@c.us", "6282222222222@c.us"
    make_message(app, ready.id, chat_id=alice)
    make_message(app, ready.id, chat_id=alice, from_me=True, sender=None, recipient=alice)
    make_message(app, ready.id, chat_id=bob, type="image", body=None, caption="look",
                 media={"mimetype": "image/png", "filename": "a.png", "size": 10, "url": "/m/a"})
    make_message(app, ready.id, chat_id=bob, from_me=True, type="location", body=None)

    def ids(query):
        return history(client, viewer_key, ready, query)

    assert ids(f"?chatId={alice}")["total"] == 2
    assert {m["chatId"] for m in ids(f"?chatId={bob}")["messages"]} == {bob}
    outgoing = ids("?direction=outgoing")
    assert outgoing["total"] == 2
    assert all(m["fromMe"] and m["direction"] == "outgoing" for m in outgoing["messages"])
    incoming = ids("?direction=incoming")
    assert incoming["total"] == 2
    assert all(not m["fromMe"] for m in incoming["messages"])
    images = ids("?type=image")["messages"]
    assert [m["type"] for m in images] == ["image"]
    assert images[0]["media"] == {"mimetype": "image/png", "filename": "a.png", "size": 10,
                                  "url": "/m/a"}
    assert images[0]["caption"] == "look"
    combined = ids(f"?chatId={bob}&direction=outgoing&type=location")
    assert combined["total"] == 1 and combined["messages"][0]["type"] == "location"
    assert ids(f"?chatId={alice}&type=image") == {"messages": [], "total": 0}


def test_history_filters_by_since_and_until_in_milliseconds(app, client, viewer_key, ready):
    for second in (1_700_000_000, 1_700_000_100, 1_700_000_200):
        make_message(app, ready.id, timestamp=second)

    def stamps(query):
        return [m["timestamp"] for m in history(client, viewer_key, ready, query)["messages"]]

    assert stamps("?since=1700000100000") == [1_700_000_200, 1_700_000_100]
    assert stamps("?until=1700000100000") == [1_700_000_100, 1_700_000_000]
    assert stamps("?since=1700000050000&until=1700000150000") == [1_700_000_100]
    assert stamps("?since=1700000300000") == []


def test_history_limit_defaults_to_50_and_total_counts_all(app, client, viewer_key, ready):
    for i in range(55):
        make_message(app, ready.id, timestamp=1_700_000_000 + i)
    body = history(client, viewer_key, ready)
    assert body["total"] == 55
    assert len(body["messages"]) == 50
    assert len(history(client, viewer_key, ready, "?limit=100")["messages"]) == 55
    assert len(history(client, viewer_key, ready, "?limit=1")["messages"]) == 1


@pytest.mark.parametrize("query, field", [
    ("?limit=101", "limit"), ("?limit=0", "limit"), ("?limit=-1", "limit"), ("?limit=abc", "limit"),
    ("?offset=-1", "offset"), ("?direction=sideways", "direction"), ("?type=sticker", "type"),
    ("?since=yesterday", "since"), ("?chatId=nobody", "chatId"),
])
def test_history_with_invalid_parameters_is_400(client, viewer_key, ready, query, field):
    response = client.get(f"/api/sessions/{ready.id}/messages{query}", headers=auth(viewer_key))
    assert_validation_error(response, field)


def test_history_offset_pages_through(app, client, viewer_key, ready):
    ids = [make_message(app, ready.id, timestamp=1_700_000_000 + i).id for i in range(5)][::-1]
    pages = [[m["id"] for m in history(client, viewer_key, ready, f"?limit=2&offset={offset}")
              ["messages"]] for offset in (0, 2, 4, 6)]
    assert pages == [ids[0:2], ids[2:4], ids[4:5], []]


def test_history_after_cursor_returns_the_strictly_older_page(app, client, viewer_key, ready):
    # Two messages share each second: the cursor must still neither skip nor repeat.
    ids = [make_message(app, ready.id, timestamp=1_700_000_000 + i // 2).id for i in range(7)][::-1]
    seen: list[str] = []
    query = "?limit=3"
    while True:
        page = [m["id"] for m in history(client, viewer_key, ready, query)["messages"]]
        if not page:
            break
        assert not set(page) & set(seen)
        seen.extend(page)
        query = f"?limit=3&after={page[-1]}"
    assert seen == ids


def test_history_after_accepts_the_whatsapp_id(app, client, viewer_key, ready):
    older = make_message(app, ready.id, timestamp=1_700_000_000)
    anchor = make_message(app, ready.id, timestamp=1_700_000_001)
    make_message(app, ready.id, timestamp=1_700_000_002)
    page = history(client, viewer_key, ready, f"?after={anchor.wa_message_id}")["messages"]
    assert [m["id"] for m in page] == [older.id]


def test_history_after_combines_with_filters(app, client, viewer_key, ready):
    alice = "6281111111111@c.us"
    old_alice = make_message(app, ready.id, timestamp=1_700_000_000, chat_id=alice)
    make_message(app, ready.id, timestamp=1_700_000_001, chat_id="6282222222222@c.us")
    anchor = make_message(app, ready.id, timestamp=1_700_000_002, chat_id=alice)
    page = history(client, viewer_key, ready, f"?chatId={alice}&after={anchor.id}")["messages"]
    assert [m["id"] for m in page] == [old_alice.id]


def test_history_after_an_unknown_message_is_404(client, viewer_key, ready):
    response = client.get(f"/api/sessions/{ready.id}/messages?after=3EB0NOPE",
                          headers=auth(viewer_key))
    assert_error(response, 404)


# -- one message ----------------------------------------------------------------------------------
def test_get_one_message_by_our_id_and_by_whatsapp_id(app, client, viewer_key, ready):
    message = make_message(app, ready.id, wa_message_id="true_6281234567890@c.us_3EB0ABCDEF",
                           from_me=True, sender="6289999999999@c.us", recipient=CHAT,
                           chat_id=CHAT, status="read", quoted_message_id="false_x_1",
                           timestamp=1_700_000_123)
    for ident in (message.id, message.wa_message_id):
        response = client.get(f"/api/sessions/{ready.name}/messages/{ident}",
                              headers=auth(viewer_key))
        assert response.status_code == 200
        body = response.get_json()
        assert set(body) == MESSAGE_FIELDS
        assert body["id"] == message.id
        assert body["messageId"] == "true_6281234567890@c.us_3EB0ABCDEF"
        assert (body["from"], body["to"], body["chatId"]) == ("6289999999999@c.us", CHAT, CHAT)
        assert (body["fromMe"], body["direction"], body["status"]) == (True, "outgoing", "read")
        assert body["quotedMessageId"] == "false_x_1"
        assert body["timestamp"] == 1_700_000_123


def test_get_an_unknown_message_is_404(client, viewer_key, ready):
    body = assert_error(client.get(f"/api/sessions/{ready.id}/messages/3EB0NOPE",
                                   headers=auth(viewer_key)), 404)
    assert "3EB0NOPE" in body["message"]


def test_a_message_of_another_session_is_404(app, client, viewer_key, ready):
    other = make_session(app, "other")
    message = make_message(app, other.id)
    for ident in (message.id, message.wa_message_id):
        assert_error(client.get(f"/api/sessions/{ready.id}/messages/{ident}",
                                headers=auth(viewer_key)), 404)


# -- total: the counters kept by database triggers ------------------------------------------------
def _exact_counts(app, session_id):
    """count(*) per (chat, direction) from the rows, and what message_counts holds."""
    from sqlalchemy import func, select

    from app.extensions import db
    from app.models import Message, MessageCount

    with app.app_context():
        rows = dict(((chat, from_me), n) for chat, from_me, n in db.session.execute(
            select(Message.chat_id, Message.from_me, func.count())
            .where(Message.session_id == session_id).group_by(Message.chat_id, Message.from_me)))
        kept = dict(((c.chat_id, c.from_me), c.n) for c in db.session.scalars(
            select(MessageCount).where(MessageCount.session_id == session_id)) if c.n)
    return rows, kept


def test_history_total_follows_inserts_and_deletes_of_every_kind(
        app, client, operator_key, viewer_key, ready):
    """Rows stored by the ORM, by the send route's Core insert, deleted one by one and in bulk:
    the trigger-kept counters always equal a count of the rows, and `total` reads them."""
    from sqlalchemy import delete

    from app.extensions import db
    from app.models import Message

    alice, bob = "6281111111111@c.us", "6282222222222@c.us"
    for i in range(4):
        make_message(app, ready.id, chat_id=alice, timestamp=1_700_000_000 + i)
    make_message(app, ready.id, chat_id=bob, from_me=True, sender=None, recipient=bob)
    for text in ("one", "two"):
        assert client.post(send_url(ready), json={"chatId": bob, "text": text},
                           headers=auth(operator_key)).status_code == 202
    other = make_session(app, "other")
    make_message(app, other.id, chat_id=alice)

    rows, kept = _exact_counts(app, ready.id)
    assert rows == kept == {(alice, False): 4, (bob, True): 3}
    assert history(client, viewer_key, ready)["total"] == 7
    assert history(client, viewer_key, ready, f"?chatId={bob}")["total"] == 3
    assert history(client, viewer_key, ready, "?direction=incoming")["total"] == 4
    assert history(client, viewer_key, ready, f"?chatId={alice}&direction=outgoing")["total"] == 0

    with app.app_context():  # one row, then a bulk delete of a chat
        oldest = db.session.scalar(Message.__table__.select().with_only_columns(Message.id)
                                   .where(Message.session_id == ready.id, Message.chat_id == alice)
                                   .order_by(Message.timestamp).limit(1))
        db.session.execute(delete(Message).where(Message.id == oldest))
        db.session.execute(delete(Message).where(Message.session_id == ready.id,
                                                 Message.chat_id == bob))
        db.session.commit()
    rows, kept = _exact_counts(app, ready.id)
    assert rows == kept == {(alice, False): 3}
    assert history(client, viewer_key, ready)["total"] == 3

    # Deleting a session takes its counters with it; the other session's stay.
    assert client.delete(f"/api/sessions/{ready.id}", headers=auth(operator_key)).status_code == 204
    assert _exact_counts(app, ready.id) == ({}, {})
    assert _exact_counts(app, other.id)[1] == {(alice, False): 1}


def test_history_total_with_a_time_or_type_filter_counts_the_matching_rows(
        app, client, viewer_key, ready):
    for i in range(3):
        make_message(app, ready.id, timestamp=1_700_000_000 + 100 * i)
    make_message(app, ready.id, type="location", body=None, timestamp=1_700_000_500)
    assert history(client, viewer_key, ready, "?since=1700000100000")["total"] == 3
    assert history(client, viewer_key, ready, "?until=1700000100000")["total"] == 2
    assert history(client, viewer_key, ready, "?type=location")["total"] == 1
    assert history(client, viewer_key, ready)["total"] == 4


def _spy_on_reply_waits(monkeypatch) -> list[tuple[str, str]]:
    """Record every subscription and every BLPOP the API makes (name, key)."""
    seen: list[tuple[str, str]] = []
    for cls, name in ((redis_lib.client.PubSub, "subscribe"), (redis_lib.client.PubSub, "psubscribe"),
                      (redis_lib.Redis, "blpop")):
        real = getattr(cls, name)

        def spy(obj, *keys, _name=name, _real=real, **kwargs):
            flat = keys[0] if keys and isinstance(keys[0], list) else keys
            seen.extend((_name, key.decode() if isinstance(key, bytes) else key) for key in flat)
            return _real(obj, *keys, **kwargs)
        monkeypatch.setattr(cls, name, spy)
    return seen


def _rung_message(session_id: str) -> str:
    """The first message id rung on the session's bell, waited for (up to 5 s)."""
    bell = celery_app.backend.client
    deadline = time.monotonic() + 5
    while not (rung := bell.lrange(f"openwa:bell:{session_id}", 0, -1)):
        assert time.monotonic() < deadline
        time.sleep(0.005)
    return str(rung[0].decode())


def _answer_as_a_pass(app, session_id: str) -> None:
    """A stand-in session host: waits for the send on the bell, answers it as a pass does."""
    with app.app_context():
        message_id = _rung_message(session_id)
        doorbell.answer([(f"send-{message_id}", replies.ok(
            {"messageId": f"true_{CHAT}_{message_id}", "timestamp": 1700000000}))])


@pytest.mark.parametrize("answered", ["while the request waits", "before it starts waiting"])
def test_a_send_waits_for_its_reply_on_its_own_list_without_subscribing(
        app, client, operator_key, ready, monkeypatch, answered):
    """Scale (issue 18): the request that rang waits with one BLPOP on its send's reply list;
    it subscribes to nothing (Celery's result wait was a SUBSCRIBE, a GET of the result key
    and an UNSUBSCRIBE per send). A reply stored before the wait begins is not missed, and
    the list is empty once the reply is taken."""
    monkeypatch.setattr(app.config["OPENWA"], "send_wait_timeout", 10.0)
    seen = _spy_on_reply_waits(monkeypatch)
    stand_in = threading.Thread(target=_answer_as_a_pass, args=(app, ready.id))
    if answered == "before it starts waiting":
        real_wait = doorbell.wait_answer

        def wait_after_the_answer(task_id, timeout):
            stand_in.start()
            stand_in.join()
            return real_wait(task_id, timeout)
        monkeypatch.setattr(doorbell, "wait_answer", wait_after_the_answer)
    else:
        stand_in.start()
    started = time.monotonic()
    response = client.post(send_url(ready), json={"chatId": CHAT, "text": "hello"},
                           headers=auth(operator_key))
    stand_in.join()
    assert response.status_code == 201, response.get_json()
    assert time.monotonic() - started < 5
    [row] = messages_of(app, ready.id)
    assert response.get_json()["messageId"] == f"true_{CHAT}_{row.id}"
    assert seen == [("blpop", f"openwa:reply:send-{row.id}")]
    with app.app_context():
        assert celery_app.backend.client.exists(f"openwa:reply:send-{row.id}") == 0
        # Celery's result is still written, for any other waiter (an Idempotency-Key retry).
        assert celery_app.AsyncResult(f"send-{row.id}").state == "SUCCESS"


def test_a_send_whose_task_failed_answers_202_at_once(app, client, operator_key, ready, monkeypatch):
    """The send task raised (Celery stores its error): its failure hook tells the request on
    the reply list, which answers 202 pending without waiting out SEND_WAIT_TIMEOUT."""
    from tasks.sessions import send_message

    monkeypatch.setattr(app.config["OPENWA"], "send_wait_timeout", 30.0)

    def failing_host() -> None:
        with app.app_context():
            task_id = f"send-{_rung_message(ready.id)}"
            send_message.on_failure(RuntimeError("database down"), task_id, [], {}, None)

    stand_in = threading.Thread(target=failing_host)
    stand_in.start()
    started = time.monotonic()
    response = client.post(send_url(ready), json={"chatId": CHAT, "text": "hello"},
                           headers=auth(operator_key))
    stand_in.join()
    assert time.monotonic() - started < 10
    assert response.status_code == 202, response.get_json()
    [row] = messages_of(app, ready.id)
    assert response.get_json() == {"id": row.id, "status": "pending"}
