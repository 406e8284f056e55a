"""The session queue as a doorbell (issue 18): one send task per pass, not per send. On real
Redis and real databases with the mock engine: only the send that finds no task on its way
enqueues one; a pass takes every rung send at once and sends them oldest first, each reply
stored under that send's own task id; what a pass could not deliver goes back on the list;
and the mock's idempotent text send skips the ``sending`` commit without doubling a send."""
from __future__ import annotations

import json
import time
import uuid
from types import SimpleNamespace
from typing import Any

import pytest
from celery.exceptions import Reject
from flask import Flask
from sqlalchemy import event as sa_event
from sqlalchemy import select

from app.extensions import celery_app, db
from app.models import Message, MessageStatus
from app.services import doorbell, messages
from engines import SentMessage
from engines.mock import ECHO_ID, SENT_FILE, MockEngine
from tests.factories import CountingEngine, make_session, messages_of, record_selects


def _pending(app: Flask, session_id: str, text: str) -> str:
    message_id = messages.new_message_id()
    with app.app_context():
        db.session.add(Message(id=message_id, session_id=session_id, chat_id=ECHO_ID,
                               from_me=True, type="text", body=text,
                               status=MessageStatus.PENDING, timestamp=int(time.time())))
        db.session.commit()
    return message_id


def _sent_log(engine: MockEngine) -> list[str]:
    path = engine.profile_dir / SENT_FILE
    return [json.loads(line)["id"] for line in path.read_text().splitlines()] if path.exists() else []


def test_only_the_send_that_finds_no_task_on_its_way_enqueues_one(app: Flask) -> None:
    sid = f"s-{uuid.uuid4().hex}"
    with app.app_context():
        assert doorbell.ring(sid, "m1") is True
        assert doorbell.ring(sid, "m2") is False  # the task of m1 will take it
        assert doorbell.ring(sid, "m3") is False
        assert doorbell.take(sid) == ["m1", "m2", "m3"]
        assert doorbell.take(sid) == []
        # Taken: the flag is down, so the next send enqueues a task of its own.
        assert doorbell.ring(sid, "m4") is True
        # Its task could not be enqueued (503): off the list, flag down.
        doorbell.unring(sid, "m4")
        assert doorbell.take(sid) == []
        assert doorbell.ring(sid, "m5") is True
        doorbell.put_back(sid, ["m6", "m7"])
        assert doorbell.take(sid) == ["m5", "m6", "m7"]


def _run_pass(monkeypatch: pytest.MonkeyPatch, engine: MockEngine | None, session_id: str,
              message_id: str) -> dict[str, Any]:
    import tasks.sessions as task_module

    held = {} if engine is None else {session_id: SimpleNamespace(engine=engine, settled_seq=0)}
    monkeypatch.setattr(task_module, "runtime", lambda: SimpleNamespace(held=held))
    return task_module.send_message.run(message_id, session_id)  # type: ignore[no-any-return]


def test_a_pass_sends_every_rung_message_oldest_first_and_answers_each(
        app: Flask, engine: CountingEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    session = make_session(app, status="ready")
    first, second, third = (_pending(app, session.id, t) for t in ("one", "two", "three"))
    with app.app_context():
        # Rung out of order (concurrent API requests): the pass still sends by seq.
        assert doorbell.ring(session.id, third) is True
        doorbell.ring(session.id, first)
        doorbell.ring(session.id, second)
        reply = _run_pass(monkeypatch, engine, session.id, third)
        assert doorbell.take(session.id) == []
        answers = {m: celery_app.backend.get_task_meta(messages.send_task_id(m)) for m in (first, second)}
        # Each request that rang waits on its own reply list (the API's wait): one reply each.
        on_lists = {m: doorbell.wait_answer(messages.send_task_id(m), 1.0) for m in (first, second, third)}
        assert all(doorbell.wait_answer(messages.send_task_id(m), 0) is None for m in on_lists)
    rows = {m.id: m for m in messages_of(app, session.id)}
    for m, on_list in on_lists.items():
        assert on_list == {"ok": True, "result": {"messageId": rows[m].wa_message_id,
                                                  "timestamp": rows[m].timestamp}}
    assert engine.sends == [first, second, third]
    assert _sent_log(engine) == [first, second, third]
    assert all(row.status == MessageStatus.SENT for row in rows.values())
    assert reply == {"ok": True, "result": {"messageId": rows[third].wa_message_id,
                                            "timestamp": rows[third].timestamp}}
    for m, meta in answers.items():
        assert meta["status"] == "SUCCESS"
        assert meta["result"]["result"]["messageId"] == rows[m].wa_message_id
    # The task's own reply is stored by the pass itself (the task ignores its result; run
    # here without Celery's tracer, nothing else would store it).
    with app.app_context():
        own = celery_app.backend.get_task_meta(messages.send_task_id(third))
    assert own["status"] == "SUCCESS" and own["result"] == reply


def test_an_answer_reads_as_celerys_own_result_and_expires_with_it(app: Flask) -> None:
    """Scale (issue 18): ``answer`` writes the result without Celery's read-before-write;
    what it writes is what ``AsyncResult`` reads, with the result store's expiry."""
    task_id = f"send-{uuid.uuid4().hex}"
    reply = {"ok": True, "result": {"messageId": "true_1@c.us_X", "timestamp": 1700000000}}
    with app.app_context():
        doorbell.answer([(task_id, reply)])
        result = celery_app.AsyncResult(task_id)
        assert result.state == "SUCCESS" and result.get(timeout=1) == reply
        assert result.date_done is not None
        backend = celery_app.backend
        ttl = backend.client.ttl(backend.get_key_for_task(task_id))
        list_ttl = backend.client.ttl(f"openwa:reply:{task_id}")
    assert 0 < ttl <= celery_app.conf.result_expires
    assert 0 < list_ttl <= doorbell.REPLY_TTL  # a reply nobody takes from its list expires


@pytest.mark.parametrize("watermark", ["none yet", "after an earlier pass"])
def test_a_pass_reads_its_sends_and_the_older_unsettled_ones_in_one_query(
        app: Flask, engine: CountingEngine, monkeypatch: pytest.MonkeyPatch, watermark: str) -> None:
    """Scale (issue 18): a pass loads its messages and the session's older sends left
    unsettled (committed, never rung: an API worker killed between its commit and its ring)
    in one query, and still sends them all oldest first, once; a newer unrung send is left
    for its own ring."""
    import tasks.sessions as task_module

    session = make_session(app, status="ready")
    hold = SimpleNamespace(engine=engine, settled_seq=0)
    monkeypatch.setattr(task_module, "runtime", lambda: SimpleNamespace(held={session.id: hold}))
    if watermark == "after an earlier pass":
        earlier = _pending(app, session.id, "earlier")
        with app.app_context():
            doorbell.ring(session.id, earlier)
            task_module.send_message.run(earlier, session.id)
        assert hold.settled_seq > 0
        engine.sends.clear()
    left, first, second, between, third = (
        _pending(app, session.id, t) for t in ("left", "first", "second", "between", "third"))
    newer = _pending(app, session.id, "newer, not rung yet")
    seen, stop = record_selects(app, "messages")
    try:
        with app.app_context():
            for m in (third, first, second):
                doorbell.ring(session.id, m)
            seen.clear()  # the pass's reads only
            reply = task_module.send_message.run(third, session.id)
    finally:
        stop()
    assert len(seen) == 1, seen
    assert engine.sends == [left, first, second, between, third]
    assert reply["ok"] is True
    status = {m.id: m.status for m in messages_of(app, session.id)}
    assert {m: status[m] for m in (left, first, second, between, third)} == dict.fromkeys(
        (left, first, second, between, third), MessageStatus.SENT)
    assert status[newer] == MessageStatus.PENDING
    # The next pass goes on from the watermark: the newer send, once.
    with app.app_context():
        doorbell.ring(session.id, newer)
        task_module.send_message.run(newer, session.id)
    assert engine.sends == [left, first, second, between, third, newer]


def test_a_pass_on_a_host_that_does_not_hold_the_session_puts_the_sends_back(
        app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    session = make_session(app, status="ready")
    own, other = _pending(app, session.id, "own"), _pending(app, session.id, "other")
    with app.app_context():
        doorbell.ring(session.id, own)
        doorbell.ring(session.id, other)
        with pytest.raises(Reject):
            _run_pass(monkeypatch, None, session.id, own)
        # Its own message goes back with the requeued task; the other one on the list.
        assert doorbell.take(session.id) == [other]
    assert {m.status for m in messages_of(app, session.id)} == {MessageStatus.PENDING}


def test_an_idempotent_engine_send_skips_sending_and_a_resend_after_a_crash_is_not_doubled(
        app: Flask, engine: CountingEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    assert "text" in engine.idempotent_sends
    session = make_session(app, status="ready")
    message_id = _pending(app, session.id, "once")
    statuses: list[str] = []
    real_send = engine.send_text

    def crash_after_send(chat_id: str, text: str, **kwargs: Any) -> SentMessage:
        # The host's own session at the engine call: `sending` was neither written nor committed.
        statuses.append(db.session.execute(
            select(Message.status).where(Message.id == kwargs["message_id"])).scalar_one())
        real_send(chat_id, text, **kwargs)
        raise SystemExit("host killed after the engine sent")  # nothing recorded

    monkeypatch.setattr(engine, "send_text", crash_after_send)
    with app.app_context(), pytest.raises(SystemExit):
        messages.deliver(message_id, lambda sid: engine)
    assert statuses == [MessageStatus.PENDING]  # no `sending` commit before the engine call
    monkeypatch.setattr(engine, "send_text", real_send)
    with app.app_context():
        db.session.rollback()
        reply = messages.deliver(message_id, lambda sid: engine)  # the redelivery
    assert reply["ok"] is True
    assert _sent_log(engine) == [message_id]  # went out once
    assert messages_of(app, session.id)[0].status == MessageStatus.SENT


def test_a_pass_records_its_sends_in_one_commit_and_answers_only_after_it(
        app: Flask, engine: CountingEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Scale (issue 18): one transaction per pass. A host killed in the pass, after the
    engine sent every message, has recorded and answered none of them; the redelivered pass
    sends none again, records all three in one commit and then answers each."""
    session = make_session(app, status="ready")
    ids = [_pending(app, session.id, t) for t in ("one", "two", "three")]
    real_send = engine.send_text

    def killed_after_the_last(chat_id: str, text: str, **kwargs: Any) -> SentMessage:
        sent = real_send(chat_id, text, **kwargs)
        if kwargs["message_id"] == ids[-1]:
            raise SystemExit("host killed in the pass")
        return sent

    def replies() -> list[str]:
        return [celery_app.backend.get_task_meta(messages.send_task_id(m))["status"] for m in ids[1:]]

    with app.app_context():
        for m in ids:
            doorbell.ring(session.id, m)
        monkeypatch.setattr(engine, "send_text", killed_after_the_last)
        with pytest.raises(SystemExit):
            _run_pass(monkeypatch, engine, session.id, ids[0])
        db.session.rollback()
        assert replies() == ["PENDING", "PENDING"]  # nobody was told `sent` of an unrecorded row
    assert {m.status for m in messages_of(app, session.id)} == {MessageStatus.PENDING}
    assert _sent_log(engine) == ids

    monkeypatch.setattr(engine, "send_text", real_send)
    commits: list[int] = []
    with app.app_context():
        for m in ids:
            doorbell.ring(session.id, m)
        db.session.commit()  # the rings' own reads done: count the pass's commits only
        sa_event.listen(db.session(), "after_commit", lambda _s: commits.append(1))
        reply = _run_pass(monkeypatch, engine, session.id, ids[0])
        assert replies() == ["SUCCESS", "SUCCESS"]
    assert reply["ok"] is True
    assert _sent_log(engine) == ids  # none went out twice
    assert [m.status for m in messages_of(app, session.id)] == [MessageStatus.SENT] * 3
    assert len(commits) == 1


def test_a_pass_nudges_webhooks_and_publishes_live_events_after_its_replies(
        app: Flask, engine: CountingEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Scale (issue 18): the webhook nudge and the live message.sent frame of a pass are
    broker round trips that the API requests waiting for its replies need not wait for: they
    go out after the replies are stored, and still go out (both committed with the pass)."""
    from app import live
    from app.models import Webhook
    from app.services import webhooks

    session = make_session(app, status="ready")
    with app.app_context():
        db.session.add(Webhook(session_id=session.id, url="http://127.0.0.1:9/hook", events=["*"]))
        db.session.commit()
    first, second = (_pending(app, session.id, t) for t in ("one", "two"))
    backend = celery_app.backend
    announced: list[tuple[str, Any, bool]] = []

    def replies_stored() -> bool:
        return all(backend.client.exists(backend.get_key_for_task(messages.send_task_id(m)))
                   for m in (first, second))

    def spy(name: str, original: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            announced.append((name, args[-1], replies_stored()))
            return original(*args, **kwargs)
        return call

    monkeypatch.setattr(webhooks, "kick", spy("kick", webhooks.kick))
    monkeypatch.setattr(live, "publish", spy("live", live.publish))
    with app.app_context():
        doorbell.ring(session.id, first)
        doorbell.ring(session.id, second)
        _run_pass(monkeypatch, engine, session.id, first)
    assert [name for name, _, _ in announced] == ["kick", "live"]
    assert all(stored for _, _, stored in announced), announced
    kicked, frames = announced[0][1], announced[1][1]
    assert len(kicked) == 2  # the pass's two message.sent outbox rows, one webhook
    assert [(event, data["id"]) for _, event, data in frames] == [
        ("message.sent", first), ("message.sent", second)]


def test_a_send_task_that_raises_tells_the_request_waiting_on_its_reply_list(
        app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    """Scale (issue 18): the request that rang waits on its reply list, which Celery's error
    result does not reach; the task's failure hook (run by Celery's tracer) puts a failure
    there, so the wait ends at once (the API answers 202: the send is still not done)."""
    import tasks.sessions as task_module

    session = make_session(app, status="ready")
    message_id = _pending(app, session.id, "boom")
    task_id = messages.send_task_id(message_id)

    def broken_runtime() -> Any:
        raise RuntimeError("the host's state is gone")
    monkeypatch.setattr(task_module, "runtime", broken_runtime)
    with app.app_context():
        doorbell.ring(session.id, message_id)
        outcome = task_module.send_message.apply(args=[message_id, session.id], task_id=task_id)
        assert outcome.failed()
        client = celery_app.backend.client
        [raw] = client.lrange(f"openwa:reply:{task_id}", 0, -1)
        assert celery_app.backend.decode(raw)["status"] == "FAILURE"
        started = time.monotonic()
        assert doorbell.wait_answer(task_id, 5.0) is None
        assert time.monotonic() - started < 1


def test_a_reply_wait_ends_inside_the_result_stores_socket_timeout(
        app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    """A SEND_WAIT_TIMEOUT longer than the result store's socket timeout would end the
    BLPOP with a socket error; the wait stays a second inside it and answers None."""
    with app.app_context():
        backend = celery_app.backend
        monkeypatch.setitem(backend.connparams, "socket_timeout", 1.5)
        started = time.monotonic()
        assert doorbell.wait_answer(f"send-{uuid.uuid4().hex}", 30.0) is None
        assert 0.3 < time.monotonic() - started < 1.5
