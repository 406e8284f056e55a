"""Core figures of the platform on the embedded defaults (`openwa run`: SQLite, embedded
Redis, mock engine): time to ready, idle RSS of each process, the send-text round trip
over N sequential sends, and the cost of the metrics hooks on request latency.

    python scripts/bench/core.py [--sends 200] [--json out.json]

Starts everything itself in a temporary directory and stops it afterwards.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import requests

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from app.embedded_redis import free_port  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def role_of(proc: psutil.Process) -> str:
    cmd = " ".join(proc.cmdline())
    for role in ("api", "host", "worker", "beat", "flower"):
        if cmd.endswith(f"-m app {role}"):
            return role
    if "redis-server" in cmd:
        return "redis (embedded)"
    if "gunicorn" in cmd or proc.name().startswith("openwa-api"):
        return "api worker"
    return proc.name()


def rss_by_process(root: psutil.Process) -> list[tuple[str, int, float]]:
    rows = []
    for proc in [root, *root.children(recursive=True)]:
        try:
            name = "openwa run (supervisor)" if proc.pid == root.pid else role_of(proc)
            parent = proc.parent()
            if parent is not None and role_of(parent) == "api" and proc.pid != root.pid:
                name = "api (gunicorn worker)"
            rows.append((name, proc.pid, proc.memory_info().rss / 2**20))
        except psutil.NoSuchProcess:
            continue
    return rows


def metrics_overhead(n: int) -> dict[str, float]:
    """Same run, same process: GET /api/sessions with and without the metric hooks."""
    from flask_migrate import upgrade

    from app import create_app
    from app.config import Config
    from app.services import api_keys

    results = {}
    tmp = Path(tempfile.mkdtemp(prefix="openwa-bench-"))
    apps = {}
    for enabled in (True, False):
        config = Config.from_env({"DATA_PATH": str(tmp / str(enabled)), "LOG_LEVEL": "warning",
                                  "RATE_LIMIT_ENABLED": "false", "METRICS_ENABLED": str(enabled),
                                  "REDIS_URL": "redis://127.0.0.1:1/0"})
        app = create_app(config)
        with app.app_context():
            upgrade()
            _, key = api_keys.create({"name": "bench", "role": "admin"}, config)
        apps[enabled] = (app.test_client(), {"X-API-Key": key})
    timings: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(n):  # interleaved, so drift hits both the same
        for enabled in (True, False):
            client, headers = apps[enabled]
            started = time.perf_counter()
            client.get("/api/sessions", headers=headers)
            timings[enabled].append((time.perf_counter() - started) * 1000)
    for enabled, label in ((True, "with"), (False, "without")):
        results[f"{label}_metrics_p50_ms"] = round(statistics.median(timings[enabled]), 3)
        results[f"{label}_metrics_p95_ms"] = round(percentile(timings[enabled], 0.95), 3)
    results["overhead_p50_ms"] = round(results["with_metrics_p50_ms"] - results["without_metrics_p50_ms"], 3)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sends", type=int, default=200)
    parser.add_argument("--overhead-requests", type=int, default=2000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="openwa-core-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_"))}
    env.update(DATA_PATH=str(work / "data"), PORT=str(port), FLOWER_PORT=str(free_port()),
               METRICS_PORT="0", LOG_LEVEL="warning", SEND_WAIT_TIMEOUT="10",
               RATE_LIMIT_ENABLED="false")
    started = time.monotonic()
    run = subprocess.Popen([sys.executable, "-m", "app", "run"], cwd=work, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                           start_new_session=True)
    base = f"http://127.0.0.1:{port}/api"
    report: dict[str, object] = {}
    try:
        for line in run.stdout:  # type: ignore[union-attr]
            if line.startswith("OpenWA is ready"):
                report["run_to_ready_s"] = round(time.monotonic() - started, 2)
                break
        key = (work / "data" / ".api-key").read_text().strip()
        http = requests.Session()
        http.headers["X-API-Key"] = key
        time.sleep(10)  # let every process settle before reading idle memory
        report["idle_rss_mib"] = [{"process": n, "pid": p, "rss_mib": round(r, 1)}
                                  for n, p, r in rss_by_process(psutil.Process(run.pid))]
        http.post(f"{base}/sessions", json={"name": "bench"})
        http.post(f"{base}/sessions/bench/start")
        while http.get(f"{base}/sessions/bench").json()["status"] != "qr_ready":
            time.sleep(0.05)
        http.post(f"{base}/sessions/bench/mock/scan")
        while http.get(f"{base}/sessions/bench").json()["status"] != "ready":
            time.sleep(0.05)
        latencies = []
        for n in range(args.sends):
            t0 = time.perf_counter()
            reply = http.post(f"{base}/sessions/bench/messages/send-text",
                              json={"chatId": "15551230009", "text": f"bench {n}"})
            latencies.append((time.perf_counter() - t0) * 1000)
            assert reply.status_code == 201, reply.text
        report["send_text_ms"] = {"n": args.sends, "median": round(statistics.median(latencies), 2),
                                  "p95": round(percentile(latencies, 0.95), 2),
                                  "max": round(max(latencies), 2)}
        report["loaded_rss_mib"] = [{"process": n, "pid": p, "rss_mib": round(r, 1)}
                                    for n, p, r in rss_by_process(psutil.Process(run.pid))]
    finally:
        os.killpg(run.pid, signal.SIGTERM)
        run.wait(60)
    report["metrics_overhead"] = metrics_overhead(args.overhead_requests)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)


if __name__ == "__main__":
    main()
