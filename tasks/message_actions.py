"""Message actions that are not sends (issue 13.1), on the session's own queue: the lifecycle
is :func:`app.services.message_actions.perform`; this is its entry point."""
from __future__ import annotations

from typing import Any

from celery.exceptions import Reject

from app.common.names import Tasks
from app.services import message_actions, messages
from engines import Engine
from tasks.base import openwa_task
from tasks.host import runtime


@openwa_task(Tasks.MESSAGE_ACTION)
def perform_action(action_id: str) -> dict[str, Any]:
    try:
        return message_actions.perform(action_id, _held_engine)
    except messages.NotHeld as error:
        # Only in a race with a stop or a handover: put it back for the holder.
        raise Reject(str(error), requeue=True) from None


def _held_engine(session_id: str) -> Engine | None:
    held = runtime().held.get(session_id)
    return None if held is None else held.engine
