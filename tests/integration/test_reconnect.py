"""An engine that drops reconnects by itself; one that cannot goes failed and stays so."""
from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.integration


def test_a_dropped_engine_reconnects_by_itself(platform):
    platform.start_host()
    session = platform.create_ready_session("flaky")
    reply = platform.api("POST", "/sessions/flaky/mock/disconnect", json={"failReconnects": 1})
    assert reply.status_code == 200
    platform.wait_status("flaky", "disconnected", timeout=5)
    # One refused attempt (1-2 s), then the next one (2-4 s later) succeeds.
    back = platform.wait_status("flaky", "ready", timeout=15)
    assert back["phone"] == session["phone"]
    assert platform.api("POST", "/sessions/flaky/messages/send-text",
                        json={"chatId": "15550000000", "text": "back"}).status_code == 201


def test_reconnection_exhausted_fails_the_session_and_nothing_restarts_it(platform):
    platform.start_host(MAX_RECONNECT_ATTEMPTS="2")
    platform.start("beat")
    platform.start("worker")
    platform.create_ready_session("doomed")
    assert platform.api("POST", "/sessions/doomed/mock/disconnect",
                        json={"failReconnects": 10}).status_code == 200
    failed = platform.wait_status("doomed", "failed", timeout=20)
    assert "reconnection failed" in failed["lastError"]
    row = platform.session_row("doomed")
    assert row.desired_state == "stopped"
    time.sleep(3)  # several probe rounds (every 1 s): none may start it again
    assert platform.session_row("doomed").status == "failed"
    # The user may start it again; the link is still in the profile.
    assert platform.api("POST", "/sessions/doomed/start").status_code == 200
    platform.wait_status("doomed", "ready", timeout=15)
