"""Webhook delivery figures on this machine, with real processes (API, worker at its default
concurrency, beat; a session host for the latency) on an embedded Redis and SQLite, for
this checkout and, in the same run, for a baseline (``--baseline main`` by default, taken
with ``git archive``, so nothing of that checkout is touched):

- **throughput**: a backlog of outbox rows over many chats (3 events a chat, as a sent
  message and its acks) committed at once to ONE webhook, drained by the worker, with a
  receiver that always answers 204 and one that answers 500 to 10 % of requests at random.
  ``deliveries_per_s`` is the successful deliveries per second until 90 % of the backlog
  had its first attempt; ``first_pass_s`` is how long until every row had been attempted
  once, and ``all_delivered_s`` until every row was delivered (a chat waits behind its
  failed head for WEBHOOK_RETRY_DELAY, doubling); phases are cut at ``--window`` s;
- **backlog scenario** (issue 17): four webhooks (four sessions), ``--load-rate`` events
  per second over their chats (``--scenario-chats`` each) for ``--load-seconds`` s, each kicked as ``emit`` does, with
  the receiver failing 10 %; then the time from the end of the load until every event had
  its first attempt and until every event was delivered;
- **latency** (this checkout only): an incoming message on the mock engine (a message
  between two mock sessions) to its arrival at the receiver, p50 / p95.

Run it only when the machine is otherwise quiet; each phase reports the 1-minute load
average at its start and end, and the throughput phases the worker's CPU time per attempt
(``worker_cpu_ms_per_attempt``), which other processes change little.

    python scripts/bench/webhooks.py [--rows 3000] [--chats 50] [--baseline main|""] [--json out.json]
    python scripts/bench/webhooks.py --rounds 3   # throughput only, main and this alternated
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from app.embedded_redis import free_port
from app.embedded_redis import start as start_redis  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from receiver import Receiver  # noqa: E402

KEY = "owa_k1_" + "cd" * 32
EVENT = "session.qr"  # an event nothing else emits during the bench


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def export(ref: str) -> Path:
    """The baseline's files, from git, into a temporary directory."""
    target = Path(tempfile.mkdtemp(prefix="openwa-wh-baseline-"))
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


class Platform:
    """API, worker and beat (and a host, for the latency) of the code at ``root``."""

    def __init__(self, root: Path, with_host: bool) -> None:
        self.root, self.with_host = root, with_host
        self.work = Path(tempfile.mkdtemp(prefix="openwa-wh-bench-"))
        self.procs: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> "Platform":
        self.redis_proc, self.redis_url = start_redis(self.work)
        port = free_port()
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("DATABASE_", "CI", "WEBHOOK_"))}
        env.update(REDIS_URL=self.redis_url, DATA_PATH=str(self.work / "data"), PORT=str(port),
                   API_KEY_MASTER=KEY, LOG_LEVEL="warning", RATE_LIMIT_ENABLED="false",
                   WEBHOOK_ALLOW_PRIVATE="true", MOCK_AUTO_SCAN_SECONDS="0", METRICS_PORT="0",
                   ENCRYPTION_KEY="bench-encryption-key-0123456789", PYTHONPATH=str(self.root))
        self.env = env
        migrated = subprocess.run([sys.executable, "-m", "app", "db", "upgrade"], env=env,
                                  cwd=self.root, capture_output=True, text=True)
        if migrated.returncode:
            raise RuntimeError(f"db upgrade failed in {self.root}: {migrated.stderr[-2000:]}")
        for role in ("api", "worker", "beat") + (("host",) if self.with_host else ()):
            self.procs.append(subprocess.Popen(
                [sys.executable, "-m", "app", role], env=env, cwd=self.root,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        self.worker_pid = self.procs[1].pid
        self.base = f"http://127.0.0.1:{port}/api"
        self.http = requests.Session()
        self.http.headers["X-API-Key"] = KEY

        def up() -> bool:
            try:
                return self.http.get(f"{self.base}/health/live", timeout=1).status_code == 200
            except requests.RequestException:
                return False

        if not wait(up, 90):
            raise RuntimeError("the API did not start")
        from celery import Celery
        from kombu import Exchange, Queue
        from sqlalchemy import create_engine, inspect

        self.celery = Celery(broker=self.redis_url)
        self.queue = Queue("webhooks", Exchange("webhooks"), routing_key="webhooks")
        self.db = create_engine(f"sqlite:///{self.work / 'data' / 'openwa.db'}",
                                connect_args={"timeout": 30})  # the worker writes too
        columns = {c["name"] for c in inspect(self.db).get_columns("webhook_deliveries")}
        self.has_order_key = "order_key" in columns
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in reversed(self.procs):
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for proc in self.procs:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        self.db.dispose()
        self.redis_proc.terminate()
        self.redis_proc.wait(30)

    def session(self, name: str) -> str:
        reply = self.http.post(f"{self.base}/sessions", json={"name": name})
        if reply.status_code != 201:
            raise RuntimeError(f"cannot create session {name}: {reply.text}")
        return str(reply.json()["id"])

    def webhook(self, session: str, url: str) -> str:
        return str(self.http.post(f"{self.base}/sessions/{session}/webhooks",
                                  json={"url": url, "events": [EVENT]}).json()["id"])

    def insert(self, rows: list[dict[str, str]]) -> None:
        """Outbox rows as ``emit`` writes them (order_key only where the schema has it)."""
        from sqlalchemy import text

        extra = (", order_key", ", :chat") if self.has_order_key else ("", "")
        with self.db.begin() as conn:
            conn.execute(text(
                "INSERT INTO webhook_deliveries (id, idempotency_key, webhook_id, session_id, "
                f"event, data, occurred_at, status, attempts, next_attempt_at, created_at{extra[0]}) "
                f"VALUES (:id, :id, :hook, :session, '{EVENT}', :data, CURRENT_TIMESTAMP, "
                f"'pending', 0, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP{extra[1]})"), rows)

    def kick(self, hooks: set[str]) -> None:
        for hook in hooks:
            self.celery.send_task("tasks.webhooks.deliver", args=[hook], queue=self.queue)


def rows_for(hooks: list[tuple[str, str]], count: int, chats: int) -> list[dict[str, str]]:
    """``count`` rows round-robin over the webhooks, each over ``chats`` chats."""
    rows = []
    for i in range(count):
        hook, session = hooks[i % len(hooks)]
        chat = f"1555{(i // len(hooks)) % chats:07d}@c.us"
        rows.append({"id": str(uuid.uuid4()), "hook": hook, "session": session, "chat": chat,
                     "data": json.dumps({"chatId": chat, "n": i})})
    return rows


def outcome(receiver: Receiver, ids: set[str], started: float, done_at: float) -> dict[str, Any]:
    """Figures from the receiver's log. ``deliveries_per_s``: successful deliveries per second
    until 90 % of the rows had their first attempt (the rest of a chat waits behind a failed
    head for WEBHOOK_RETRY_DELAY; that wait is ``all_delivered_s``, not throughput), or over
    the whole phase if that point was not reached."""
    with receiver.lock:
        attempts = [a for a in receiver.attempts if a[1] in ids]
    seen: set[str] = set()
    delivered: set[str] = set()
    first_pass = all_delivered = ninety = None
    successes = 0
    successes_at_ninety = 0
    for when, delivery_id, ok in attempts:
        seen.add(delivery_id)
        if ok:
            successes += 1
            delivered.add(delivery_id)
            if len(delivered) == len(ids):
                all_delivered = when - started
        if ninety is None and len(seen) >= 0.9 * len(ids):
            ninety, successes_at_ninety = when - started, len(delivered)
        if first_pass is None and len(seen) == len(ids):
            first_pass = when - started
    if ninety:
        rate = successes_at_ninety / ninety
    else:
        span = done_at - started
        rate = len(delivered) / span if span > 0 else 0.0
    return {"rows": len(ids), "attempted": len(seen), "delivered": len(delivered),
            "duplicates": successes - len(delivered), "failed_attempts": len(attempts) - successes,
            "deliveries_per_s": round(rate, 1),
            "first_pass_s": None if first_pass is None else round(first_pass, 2),
            "all_delivered_s": None if all_delivered is None else round(all_delivered, 2)}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far (all its threads)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def throughput(platform: Platform, session: str, rows: int, chats: int, fail_rate: float,
               window: float) -> dict[str, Any]:
    """Also ``worker_cpu_ms_per_attempt``: the worker's CPU time over the phase per HTTP
    attempt, which other processes on the machine change little (unlike the rate: report
    the load average beside it)."""
    receiver = Receiver(fail_rate)
    try:
        hook = platform.webhook(session, receiver.url)
        batch = rows_for([(hook, session)], rows, chats)
        ids = {r["id"] for r in batch}
        platform.insert(batch)
        load_before = os.getloadavg()[0]
        cpu_before = cpu_seconds(platform.worker_pid)
        started = time.perf_counter()
        platform.kick({hook})
        wait(lambda: receiver.count(EVENT) >= rows, window)
        result = outcome(receiver, ids, started, time.perf_counter())
        with receiver.lock:
            attempts = sum(1 for a in receiver.attempts if a[1] in ids)
        result["worker_cpu_ms_per_attempt"] = round(
            1000 * (cpu_seconds(platform.worker_pid) - cpu_before) / max(1, attempts), 2)
        result["load_average_1m"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
        platform.http.delete(f"{platform.base}/sessions/{session}/webhooks/{hook}")
        return result
    finally:
        receiver.stop()


def scenario(platform: Platform, sessions: list[str], rate: int, seconds: float,
             chats: int, window: float) -> dict[str, Any]:
    """Events arrive at ``rate``/s for ``seconds`` s, kicked as emit does; then the drain."""
    receiver = Receiver(0.10, seed=29)
    try:
        hooks = [(platform.webhook(s, receiver.url), s) for s in sessions]
        ids: set[str] = set()
        started = time.perf_counter()
        tick, n = 0.1, 0
        while time.perf_counter() - started < seconds:
            batch = rows_for(hooks, max(1, int(rate * tick)), chats)
            for row in batch:  # the same chats throughout
                row["chat"] = f"1555{n % (chats * len(hooks)):07d}@c.us"
                row["data"] = json.dumps({"chatId": row["chat"], "n": n})
                n += 1
            platform.insert(batch)
            platform.kick({r["hook"] for r in batch})
            ids |= {r["id"] for r in batch}
            time.sleep(max(0.0, tick - (time.perf_counter() - started) % tick))
        stopped = time.perf_counter()
        load_at_stop = os.getloadavg()[0]
        with receiver.lock:
            seen_at_stop = {a[1] for a in receiver.attempts}
            delivered_at_stop = {b["deliveryId"] for _, b in receiver.arrivals}
        wait(lambda: receiver.count(EVENT) >= len(ids), window)
        result = outcome(receiver, ids, stopped, time.perf_counter())
        return {"events": len(ids), "events_per_s": round(len(ids) / (stopped - started), 1),
                "backlog_at_stop": len(ids - delivered_at_stop),
                "not_yet_attempted_at_stop": len(ids - seen_at_stop),
                "queue_drained_after_stop_s": result["first_pass_s"],
                "all_delivered_after_stop_s": result["all_delivered_s"],
                "delivered": result["delivered"], "duplicates": result["duplicates"],
                "failed_attempts": result["failed_attempts"],
                "load_average_1m": [round(load_at_stop, 2), round(os.getloadavg()[0], 2)]}
    finally:
        receiver.stop()


def latency(platform: Platform, messages: int) -> dict[str, Any]:
    """A message between two mock sessions, to the receiving session's webhook."""
    base, http = platform.base, platform.http
    receiver = Receiver()
    try:
        phones = {}
        for name in ("sender", "receiver"):
            http.post(f"{base}/sessions", json={"name": name})
            http.post(f"{base}/sessions/{name}/start")
            wait(lambda: http.get(f"{base}/sessions/{name}").json()["status"] == "qr_ready", 60)
            http.post(f"{base}/sessions/{name}/mock/scan")
            wait(lambda: http.get(f"{base}/sessions/{name}").json()["status"] == "ready", 60)
            phones[name] = http.get(f"{base}/sessions/{name}").json()["phone"]
        http.post(f"{base}/sessions/receiver/webhooks",
                  json={"url": receiver.url, "events": ["message.received"]})
        latencies = []
        for n in range(messages):
            # At random phases of the host's poll timer (HOST_POLL_INTERVAL), as real traffic.
            time.sleep(random.uniform(0, 0.2))
            before = receiver.count("message.received")
            started = time.perf_counter()
            reply = http.post(f"{base}/sessions/sender/messages/send-text",
                              json={"chatId": phones["receiver"], "text": f"m{n}"})
            assert reply.status_code == 201, reply.text
            if not wait(lambda: receiver.count("message.received") > before, 30):
                raise TimeoutError("a message did not reach the webhook")
            latencies.append((receiver.arrivals[-1][0] - started) * 1000)
        return {"n": messages, "p50": round(statistics.median(latencies), 1),
                "p95": round(percentile(latencies, 0.95), 1)}
    finally:
        receiver.stop()


def measure(root: Path, args: argparse.Namespace, with_latency: bool) -> dict[str, Any]:
    report: dict[str, Any] = {"worker_concurrency": 8}
    with Platform(root, with_host=with_latency) as platform:
        report["order_key"] = platform.has_order_key
        one = platform.session("one")
        for label, fail_rate in (("ok", 0.0), ("fail10", 0.10)):
            report[f"one_webhook_{label}"] = throughput(
                platform, one, args.rows, args.chats, fail_rate, args.window)
            print(label, report[f"one_webhook_{label}"], flush=True)
        sessions = [platform.session(f"scenario{i}") for i in range(4)]
        report["scenario"] = scenario(platform, sessions, args.load_rate, args.load_seconds,
                                      args.scenario_chats, args.window)
        print("scenario", report["scenario"], flush=True)
        if with_latency and args.messages:
            report["incoming_to_receiver_ms"] = latency(platform, args.messages)
    return report


def interleaved(baseline: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The throughput phases of the baseline and of this checkout, both platforms up at
    once and their phases alternated (``--rounds`` times), so each pair of figures saw the
    same load from the rest of the machine."""
    report: dict[str, Any] = {"rounds": []}
    with Platform(baseline, with_host=False) as before, Platform(ROOT, with_host=False) as after:
        sessions = {"before": before.session("one"), "after": after.session("one")}
        for _ in range(args.rounds):
            row: dict[str, Any] = {}
            for label, fail_rate in (("ok", 0.0), ("fail10", 0.10)):
                for name, platform in (("before", before), ("after", after)):
                    row[f"{name}_{label}"] = throughput(platform, sessions[name], args.rows,
                                                        args.chats, fail_rate, args.window)
                    print(name, label, row[f"{name}_{label}"], flush=True)
            report["rounds"].append(row)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=3000, help="backlog for the throughput phases")
    parser.add_argument("--chats", type=int, default=1000,
                        help="chats the backlog is spread over (3 events each by default)")
    parser.add_argument("--load-rate", type=int, default=80, help="scenario: events per second")
    parser.add_argument("--load-seconds", type=float, default=30)
    parser.add_argument("--scenario-chats", type=int, default=50, help="scenario: chats per webhook")
    parser.add_argument("--window", type=float, default=60, help="longest wait per phase (s)")
    parser.add_argument("--messages", type=int, default=50, help="latency samples (0: skip)")
    parser.add_argument("--baseline", default="main", help='git ref measured first ("": none)')
    parser.add_argument("--json", type=Path)
    parser.add_argument("--rounds", type=int, default=0,
                        help="only the throughput phases, baseline and this checkout "
                             "alternated this many times (robust to a busy machine)")
    args = parser.parse_args()

    report: dict[str, Any] = {}
    if args.rounds and args.baseline:
        report = interleaved(export(args.baseline), args)
        text_out = json.dumps(report, indent=2)
        print(text_out)
        if args.json:
            args.json.write_text(text_out)
        return
    if args.baseline:
        tree = export(args.baseline)
        report["before"] = {"ref": args.baseline, **measure(tree, args, with_latency=False)}
    report["after"] = measure(ROOT, args, with_latency=True)
    text_out = json.dumps(report, indent=2)
    print(text_out)
    if args.json:
        args.json.write_text(text_out)


if __name__ == "__main__":
    main()
