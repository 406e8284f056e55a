"""Many sessions over several session hosts on this machine (issue 18 item 2).

The platform as its real processes (API, worker, beat and HOSTS session hosts) on Redis and
a throwaway PostgreSQL database, mock engine. For each step of sessions (10 ... 100 by
default) it measures, with one client per session sending back to back:

- aggregate sends/s, p50 / p95, and order kept in every session (its sent.jsonl);
- RSS per host and per session ((hosts' RSS - their RSS with no session) / sessions);
- the lease/heartbeat cost at idle: database transactions per second
  (pg_stat_database xact_commit + xact_rollback of the bench database, over --idle seconds,
  nothing sending), total and per session;
- the time for every session to be `ready` again after a cold start of every process
  (all stopped, all started at once; the sessions were running, so they come back by
  themselves).

    python scripts/bench/many_sessions.py [--steps 10,50,100] [--hosts 4] [--seconds 8]

Prints a Markdown table (and <out>/many-sessions.json) with how each figure grows.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import requests

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import run  # noqa: E402


class Platform(run.Bench):
    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(args)
        self.hosts = [f"bench-h{i + 1}" for i in range(args.hosts)]
        per_host = -(-max(args.steps) // args.hosts) + 5
        self.env.update({"SESSIONS_PER_HOST": str(per_host),
                         "MAX_SESSIONS": str(max(args.steps) + 10)})

    def start_all(self) -> None:
        for role in ("api", "worker", "beat"):
            self.spawn(role, [self.python, "-m", "app", role])
        for name in self.hosts:
            self.spawn(name, [self.python, "-m", "app", "host"], SESSION_HOST_NAME=name)
        run.wait(lambda: self.up(f"{self.base}/health/ready"), 120, "the API")

    def start_platform(self) -> None:
        run.pg_admin(run.PG_ADMIN, f'CREATE DATABASE "{self.db}"')
        import subprocess

        subprocess.run([self.python, "-m", "app", "db", "upgrade"], env=self.env, cwd=self.root,
                       check=True, capture_output=True)
        self.start_all()

    def stop_all(self) -> None:
        for name in reversed(list(self.procs)):
            self.kill(name)

    def host_rss(self) -> dict[str, float]:
        out = {}
        for name in self.hosts:
            total = 0.0
            for proc in run.tree([self.procs[name].pid]):
                try:
                    total += proc.memory_info().rss / 2**20
                except psutil.NoSuchProcess:
                    pass
            out[name] = round(total, 1)
        return out

    def statuses(self) -> dict[str, str]:
        return {s["name"]: s["status"] for s in self.call("GET", "/sessions").json()}

    def xacts(self) -> int:
        import psycopg2

        conn = psycopg2.connect(run.PG_ADMIN)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SELECT pg_stat_clear_snapshot()")
                cur.execute("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s",
                            (self.db,))
                return int(cur.fetchone()[0])
        finally:
            conn.close()


def add_sessions(p: Platform, names: list[str]) -> None:
    for name in names:
        assert p.call("POST", "/sessions", json={"name": name}).status_code == 201
        assert p.call("POST", f"/sessions/{name}/start").status_code == 200
    run.wait(lambda: all(p.statuses().get(n) == "qr_ready" for n in names), 180, "qr_ready")
    for name in names:
        assert p.call("POST", f"/sessions/{name}/mock/scan").status_code == 200
    run.wait(lambda: all(p.statuses().get(n) == "ready" for n in names), 180, "ready")


def send_load(p: Platform, names: list[str], seconds: float) -> dict[str, Any]:
    sent: dict[str, list[str]] = {name: [] for name in names}

    def send(http: requests.Session, i: int, n: int) -> None:
        name = names[i]
        reply = http.post(f"{p.base}/sessions/{name}/messages/send-text",
                          json={"chatId": "15551230009", "text": f"{name} {n:06d}"}, timeout=30)
        if reply.status_code != 201:
            raise RuntimeError(reply.status_code, reply.text[:200])
        sent[name].append(reply.json()["messageId"])

    pids = [proc.pid for proc in p.procs.values()]
    result = run.public(run.load(send, len(names), seconds, pids, p.api_session))
    ids = {s["name"]: s["id"] for s in p.call("GET", "/sessions").json()}
    time.sleep(1)
    in_order, problems = 0, []
    for name in names:
        path = p.work / "sessions" / ids[name] / "sent.jsonl"
        recorded = [json.loads(line)["messageId"] for line in path.read_text().splitlines() if line]
        # Each client sends one after another: the engine must have seen them in that order.
        mine = set(sent[name])
        if [m for m in recorded if m in mine] == sent[name]:
            in_order += 1
        else:
            problems.append(name)
    result.update(sessions_in_order=in_order, out_of_order=problems[:5])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", default="10,50,100")
    parser.add_argument("--hosts", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=8.0, help="sending time per step")
    parser.add_argument("--idle", type=float, default=20.0, help="idle time measured per step")
    parser.add_argument("--out", type=Path, default=run.ROOT / "bench-results")
    args = parser.parse_args()
    args.steps = [int(x) for x in args.steps.split(",")]
    started = time.monotonic()
    p = Platform(args)
    rows: list[dict[str, Any]] = []
    ok = False
    try:
        p.start_platform()
        time.sleep(3)
        base_rss = p.host_rss()
        names: list[str] = []
        for step in args.steps:
            new = [f"many{i:03d}" for i in range(len(names), step)]
            add_sessions(p, new)
            names += new
            time.sleep(2)
            x0, t0 = p.xacts(), time.monotonic()
            time.sleep(args.idle)
            x1, t1 = p.xacts(), time.monotonic()
            idle_tps = (x1 - x0) / (t1 - t0)
            rss = p.host_rss()
            result = send_load(p, names, args.seconds)
            # Cold start of every process: all stopped, all started; the sessions come back.
            p.stop_all()
            t_cold = time.monotonic()
            p.start_all()
            run.wait(lambda: all(p.statuses().get(n) == "ready" for n in names), 300, "all ready")
            cold_s = time.monotonic() - t_cold
            rows.append({
                "sessions": step, "per_s": result["per_s"], "p50_ms": result["p50_ms"],
                "p95_ms": result["p95_ms"], "errors": result["errors"],
                "in_order": result["sessions_in_order"], "out_of_order": result["out_of_order"],
                "host_rss_mib": rss,
                "rss_per_session_mib": round((sum(rss.values()) - sum(base_rss.values())) / step, 2),
                "idle_xact_per_s": round(idle_tps, 1),
                "idle_xact_per_s_per_session": round(idle_tps / step, 3),
                "cold_start_to_all_ready_s": round(cold_s, 1),
                "server_cpu_cores": result["server_cpu_cores"],
                "client_cpu_cores": result["client_cpu_cores"],
                "load_avg": [round(x, 2) for x in os.getloadavg()],
            })
            print(json.dumps(rows[-1]), flush=True)
        ok = True
    finally:
        p.stop()
        if not ok:
            print(f"failed: logs in {p.work}", file=sys.stderr)
    lines = [f"Many sessions: {args.hosts} session hosts, mock engine, one client per session "
             f"({args.seconds:g} s sending per step), run in {round(time.monotonic() - started)} s", "",
             "| sessions | sends/s | p50 ms | p95 ms | errors | order kept | RSS per host MiB | "
             "RSS per session MiB | idle DB xact/s | per session | cold start → all ready s | load avg |",
             "|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['sessions']} | {r['per_s']} | {r['p50_ms']} | {r['p95_ms']} | {r['errors']} | "
                     f"{r['in_order']}/{r['sessions']} | {', '.join(str(v) for v in r['host_rss_mib'].values())} | "
                     f"{r['rss_per_session_mib']} | {r['idle_xact_per_s']} | {r['idle_xact_per_s_per_session']} | "
                     f"{r['cold_start_to_all_ready_s']} | {r['load_avg']} |")
    text = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "many-sessions.json").write_text(json.dumps(rows, indent=2))
    (args.out / "many-sessions.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
