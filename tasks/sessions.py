"""Tasks that run on session hosts: life cycle on ``host.<name>``, commands on ``session.<id>``.

Every task takes ids, loads its rows and can run twice without harm. Replies are built by
``app/services/replies.py``, which maps engine errors to codes and HTTP statuses.
"""
from __future__ import annotations

import logging
from typing import Any

from celery.exceptions import Reject

from app import logs
from app.common.names import Tasks
from app.extensions import db
from app.models import RUNNING, Session
from app.services import doorbell, messages
from app.services.replies import engine_failure, fail, ok
from engines import Engine, EngineError, get_engine_class
from tasks.base import openwa_task
from tasks.host import runtime

log = logging.getLogger(__name__)

#: Engine methods the API may call; an engine adds its own test hooks (Engine.test_hooks).
QUERY_METHODS = frozenset({"contacts", "chats", "groups", "check_number", "request_pairing_code"})


@openwa_task(Tasks.START_SESSION)
def start_session(session_id: str) -> dict[str, Any]:
    logs.session_id.set(session_id)
    session = db.session.get(Session, session_id)
    if session is None or session.desired_state != RUNNING:
        return ok("not-wanted")
    return ok(runtime().start_session(session_id))


@openwa_task(Tasks.STOP_SESSION)
def stop_session(session_id: str) -> dict[str, Any]:
    logs.session_id.set(session_id)
    session = db.session.get(Session, session_id)
    if session is not None and session.desired_state == RUNNING:
        return ok("restarted-since")  # a start came after this stop: keep running
    runtime().stop_session(session_id)
    return ok("stopped")


@openwa_task(Tasks.LOGOUT_SESSION)
def logout_session(session_id: str) -> dict[str, Any]:
    logs.session_id.set(session_id)
    host = runtime()
    if session_id not in host.held:
        return ok("not-held")
    host.stop_session(session_id, logout=True)
    return ok("logged-out")


def _answer_failure(task: Any, exc: BaseException, task_id: str, args: Any, kwargs: Any,
                    einfo: Any) -> None:
    """The send task raised: Celery stores the error as its result; the request that rang
    waits on the send's reply list (doorbell.wait_answer), so it is told there too, and
    answers 202 at once instead of at its timeout."""
    try:
        doorbell.answer_failed(task_id)
    except Exception as error:  # noqa: BLE001 - Redis is down: the request times out (202)
        log.warning("could not answer the failure of %s: %s", task_id, type(error).__name__)


@openwa_task(Tasks.SEND_MESSAGE, ignore_result=True, store_errors_even_if_ignored=True,
             on_failure=_answer_failure)
def send_message(message_id: str, session_id: str | None = None) -> dict[str, Any]:
    """The send lifecycle is :func:`app.services.messages.deliver`; this is its entry point.
    With ``session_id`` (the doorbell, app/services/doorbell.py) it also delivers every send
    rung for that session since the last pass, oldest first, each reply (its own message's
    too) stored under that send's own task id once the pass committed."""
    held = runtime().held
    # How far each held session's older sends are settled (order across kills): kept on the
    # hold, so a session this host takes over is looked at whole once.
    # A doorbell task names its session: only that one's watermark, not one per held session
    # on every send (a cost that grew with the host's sessions times its sends).
    settled = ({session_id: held[session_id].settled_seq} if session_id in held
               else {sid: h.settled_seq for sid, h in held.items()})
    # A doorbell pass reads its messages, oldest first, and the older sends of the session
    # that are still unsettled in one query (messages.pass_rows); a lone send loads its own.
    todo: list[tuple[str, Any]] = [(message_id, False)]
    unsettled: list[Any] | None = None
    if session_id:
        taken = [message_id, *(m for m in doorbell.take(session_id) if m != message_id)]
        if session_id in held:
            todo, unsettled = messages.pass_rows(session_id, taken, settled[session_id])
        else:  # not ours (a race with a handover): the first deliver raises NotHeld
            todo = [(m, False) for m in taken]
    reply: dict[str, Any] = {}
    done: list[tuple[str, dict[str, Any]]] = []
    sent_pass = messages.SendPass()
    try:
        # One transaction for the pass's `sent` records (scale, issue 18): the replies are
        # handed out once it committed.
        with messages.send_pass() as sent_pass:
            while todo:
                other, row = todo[0]
                answer = messages.deliver(other, _held_engine, settled, row=row,
                                          unsettled=unsettled)
                todo.pop(0)
                done.append((other, answer))
        return next((answer for other, answer in done if other == message_id), reply)
    except messages.NotHeld as error:
        # Only in a race with a stop or a handover: put it back for the holder.
        raise Reject(str(error), requeue=True) from None
    finally:
        # Every reply, this task's own included, is stored here, right after the commit:
        # the task ignores its result (Celery would store the own one again, after its
        # post-run bookkeeping, with a read first); an error is still stored by Celery.
        if sent_pass.committed:
            try:
                doorbell.answer([(messages.send_task_id(other), answer) for other, answer in done])
            finally:
                sent_pass.announce()  # webhook nudges and live events: after the replies
        if session_id and todo:
            doorbell.put_back(session_id, [m for m, _ in todo if m != message_id])
        for sid, seq in settled.items():
            if sid in held and sent_pass.committed:
                held[sid].settled_seq = seq  # not past sends whose records rolled back


def _held_engine(session_id: str) -> Engine | None:
    held = runtime().held.get(session_id)
    return None if held is None else held.engine


@openwa_task(Tasks.ENGINE_QUERY)
def engine_query(session_id: str, method: str, args: list[Any]) -> dict[str, Any]:
    logs.session_id.set(session_id)
    host = runtime()
    if method not in QUERY_METHODS | get_engine_class(host.config.engine_type).test_hooks:
        return fail("ENGINE_UNSUPPORTED", f"unknown engine call {method!r}")
    held = host.held.get(session_id)
    if held is None:
        raise Reject(f"session {session_id} is not held here", requeue=True)
    function = getattr(held.engine, method, None)
    if function is None:
        return fail("ENGINE_UNSUPPORTED", f"{held.engine.name} engine cannot {method}")
    try:
        result = function(*args)
    except EngineError as error:
        return engine_failure(error)
    finally:
        host.drain(session_id)
    if hasattr(result, "exists"):  # NumberStatus
        result = {"exists": result.exists, "whatsappId": result.whatsapp_id}
    return ok(result)


# -- chats, contacts, groups (issue 13.2/3) -------------------------------------------------
#: Engine methods that change something on the account (chats, contacts, presence, groups):
#: commands on the session's own queue, so they run in order with its sends. Reads of the
#: same area are queries (QUERY_METHODS_CHATS, allowed by engine_query as well).
COMMAND_METHODS = frozenset({
    "block_contact", "mark_chat_read", "archive_chat", "pin_chat", "mute_chat", "delete_chat",
    "set_presence", "set_chat_state", "create_group", "change_participants",
    "set_group_subject", "set_group_description", "set_group_settings", "join_group",
    "leave_group", "group_invite_code"})
QUERY_METHODS_CHATS = frozenset({"contact", "contact_picture", "group_info"})
QUERY_METHODS = QUERY_METHODS | QUERY_METHODS_CHATS


@openwa_task(Tasks.ENGINE_COMMAND)
def engine_command(session_id: str, method: str, args: list[Any]) -> dict[str, Any]:
    """One write on the session's engine; answered like a query (replies.ok / fail)."""
    logs.session_id.set(session_id)
    host = runtime()
    if method not in COMMAND_METHODS:
        return fail("ENGINE_UNSUPPORTED", f"unknown engine command {method!r}")
    held = host.held.get(session_id)
    if held is None:
        raise Reject(f"session {session_id} is not held here", requeue=True)
    try:
        result = getattr(held.engine, method)(*args)
    except EngineError as error:
        return engine_failure(error)
    except ValueError as error:  # the engine refused an argument the API let through
        return fail("ENGINE_ERROR", str(error))
    finally:
        host.drain(session_id)
    return ok(result)
