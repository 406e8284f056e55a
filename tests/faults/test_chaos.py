"""The operator's worst day, shortened: every role killed with kill -9 under load.

Four mock sessions send to the echo contact and to each other, each with a ``*`` webhook to a
local receiver that fails about 10 % of requests at random, while a seeded schedule kills the
API master, an API worker, both session hosts, the worker, beat and Redis, one every few
seconds; a supervisor (the test's, as systemd would) restarts each after 3-5 s. Then the
load stops and the backlog must drain. Asserted: nothing the API accepted is lost, sent twice,
sent out of order or stuck short of ``read``, every event it caused reached the receiver at
least once (signed), and the outbox is empty within 15 s of the load stopping (issue 17's
target; retries here are 0.2-2 s apart, so the bound measures delivery, not the retry policy).

Knobs (environment): CHAOS_SEED, CHAOS_KILLS (at least 7: every role once), CHAOS_DRAIN_SECONDS
(how long to wait for the drain, to report it even when it misses the target).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import random
import signal
import statistics
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine, text

from tests.databases import postgres_database
from tests.faults.conftest import sent_ids
from tests.faults.services import PrivateRedis, Supervisor, children_of
from tests.integration.conftest import wait_for
from tests.live import LivePlatform, base_env

SEED = int(os.environ.get("CHAOS_SEED", "17"))
KILLS = max(7, int(os.environ.get("CHAOS_KILLS", "12")))
DRAIN_SECONDS = float(os.environ.get("CHAOS_DRAIN_SECONDS", "120"))
DRAIN_TARGET = 15.0  # issue 17: the backlog drained within 15 s of the load stopping
KILL_EVERY = (6.0, 10.0)  # seconds between kills (the 20-40 s, shortened)
RESTART_AFTER = (3.0, 5.0)  # the supervisor's restart delay
SEND_EVERY = 0.35  # seconds between two sends of one session
SESSIONS = ("chaos-a", "chaos-b", "chaos-c", "chaos-d")
ROLES = ("api-master", "api-worker", "host-a", "host-b", "worker", "beat", "redis")
SECRET = "chaos-webhook-secret"
LEASE_TTL = 5
# Set-up, the kills (each waits for the last victim to be back), then the drain's bound.
pytestmark = [pytest.mark.faults, pytest.mark.slow,
              pytest.mark.timeout(int(120 + KILLS * 25 + DRAIN_SECONDS))]
ENV = {
    "SESSION_LEASE_TTL": str(LEASE_TTL), "SESSIONS_PER_HOST": "10", "API_WORKERS": "2",
    "ENCRYPTION_KEY": "chaos-encryption-key-abcdefghijkl", "WEBHOOK_ALLOW_PRIVATE": "true",
    "WEBHOOK_RETRY_DELAY": "200", "WEBHOOK_RETRY_COUNT": "30", "WEBHOOK_RETRY_MAX_DELAY": "2000",
    "WEBHOOK_TIMEOUT": "3000", "WEBHOOK_SWEEP_INTERVAL": "1", "SEND_SWEEP_INTERVAL": "2",
    "WORKER_CONCURRENCY": "8",
}


class FlakyReceiver:
    """Answers 500 to ~10 % of requests (seeded), 204 otherwise; keeps what it accepted."""

    def __init__(self, seed: int, failure_rate: float = 0.1) -> None:
        self.rng = random.Random(seed)
        self.failure_rate = failure_rate
        self.lock = threading.Lock()
        self.accepted: list[dict[str, Any]] = []
        self.requests = 0
        self.failed = 0
        self.bad_signatures = 0
        self.truncated = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (stdlib's name)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if len(body) < length:
                    # The sender was killed between its headers and its body (a worker kill):
                    # an incomplete request, dropped as any server drops one, never answered.
                    with receiver.lock:
                        receiver.truncated += 1
                    self.close_connection = True
                    return
                expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
                signed = hmac.compare_digest(expected, self.headers.get("X-OpenWA-Signature", ""))
                with receiver.lock:
                    receiver.requests += 1
                    fail = receiver.rng.random() < receiver.failure_rate
                    if not signed:
                        receiver.bad_signatures += 1
                    if fail:
                        receiver.failed += 1
                    else:
                        receiver.accepted.append(json.loads(body))
                self.send_response(500 if fail else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/hook"

    def events(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.accepted)


class SessionLoad:
    """One session's client: sends one at a time, alternating the echo contact and a peer."""

    def __init__(self, live: LivePlatform, name: str, peer_phone: str) -> None:
        self.live, self.name, self.peer = live, name, peer_phone
        self.accepted: list[tuple[str, str, str]] = []  # (our id, text, "echo" | "peer"), in order
        self.unanswered = 0  # connection lost mid-request: not accepted, may still be sent
        self.codes: Counter[int] = Counter()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, name=f"load-{name}", daemon=True)

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            to_echo = n % 2 == 1
            body = f"{self.name}-{n}"
            try:
                reply = self.live.http.post(
                    f"{self.live.base}/sessions/{self.name}/messages/send-text", timeout=15,
                    json={"chatId": "15550000000" if to_echo else self.peer, "text": body})
            except requests.ConnectionError as error:
                refused = "Connection refused" in str(error)
                self.codes[-1 if refused else -2] += 1
                self.unanswered += 0 if refused else 1
                time.sleep(0.2)
                continue
            except requests.Timeout:
                self.codes[-2] += 1
                self.unanswered += 1
                continue
            self.codes[reply.status_code] += 1
            if reply.status_code in (201, 202):
                answer = reply.json()
                our_id = answer.get("id") or answer["messageId"].rsplit("_", 1)[1]
                self.accepted.append((our_id, body, "echo" if to_echo else "peer"))
                time.sleep(SEND_EVERY)
            else:
                time.sleep(0.2)


@pytest.fixture
def chaos_db() -> Iterator[str]:
    with postgres_database() as url:
        yield url


def _db_rows(url: str, sql: str, **params: Any) -> list[Any]:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg2://", 1))
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql), params))
    finally:
        engine.dispose()


def test_every_role_killed_under_load_loses_nothing_keeps_order_and_drains(
        tmp_path: Path, chaos_db: str) -> None:
    rng = random.Random(SEED)
    redis = PrivateRedis(tmp_path / "redis")
    env = base_env(tmp_path, redis.url, {"DATABASE_TYPE": "postgres", "DATABASE_URL": chaos_db})
    env.update(ENV)
    live = LivePlatform(env, tmp_path)
    receiver = FlakyReceiver(SEED)
    receiver.thread.start()
    restart_rng = random.Random(SEED + 1)
    supervisor: Supervisor | None = None
    loads: list[SessionLoad] = []
    try:
        redis.start()
        live.migrate()
        roles: dict[str, Any] = {
            "redis": redis,
            "api": lambda: live.start("api", PORT=str(live.port)),
            "host-a": lambda: live.start("host", SESSION_HOST_NAME="host-a@chaos"),
            "host-b": lambda: live.start("host", SESSION_HOST_NAME="host-b@chaos"),
            "worker": lambda: live.start("worker"),
            "beat": lambda: live.start("beat"),
        }
        supervisor = Supervisor(roles, lambda: restart_rng.uniform(*RESTART_AFTER))
        # Redis first: the others need it at start-up.
        supervisor.start()
        wait_for(live._up, 60, 0.1, "the API")
        wait_for(lambda: live.call("GET", "/health/detailed").json()["checks"]["workers"]["liveHosts"] == 2,
                 60, 0.1, "both session hosts")
        sessions = {name: live.create_ready_session(name) for name in SESSIONS}
        for name in SESSIONS:
            reply = live.call("POST", f"/sessions/{name}/webhooks",
                              json={"url": receiver.url, "events": ["*"], "secret": SECRET})
            assert reply.status_code == 201, reply.text
        phones = {name: sessions[name]["phone"] for name in SESSIONS}
        ids = {name: sessions[name]["id"] for name in SESSIONS}
        link_time_qrs = sum(1 for e in receiver.events() if e["event"] == "session.qr")

        loads = [SessionLoad(live, name, phones[SESSIONS[(i + 1) % len(SESSIONS)]])
                 for i, name in enumerate(SESSIONS)]
        for load in loads:
            load.thread.start()

        # -- the kills ----------------------------------------------------------------
        schedule = rng.sample(ROLES, len(ROLES)) + rng.choices(ROLES, k=KILLS - len(ROLES))
        kills: Counter[str] = Counter()
        failovers: list[float] = []
        for victim in schedule:
            time.sleep(rng.uniform(*KILL_EVERY))
            wait_for(supervisor.all_alive, 60, 0.1, "every role to be back before the next kill")
            leases = _leases(chaos_db, ids)
            killed_at = time.monotonic()
            _kill(victim, supervisor, rng)
            kills[victim] += 1
            if victim.startswith("host-"):
                name = f"{victim}@chaos"
                mine = {sid: token for sid, (holder, token) in leases.items() if holder == name}
                if mine:
                    wait_for(lambda: _taken_over(chaos_db, mine), 60, 0.1,
                             f"the sessions of {name} to be ready on a new lease")
                    failovers.append(time.monotonic() - killed_at)
        time.sleep(8)  # the last victim comes back under load
        wait_for(supervisor.all_alive, 60, 0.1, "every role to be back")
        for load in loads:
            load.stop.set()
        for load in loads:
            load.thread.join(30)
        load_stopped = time.monotonic()

        # -- the drain ------------------------------------------------------------------
        accepted = {load.name: load.accepted for load in loads}
        expected = _expected_events(accepted, ids, SESSIONS)

        def drained() -> bool:
            got = _received_keys(receiver.events())
            if not expected <= got:
                return False
            pending = _db_rows(chaos_db, "SELECT count(*) FROM webhook_deliveries "
                                         "WHERE status <> 'delivered'")[0][0]
            return pending == 0

        try:
            wait_for(drained, DRAIN_SECONDS, 1.0, "the backlog to drain")
        finally:
            drain_seconds = time.monotonic() - load_stopped
            report = _report(chaos_db, tmp_path, accepted, ids, receiver, expected, loads)
            report.update(kills=dict(kills), restarts=dict(supervisor.restarts),
                          failover_seconds=[round(f, 2) for f in failovers],
                          failover_median=round(statistics.median(failovers), 2) if failovers else None,
                          drain_seconds=round(drain_seconds, 1), seed=SEED)
            print("\nchaos report: " + json.dumps(report, sort_keys=True))
        assert report["lost"] == 0, report
        assert report["duplicated"] == 0, report
        assert report["out_of_order"] == 0, report
        assert report["stuck"] == 0, report
        assert report["events_missing"] == 0, report
        assert report["bad_signatures"] == 0, report
        assert report["outbox_not_delivered"] == 0, report
        assert report["drain_seconds"] <= DRAIN_TARGET, report
        # Failover resumed every session from its profile: no QR was shown again.
        assert sum(1 for e in receiver.events() if e["event"] == "session.qr") == link_time_qrs
        assert all(_phone(chaos_db, ids[n]) == phones[n] for n in SESSIONS)
        assert set(kills) == set(ROLES)
        assert report["accepted"] > 0 and failovers, report
    except BaseException:
        if supervisor is not None:
            print(f"\nroles: {supervisor.describe()}")
        for proc in live.procs:
            lines = [line for line in proc.output().splitlines()
                     if not any(noise in line for noise in (
                         "openwa.access", "celery.app.trace", "celery.worker.strategy"))]
            print(f"----- {proc.role} ({proc.log_path.name}) -----\n" + "\n".join(lines[-25:]))
        raise
    finally:
        for load in loads:
            load.stop.set()
        if supervisor is not None:
            supervisor.stop()
        live.stop_all()
        redis.kill()
        receiver.server.shutdown()
        receiver.server.server_close()


def _kill(victim: str, supervisor: Supervisor, rng: random.Random) -> None:
    """kill -9 of one process of the role; the supervisor brings the role back."""
    if victim == "redis":
        supervisor.get("redis").kill()
        return
    if victim == "api-worker":
        master = supervisor.get("api")
        workers = wait_for(lambda: children_of(master.pid), 30, 0.1, "the API master's workers")
        os.kill(rng.choice(sorted(workers)), signal.SIGKILL)  # the master replaces it itself
        return
    process = supervisor.get("api" if victim == "api-master" else victim)
    os.kill(process.pid, signal.SIGKILL)  # the role's main process only, not its group
    process.process.wait()


def _leases(url: str, ids: dict[str, str]) -> dict[str, tuple[str | None, int]]:
    rows = _db_rows(url, "SELECT id, lease_holder, lease_token FROM sessions")
    return {sid: (holder, token) for sid, holder, token in rows if sid in ids.values()}


def _taken_over(url: str, tokens: dict[str, int]) -> bool:
    """Every one of these sessions was claimed again (a newer fencing token) and is ready."""
    rows = _db_rows(url, "SELECT id, status, lease_token FROM sessions")
    state = {sid: (status, token) for sid, status, token in rows}
    return all(state[sid][0] == "ready" and state[sid][1] > token for sid, token in tokens.items())


def _phone(url: str, session_id: str) -> str:
    return str(_db_rows(url, "SELECT phone FROM sessions WHERE id = :id", id=session_id)[0][0])


def _expected_events(accepted: dict[str, list[tuple[str, str, str]]], ids: dict[str, str],
                     names: tuple[str, ...]) -> set[tuple[str, str, str]]:
    """(session id, event, key) the receiver must have accepted at least once."""
    expected = set()
    for i, name in enumerate(names):
        sid, peer = ids[name], ids[names[(i + 1) % len(names)]]
        for our_id, body, to in accepted[name]:
            expected |= {(sid, "message.sent", our_id), (sid, "message.ack:delivered", our_id),
                         (sid, "message.ack:read", our_id)}
            expected.add((sid if to == "echo" else peer, "message.received", body))
    return expected


def _received_keys(events: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    keys = set()
    for event in events:
        name, data, sid = event["event"], event["data"], event["sessionId"]
        if name == "message.sent":
            keys.add((sid, name, data["id"]))
        elif name == "message.ack":
            keys.add((sid, f"message.ack:{data['ack']}", data["id"]))
        elif name == "message.received":
            keys.add((sid, name, data.get("body") or ""))
    return keys


def _report(url: str, tmp_path: Path, accepted: dict[str, list[tuple[str, str, str]]],
            ids: dict[str, str], receiver: FlakyReceiver, expected: set[tuple[str, str, str]],
            loads: list[SessionLoad]) -> dict[str, Any]:
    lost = duplicated = out_of_order = 0
    for name, sent_in_order in accepted.items():
        log = sent_ids(tmp_path / "sessions" / ids[name])
        duplicated += len(log) - len(set(log))
        position = {our_id: i for i, our_id in reversed(list(enumerate(log)))}
        latest = -1
        for our_id, _, _ in sent_in_order:
            if our_id not in position:
                lost += 1
                continue
            if position[our_id] < latest:
                out_of_order += 1
            latest = max(latest, position[our_id])
    # Reported twice: two distinct message.sent events (not one redelivered) for one message.
    sent_events: dict[str, set[str]] = defaultdict(set)
    for event in receiver.events():
        if event["event"] == "message.sent":
            sent_events[event["data"]["id"]].add(event["idempotencyKey"])
    duplicated += sum(len(keys) - 1 for keys in sent_events.values())
    all_ids = [our_id for rows in accepted.values() for our_id, _, _ in rows]
    statuses: Counter[str] = Counter()
    for start in range(0, len(all_ids), 500):
        chunk = all_ids[start:start + 500]
        params = {f"i{n}": v for n, v in enumerate(chunk)}
        for (status,) in _db_rows(url, "SELECT status FROM messages WHERE id IN ("
                                  + ",".join(f":{k}" for k in params) + ")", **params):
            statuses[status] += 1
    missing_rows = len(all_ids) - sum(statuses.values())
    outbox = _db_rows(url, "SELECT status, count(*) FROM webhook_deliveries GROUP BY status")
    return {
        "accepted": len(all_ids), "lost": lost + missing_rows, "duplicated": duplicated,
        "out_of_order": out_of_order,
        "stuck": sum(n for status, n in statuses.items() if status != "read"),
        "statuses": dict(statuses),
        "events_expected": len(expected),
        "events_missing": len(expected - _received_keys(receiver.events())),
        "receiver_requests": receiver.requests, "receiver_failed": receiver.failed,
        "bad_signatures": receiver.bad_signatures, "truncated_requests": receiver.truncated,
        "outbox": {status: n for status, n in outbox},
        "outbox_not_delivered": sum(n for status, n in outbox if status != "delivered"),
        "unanswered_requests": sum(load.unanswered for load in loads),
        "codes": {load.name: dict(load.codes) for load in loads},
    }
