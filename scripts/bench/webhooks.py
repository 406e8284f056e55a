"""Webhook delivery figures on this machine, with real processes (API, session host,
worker at its default concurrency, beat) on an embedded Redis and SQLite:

- deliveries per second to a local receiver, for 1 webhook (one ordered stream) and for
  8 webhooks (8 streams in parallel), from outbox rows committed at once;
- latency from an incoming message on the mock engine (a message between two mock
  sessions) to its arrival at the receiver: p50 / p95.

    python scripts/bench/webhooks.py [--deliveries 2000] [--messages 100] [--json out.json]
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
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from app.embedded_redis import free_port
from app.embedded_redis import start as start_redis  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from receiver import Receiver  # noqa: E402

KEY = "owa_k1_" + "cd" * 32


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def wait(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise TimeoutError("timed out")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--deliveries", type=int, default=2000)
    parser.add_argument("--messages", type=int, default=100)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="openwa-wh-bench-"))
    redis_proc, redis_url = start_redis(work)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "CI"))}
    env.update(REDIS_URL=redis_url, DATA_PATH=str(work / "data"), PORT=str(port),
               API_KEY_MASTER=KEY, LOG_LEVEL="warning", RATE_LIMIT_ENABLED="false",
               WEBHOOK_ALLOW_PRIVATE="true", MOCK_AUTO_SCAN_SECONDS="0", METRICS_PORT="0",
               ENCRYPTION_KEY="bench-encryption-key-0123456789")
    procs = []

    def spawn(*argv: str) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-m", "app", *argv], env=env, cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        procs.append(proc)
        return proc

    report: dict[str, object] = {"worker_concurrency": 8, "host_poll_interval_s": 0.2}
    try:
        subprocess.run([sys.executable, "-m", "app", "db", "upgrade"], env=env, cwd=ROOT,
                       check=True, capture_output=True)
        spawn("api")
        spawn("host")
        spawn("worker")
        spawn("beat")
        base = f"http://127.0.0.1:{port}/api"
        http = requests.Session()
        http.headers["X-API-Key"] = KEY

        def up() -> bool:
            try:
                return http.get(f"{base}/health/ready", timeout=1).status_code == 200
            except requests.RequestException:
                return False

        wait(up, 60)
        receiver = Receiver()
        sessions = {}
        for name in ("sender", "receiver"):
            http.post(f"{base}/sessions", json={"name": name})
            http.post(f"{base}/sessions/{name}/start")
            wait(lambda: http.get(f"{base}/sessions/{name}").json()["status"] == "qr_ready", 30)
            http.post(f"{base}/sessions/{name}/mock/scan")
            wait(lambda: http.get(f"{base}/sessions/{name}").json()["status"] == "ready", 30)
            sessions[name] = http.get(f"{base}/sessions/{name}").json()

        # 1. Latency: a message between two mock sessions, to the receiver's webhook.
        http.post(f"{base}/sessions/receiver/webhooks",
                  json={"url": receiver.url, "events": ["message.received"]})
        latencies = []
        for n in range(args.messages):
            # Sends at random phases of the host's poll timer (HOST_POLL_INTERVAL), as real
            # traffic arrives; back-to-back sends would lock onto the timer's phase.
            time.sleep(random.uniform(0, 0.2))
            before = receiver.count("message.received")
            started = time.perf_counter()
            reply = http.post(f"{base}/sessions/sender/messages/send-text",
                              json={"chatId": sessions["receiver"]["phone"], "text": f"m{n}"})
            assert reply.status_code == 201, reply.text
            wait(lambda: receiver.count("message.received") > before, 30)
            latencies.append((receiver.arrivals[-1][0] - started) * 1000)
        report["incoming_to_receiver_ms"] = {
            "n": args.messages, "p50": round(statistics.median(latencies), 1),
            "p95": round(percentile(latencies, 0.95), 1)}

        # 2. Throughput: outbox rows committed at once, drained by the worker.
        from sqlalchemy import create_engine, text

        engine = create_engine(f"sqlite:///{work / 'data' / 'openwa.db'}")
        for streams in (1, 8):
            hooks = [http.post(f"{base}/sessions/sender/webhooks",
                               json={"url": receiver.url, "events": ["session.qr"]}).json()["id"]
                     for _ in range(streams)]
            before = receiver.count("session.qr")
            rows = [{"id": f"b{streams}-{i}", "k": f"k{streams}-{i}", "w": hooks[i % streams],
                     "s": sessions["sender"]["id"]} for i in range(args.deliveries)]
            with engine.begin() as conn:
                conn.execute(text(
                    "INSERT INTO webhook_deliveries (id, idempotency_key, webhook_id, session_id, "
                    "event, data, occurred_at, status, attempts, next_attempt_at, created_at) "
                    "VALUES (:id, :k, :w, :s, 'session.qr', '{}', CURRENT_TIMESTAMP, 'pending', 0, "
                    "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"), rows)
            wait(lambda: receiver.count("session.qr") - before >= args.deliveries, 600)
            with receiver.lock:
                times = [t for t, b in receiver.arrivals if b["event"] == "session.qr"][before:]
            # First to last arrival: the sweep's pick-up delay is not delivery time.
            elapsed = times[-1] - times[0]
            report[f"deliveries_per_second_{streams}_webhook{'s' if streams > 1 else ''}"] = round(
                (args.deliveries - 1) / elapsed, 1)
            for hook_id in hooks:
                http.delete(f"{base}/sessions/sender/webhooks/{hook_id}")
        engine.dispose()
    finally:
        for proc in reversed(procs):
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            proc.wait(60)
        redis_proc.terminate()
    text_out = json.dumps(report, indent=2)
    print(text_out)
    if args.json:
        args.json.write_text(text_out)


if __name__ == "__main__":
    main()
