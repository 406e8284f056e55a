"""Bulk-send figure on real processes (gunicorn API, session host, worker, mock engine):
the time from a ``send-bulk`` of N items at ``delayBetweenMessages=0`` to its
``batch.completed`` webhook at a local receiver, and the server's own view of it (the
batch's ``finishedAt - createdAt``). Repeated ``--runs`` times, each on a fresh batch.

    python scripts/bench/bulk.py [--items 100] [--runs 3] [--database sqlite|postgres]
                                 [--redis redis://127.0.0.1:6379/15] [--json out.json]

The machine's load average is printed with the figures: on a shared machine they say how
fast it was then and there, not what the design allows.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.databases import env_for, postgres_database  # noqa: E402
from tests.integration.conftest import wait_for  # noqa: E402
from tests.live import LivePlatform, base_env  # noqa: E402
from tests.realtime.conftest import start_host  # noqa: E402
from tests.webhooks.receiver import Receiver  # noqa: E402

CHAT = "15551112222@c.us"


def one_batch(live: LivePlatform, receiver: Receiver, items: int) -> dict[str, Any]:
    body = {"messages": [{"chatId": CHAT, "type": "text", "content": {"text": f"bulk {i}"}}
                         for i in range(items)],
            "options": {"delayBetweenMessages": 0}}
    started = time.monotonic()
    reply = live.call("POST", "/sessions/bench/messages/send-bulk", json=body)
    accepted_ms = (time.monotonic() - started) * 1000
    assert reply.status_code == 202, reply.text
    batch_id = reply.json()["batchId"]

    def completed() -> dict[str, Any] | None:
        for request in list(receiver.requests):
            envelope = json.loads(request["body"])
            if envelope["event"] == "batch.completed" and envelope["data"]["batchId"] == batch_id:
                return {"at": request["at"], "envelope": envelope}
        return None

    event = wait_for(completed, 600, 0.01, "batch.completed")
    view = live.call("GET", f"/sessions/bench/messages/batch/{batch_id}").json()
    assert view["status"] == "completed" and view["progress"]["sent"] == items, view
    server = (datetime.fromisoformat(view["finishedAt"]) - datetime.fromisoformat(view["createdAt"]))
    return {"batchId": batch_id, "acceptedMs": round(accepted_ms, 1),
            "toBatchCompletedS": round(event["at"] - started, 3),
            "serverCreatedToFinishedS": round(server.total_seconds(), 3),
            "perItemMs": round((event["at"] - started) * 1000 / items, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--json")
    args = parser.parse_args()
    redis.Redis.from_url(args.redis).flushdb()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="openwa-bench-bulk-") as tmp, ExitStack() as stack:
        tmp_path = Path(tmp)
        if args.database == "postgres":
            database = env_for("postgres", stack.enter_context(postgres_database()))
        else:
            database = env_for("sqlite", str(tmp_path / "data" / "openwa.db"))
        env = base_env(tmp_path, args.redis, database)
        env.update({"LOG_LEVEL": "warning", "WEBHOOK_ALLOW_PRIVATE": "true",
                    "SEND_WAIT_TIMEOUT": "10"})
        receiver = Receiver().start()
        live = LivePlatform(env, tmp_path)
        try:
            live.start_api()
            start_host(live, "bench-bulk@local")
            live.start("worker")
            live.create_ready_session("bench")
            hook = live.call("POST", "/sessions/bench/webhooks",
                             json={"url": receiver.url, "events": ["batch.completed"]})
            assert hook.status_code == 201, hook.text
            runs = [one_batch(live, receiver, args.items) for _ in range(args.runs)]
        finally:
            live.stop_all()
            receiver.stop()
    figures = [run["toBatchCompletedS"] for run in runs]
    result = {"items": args.items, "delayBetweenMessages": 0, "database": args.database,
              "runs": runs, "medianToBatchCompletedS": round(statistics.median(figures), 3),
              "cpus": os.cpu_count(), "loadAverageBefore": [round(x, 2) for x in load_before],
              "loadAverageAfter": [round(x, 2) for x in os.getloadavg()]}
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
