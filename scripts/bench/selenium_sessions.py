"""Ten selenium sessions on one session host against the WhatsApp Web stand-in (issue 18
item 3): real Chromium, real host process, the API in-process.

    python scripts/bench/selenium_sessions.py [--sessions 10] [--idle 20]

Measures:
- time from N simultaneous starts (all POST /start back to back) to N `qr_ready`, and when
  each session got there (the host starts browsers one at a time: its tasks run in one
  solo pool, which is the bound that keeps a host from thrashing);
- PSS per session: the host's process tree (browsers + chromedrivers) with N linked idle
  sessions, minus the host's own Python process, divided by N;
- the host's tick cost with N browsers: CPU of the host's Python process and of the
  browsers over --idle seconds with nothing happening (cores, 1.0 = one core busy).

Needs chromium, chromedriver, the wa-js bundle (`make wajs`) and Redis: BENCH_REDIS_URL,
default redis://127.0.0.1:6379/15, which it FLUSHES first.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import psutil

import selenium_engine as se  # same directory

MiB = 1024 * 1024


def cpu(processes: list[psutil.Process]) -> float:
    total = 0.0
    for proc in processes:
        try:
            t = proc.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--idle", type=float, default=20.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    n = args.sessions
    bench = se.Bench(quick=True)
    base = bench.tmp / "platform"
    redis = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")  # flushed
    env = {"DATABASE_TYPE": "sqlite", "DATABASE_SQLITE_PATH": str(base / "openwa.db"),
           "REDIS_URL": redis, "DATA_PATH": str(base / "data"),
           "SESSION_DATA_PATH": str(base / "sessions"), "LOG_FORMAT": "text",
           "LOG_LEVEL": "warning", "RATE_LIMIT_MAX": "100000", "SEND_WAIT_TIMEOUT": "10",
           "ENGINE_CALL_TIMEOUT": "10", "SESSIONS_PER_HOST": str(n + 2),
           "MAX_SESSIONS": str(n + 2)}
    base.mkdir(parents=True)
    config = se.Config.from_env(env)
    app = se.create_app(config)
    with app.app_context():
        se.upgrade()
        _, key = se.api_keys.create({"name": "bench", "role": "admin"}, config)
    import redis as redis_lib

    redis_lib.Redis.from_url(redis).flushdb()
    host_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1", "ENGINE_TYPE": "selenium",
                "WHATSAPP_WEB_URL": bench.standin.url, "CHROMIUM_ALLOWED_HOSTS": "localhost",
                "WAJS_BUNDLE_PATH": bench.wajs, "CHROMIUM_ARGS": ",".join(se.CHROMIUM_ARGS)}
    host_env.pop("CI", None)
    plat = se.Platform(app, app.test_client(), key, host_env, base)
    out: dict[str, Any] = {"sessions": n}
    try:
        host = plat.start_host("bench@selenium")
        host_proc = psutil.Process(host.process.pid)
        names = [f"sel{i:02d}" for i in range(n)]
        for name in names:
            assert plat.api("POST", "/sessions", json={"name": name}).status_code == 201
        started = time.perf_counter()
        for name in names:
            assert plat.api("POST", f"/sessions/{name}/start").status_code == 200
        at: dict[str, float] = {}
        deadline = time.monotonic() + 60 + 30 * n
        while len(at) < n and time.monotonic() < deadline:
            for name in names:
                if name not in at and plat.request("GET", f"/sessions/{name}")[1]["status"] == "qr_ready":
                    at[name] = time.perf_counter() - started
            time.sleep(0.1)
        assert len(at) == n, f"only {len(at)} of {n} reached qr_ready"
        out["starts_to_all_qr_s"] = round(max(at.values()), 1)
        out["qr_ready_at_s"] = sorted(round(v, 1) for v in at.values())
        for i, name in enumerate(names):
            raw = plat.api("GET", f"/sessions/{name}/qr?format=raw").get_json()["qr"]
            bench.standin.scan(raw, phone=f"155584{i:05d}")
        for name in names:
            plat.wait_status(name, "ready", timeout=60)
        time.sleep(5)
        procs = [host_proc, *host_proc.children(recursive=True)]
        browsers = procs[1:]
        whole, own = se.tree_memory(procs), se.tree_memory([host_proc])
        out["host_python_pss_mib"] = round(own["pss"] / MiB, 1)
        out["browsers_pss_mib"] = round((whole["pss"] - own["pss"]) / MiB, 1)
        out["pss_per_session_mib"] = round((whole["pss"] - own["pss"]) / n / MiB, 1)
        out["processes"] = whole["processes"]
        h0, b0, t0 = cpu([host_proc]), cpu(browsers), time.perf_counter()
        time.sleep(args.idle)
        h1, b1, t1 = cpu([host_proc]), cpu(browsers), time.perf_counter()
        out["idle_host_cpu_cores"] = round((h1 - h0) / (t1 - t0), 3)
        out["idle_browsers_cpu_cores"] = round((b1 - b0) / (t1 - t0), 3)
        out["load_avg"] = [round(x, 2) for x in os.getloadavg()]
    finally:
        plat.stop_all()
        bench.standin.stop()
    lines = [f"{n} selenium sessions on one host (stand-in, real Chromium)", "",
             "| figure | value |", "|---|---:|",
             f"| {n} simultaneous starts → all qr_ready | {out['starts_to_all_qr_s']} s |",
             f"| each qr_ready at (s) | {', '.join(str(x) for x in out['qr_ready_at_s'])} |",
             f"| PSS per session (browser tree) | {out['pss_per_session_mib']} MiB |",
             f"| PSS of all browsers / host's Python | {out['browsers_pss_mib']} / {out['host_python_pss_mib']} MiB |",
             f"| host tick cost, idle, {n} browsers | {out['idle_host_cpu_cores']} cores |",
             f"| browsers' own CPU, idle | {out['idle_browsers_cpu_cores']} cores |",
             f"| load average after | {out['load_avg']} |"]
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
