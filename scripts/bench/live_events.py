"""Live events (/events) figures on real processes (gunicorn API, session host, mock engine):

* latency from a host's commit to a Socket.IO client: the echo contact answers N sends; each
  ``message.received`` frame carries the time it was published, right after the host's
  commit, and is compared with the time the client got it (one machine, one clock);
* how many concurrent /events clients one API process holds at API_THREADS threads, and
  whether REST requests still answer while they are connected.

    python scripts/bench/live_events.py [--sends 100] [--threads 16] [--redis redis://127.0.0.1:6379/15]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import redis
import requests
import socketio

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.live import LivePlatform, base_env  # noqa: E402
from tests.realtime.conftest import EventsClient, start_host  # noqa: E402

ECHO = "15550000000@c.us"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def latency(live: LivePlatform, root: str, sends: int) -> dict[str, float]:
    client = EventsClient(root, live.key)
    try:
        client.reply(client.send({"type": "subscribe", "sessionId": "bench",
                                  "events": ["message.received"]}))
        seen: list[float] = []
        for n in range(sends):
            assert live.call("POST", "/sessions/bench/messages/send-text",
                             json={"chatId": ECHO, "text": f"ping {n}"}).status_code in (201, 202)
            frame = client.event("message.received", timeout=30, body=f"ping {n}")
            got = time.time()
            published = datetime.fromisoformat(frame["timestamp"].replace("Z", "+00:00")).timestamp()
            seen.append((got - published) * 1000)
        return {"n": len(seen), "p50_ms": round(statistics.median(seen), 1),
                "p95_ms": round(percentile(seen, 0.95), 1), "max_ms": round(max(seen), 1)}
    finally:
        client.close()


def capacity(live: LivePlatform, root: str, limit: int) -> dict[str, object]:
    clients: list[EventsClient] = []
    refused_at = None
    try:
        for n in range(limit):
            try:
                clients.append(EventsClient(root, live.key))
            except socketio.exceptions.ConnectionError:
                refused_at = n
                break
        for client in clients:
            client.reply(client.send({"type": "subscribe", "sessionId": "bench"}))
        started = time.perf_counter()
        ok = requests.get(f"{live.base}/health/ready", timeout=10).status_code == 200
        rest_ms = (time.perf_counter() - started) * 1000
        live.call("POST", "/sessions/bench/messages/send-text", json={"chatId": ECHO, "text": "fan-out"})
        reached = 0
        for client in clients:
            try:
                client.event("message.received", timeout=20, body="fan-out")
                reached += 1
            except AssertionError:
                pass
        return {"connected": len(clients), "refusedAt": refused_at, "eventReached": reached,
                "restWhileConnectedOk": ok, "restWhileConnectedMs": round(rest_ms, 1)}
    finally:
        for client in clients:
            client.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sends", type=int, default=100)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--max-clients", type=int, default=0, help="EVENTS_MAX_CLIENTS (0: threads/2)")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--json")
    args = parser.parse_args()
    redis.Redis.from_url(args.redis).flushdb()
    with tempfile.TemporaryDirectory(prefix="openwa-bench-events-") as tmp:
        tmp_path = Path(tmp)
        env = base_env(tmp_path, args.redis, {"DATABASE_TYPE": "sqlite",
                                              "DATABASE_SQLITE_PATH": str(tmp_path / "data" / "openwa.db")})
        env.update({"API_WORKERS": "1", "API_THREADS": str(args.threads),
                    "EVENTS_MAX_CLIENTS": str(args.max_clients), "SEND_WAIT_TIMEOUT": "10",
                    "LOG_LEVEL": "warning"})
        live = LivePlatform(env, tmp_path)
        try:
            live.start_api()
            start_host(live, "bench-events@local")
            live.create_ready_session("bench")
            root = live.base[: -len("/api")]
            result = {"threads": args.threads, "maxClients": args.max_clients,
                      "latency": latency(live, root, args.sends),
                      "capacity": capacity(live, root, limit=4 * args.threads + 8)}
        finally:
            live.stop_all()
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
