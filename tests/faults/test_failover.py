"""kill -9 and SIGTERM of session hosts under load: sessions come back elsewhere without a
QR, and every message the API accepted is sent exactly once."""
from __future__ import annotations

import signal
import statistics
import threading
import time

import pytest
from sqlalchemy import create_engine, text

from tests.faults.conftest import sent_ids
from tests.integration.conftest import wait_for

pytestmark = [pytest.mark.faults, pytest.mark.slow]

LEASE_TTL = 6


class Load:
    """Sends in a loop from a thread; records what the API accepted."""

    def __init__(self, live, session: str, chat: str = "15551230001") -> None:
        self.live, self.session, self.chat = live, session, chat
        self.accepted: list[str] = []
        self.refused: dict[int, int] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            reply = self.live.call("POST", f"/sessions/{self.session}/messages/send-text",
                                   json={"chatId": self.chat, "text": f"load {n}"})
            if reply.status_code == 201:
                self.accepted.append(reply.json()["messageId"].rsplit("_", 1)[1])
            elif reply.status_code == 202:
                self.accepted.append(reply.json()["id"])
            else:
                self.refused[reply.status_code] = self.refused.get(reply.status_code, 0) + 1
                time.sleep(0.05)

    def __enter__(self) -> "Load":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(30)


def _lease(live, sid: str) -> str | None:
    engine = create_engine(f"sqlite:///{live.env['DATABASE_SQLITE_PATH']}")
    with engine.connect() as conn:
        row = conn.execute(text("SELECT lease_holder FROM sessions WHERE name = :n"),
                           {"n": sid}).first()
    engine.dispose()
    return row[0] if row else None


def test_kill_9_of_a_host_under_load_fails_over_and_sends_every_message_once(live, tmp_path):
    env = {"SESSION_LEASE_TTL": str(LEASE_TTL)}
    live.start_api(**env)
    live.start("worker", **env)
    live.start("beat", **env)
    hosts = {"host-a@test": live.start("host", SESSION_HOST_NAME="host-a@test", **env)}
    wait_for(lambda: live.call("GET", "/health/detailed").json()["checks"]["workers"]["liveHosts"] == 1,
             30, 0.1, "host-a")
    session = live.create_ready_session("survivor")
    hosts["host-b@test"] = live.start("host", SESSION_HOST_NAME="host-b@test", **env)
    wait_for(lambda: live.call("GET", "/health/detailed").json()["checks"]["workers"]["liveHosts"] == 2,
             30, 0.1, "host-b")

    failovers, in_flight = [], []
    with Load(live, "survivor") as load:
        for _ in range(5):
            time.sleep(1.0)
            victim = _lease(live, "survivor")
            before = len(load.accepted)
            hosts[victim].kill()  # kill -9 of its process group
            killed_at = time.monotonic()
            wait_for(lambda: _lease(live, "survivor") not in (victim, None)
                     and live.status("survivor")["status"] == "ready", LEASE_TTL + 15, 0.05,
                     "the session to be ready on the other host")
            failovers.append(time.monotonic() - killed_at)
            in_flight.append(len(load.accepted) - before)
            assert live.status("survivor")["phone"] == session["phone"]  # no new QR: same link
            hosts[victim] = live.start("host", SESSION_HOST_NAME=victim, **env)
    accepted = load.accepted
    assert accepted, "the load generator got nothing accepted"
    assert not {code for code in load.refused if code >= 500 and code != 503}, load.refused

    profile = tmp_path / "sessions" / session["id"]
    wait_for(lambda: set(accepted) <= set(sent_ids(profile)), 60, 0.5,
             "every accepted message to be sent")
    sent = sent_ids(profile)
    assert len(sent) == len(set(sent)), "a message was sent twice"
    assert set(sent) == set(accepted), "the engine sent something the API did not accept"
    print(f"\nfailover seconds: {[round(f, 2) for f in failovers]} "
          f"median {statistics.median(failovers):.2f}; accepted during each kill window: {in_flight}; "
          f"total accepted {len(accepted)}, refused {load.refused}")
    assert max(failovers) <= LEASE_TTL + 15


def test_sigterm_on_a_host_hands_its_sessions_over_at_once(live):
    env = {"SESSION_LEASE_TTL": "30"}  # long: the handover must not wait for expiry
    live.start_api(**env)
    first = live.start("host", SESSION_HOST_NAME="host-a@test", **env)
    wait_for(lambda: live.call("GET", "/health/detailed").json()["checks"]["workers"]["liveHosts"] == 1,
             30, 0.1, "host-a")
    live.create_ready_session("handover")
    live.start("host", SESSION_HOST_NAME="host-b@test", **env)
    wait_for(lambda: live.call("GET", "/health/detailed").json()["checks"]["workers"]["liveHosts"] == 2,
             30, 0.1, "host-b")
    started = time.monotonic()
    assert first.stop(signal.SIGTERM) == 0
    wait_for(lambda: _lease(live, "handover") == "host-b@test"
             and live.status("handover")["status"] == "ready", 10, 0.05, "the handover")
    assert time.monotonic() - started < 10  # well inside the 30 s lease
    reply = live.call("POST", "/sessions/handover/messages/send-text",
                      json={"chatId": "15550000000", "text": "still here"})
    assert reply.status_code == 201


def test_sigterm_on_the_api_drains_in_flight_requests_and_reports_not_ready(live):
    api = live.start_api(API_DRAIN_SECONDS="2", SEND_WAIT_TIMEOUT="3")
    # No host on purpose: a send to a "ready" session waits SEND_WAIT_TIMEOUT, then 202.
    assert live.call("POST", "/sessions", json={"name": "drain"}).status_code == 201
    engine = create_engine(f"sqlite:///{live.env['DATABASE_SQLITE_PATH']}")
    with engine.begin() as conn:
        conn.execute(text("UPDATE sessions SET status='ready', desired_state='running' WHERE name='drain'"))
    engine.dispose()

    results: list[int] = []
    slow = threading.Thread(target=lambda: results.append(live.call(
        "POST", "/sessions/drain/messages/send-text",
        json={"chatId": "15551230001", "text": "in flight"}).status_code))
    slow.start()
    time.sleep(0.5)
    api.process.send_signal(signal.SIGTERM)
    wait_for(lambda: live.call("GET", "/health/ready").status_code == 503, 2, 0.05,
             "readiness to report draining")
    slow.join(10)
    assert results == [202]  # the request in flight finished normally
    assert api.process.wait(15) == 0
