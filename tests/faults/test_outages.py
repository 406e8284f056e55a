"""Redis down for a minute and PostgreSQL restarted, under load: 503s but never 500s,
every process reconnects by itself, and nothing accepted is lost."""
from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter

import pytest

from tests.faults.conftest import LivePlatform, base_env, sent_ids
from tests.integration.conftest import wait_for

pytestmark = [pytest.mark.faults, pytest.mark.slow]

# The issue asks for 60 s; REDIS_OUTAGE_SECONDS shortens it for a quick local run.
OUTAGE = float(os.environ.get("REDIS_OUTAGE_SECONDS", "60"))


def test_redis_down_for_a_minute_then_back_loses_nothing_accepted(live, private_redis, tmp_path):
    live.start_api()
    live.start("worker")
    live.start("beat")
    host = live.start("host", SESSION_HOST_NAME="host-a@test")
    wait_for(lambda: live.call("GET", "/health/detailed").json()["checks"]["workers"]["liveHosts"] == 1,
             30, 0.1, "the host")
    session = live.create_ready_session("steady")

    # Freeze the host so accepted sends wait in Redis, then lose Redis with what it held.
    os.killpg(host.pid, signal.SIGSTOP)
    accepted = []
    for n in range(20):
        reply = live.call("POST", "/sessions/steady/messages/send-text",
                          json={"chatId": "15551230002", "text": f"before {n}"})
        assert reply.status_code == 202, reply.text
        accepted.append(reply.json()["id"])
    private_redis.kill()
    os.killpg(host.pid, signal.SIGCONT)

    during: Counter[int] = Counter()
    outage_ends = time.monotonic() + OUTAGE
    while time.monotonic() < outage_ends:
        reply = live.call("POST", "/sessions/steady/messages/send-text",
                          json={"chatId": "15551230002", "text": "during"})
        during[reply.status_code] += 1
        assert reply.status_code != 500, reply.text
        assert live.call("GET", "/health/ready").status_code == 503
        time.sleep(0.5)
    assert set(during) <= {503, 409}, during
    assert during[503] > 0

    private_redis.start()
    back_at = time.monotonic()

    def first_success():
        reply = live.call("POST", "/sessions/steady/messages/send-text",
                          json={"chatId": "15551230002", "text": "after"})
        if reply.status_code in (201, 202):
            accepted.append(reply.json().get("id") or reply.json()["messageId"].rsplit("_", 1)[1])
            return True
        return False

    wait_for(first_success, 60, 0.5, "sends to be accepted again")
    recovered = time.monotonic() - back_at
    profile = tmp_path / "sessions" / session["id"]
    wait_for(lambda: set(accepted) <= set(sent_ids(profile)), 90, 0.5,
             "every accepted message to be sent (the sweep re-enqueues the lost ones)")
    sent = sent_ids(profile)
    assert len(sent) == len(set(sent)) and set(sent) == set(accepted)
    assert all(proc.alive() for proc in live.procs), "a process died instead of reconnecting"
    print(f"\nredis outage {OUTAGE:.0f} s: during it {dict(during)}; "
          f"sends accepted again {recovered:.1f} s after Redis came back; "
          f"{len(accepted)} accepted, {len(sent)} sent, 0 duplicates")


def test_postgres_restart_under_load_gives_no_500s_and_needs_no_restart(private_postgres,
                                                                        private_redis, tmp_path):
    env = base_env(tmp_path, private_redis.url,
                   {"DATABASE_TYPE": "postgres", "DATABASE_URL": private_postgres.url})
    live = LivePlatform(env, tmp_path)
    try:
        live.start_api()
        live.start("host", SESSION_HOST_NAME="host-a@test")
        wait_for(lambda: live.call("GET", "/health/detailed").json()["checks"]["workers"]["liveHosts"] == 1,
                 30, 0.1, "the host")
        live.create_ready_session("pgload")
        codes: Counter[int] = Counter()
        successes: list[float] = []
        stop = threading.Event()

        def load() -> None:
            while not stop.is_set():
                for method, path, body in (
                        ("GET", "/sessions/pgload", None),
                        ("GET", "/sessions/pgload/messages?limit=5", None),
                        ("POST", "/sessions/pgload/messages/send-text",
                         {"chatId": "15550000000", "text": "load"})):
                    try:
                        reply = live.call(method, path, json=body)
                    except Exception:
                        codes[-1] += 1
                        continue
                    codes[reply.status_code] += 1
                    if reply.status_code < 400:
                        successes.append(time.monotonic())
                time.sleep(0.02)

        threads = [threading.Thread(target=load) for _ in range(3)]
        [t.start() for t in threads]
        time.sleep(2)
        private_postgres.stop("fast")
        time.sleep(3)
        private_postgres.start()
        back_at = time.monotonic()
        wait_for(lambda: successes and successes[-1] > back_at + 0.1, 30, 0.1,
                 "requests to succeed again")
        recovered = min(t for t in successes if t > back_at) - back_at
        time.sleep(2)
        stop.set()
        [t.join(10) for t in threads]
        assert codes[500] == 0, codes
        assert set(codes) <= {200, 201, 202, 503, 409}, codes
        assert all(proc.alive() for proc in live.procs)
        assert live.call("GET", "/sessions/pgload").status_code == 200
        print(f"\npostgres restart: status codes {dict(codes)}; first success "
              f"{recovered:.2f} s after the server was back")
    except BaseException:
        for proc in live.procs:  # the errors, not the access log
            lines = [line for line in proc.output().splitlines()
                     if "openwa.access" not in line and "celery.app.trace" not in line]
            print(f"----- {proc.role} -----\n" + "\n".join(lines[-150:]))
        raise
    finally:
        live.stop_all()
