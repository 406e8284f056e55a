"""What one send costs against the length of its session's history (issue 18: what grows
faster than linearly). For each database and history length: the platform of this checkout
(and of `--baseline` commits, extracted with `git archive`), one mock session whose history
is filled with sent messages by one SQL statement and never analysed (SQLite keeps no
statistics unless asked; PostgreSQL gets none without autovacuum, as on this machine, nor
for a young table), then one client sending text back to back: p50 / p95 and the CPU each
process spends per send.

    python scripts/bench/history_growth.py [--history 0,200000] [--seconds 12]
        [--databases postgres,sqlite] [--baseline COMMIT] [--json out.json]

The PostgreSQL column is the CPU of every PostgreSQL process on the machine: run it on an
otherwise idle machine.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import statistics
import tempfile
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import psycopg2

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import run  # noqa: E402

_FILL = ("INSERT INTO messages (id, session_id, wa_message_id, chat_id, recipient, from_me, "
         "type, body, status, timestamp, created_at, updated_at, starred) ")
FILL_POSTGRES = _FILL + (
    "SELECT 'H' || n, %(session)s, 'true_15551110000@c.us_H' || n, '15551110000@c.us', "
    "'15551110000@c.us', n %% 2 = 0, 'text', 'older', 'read', 1, now(), now(), false "
    "FROM generate_series(1, %(n)s) AS n")
FILL_SQLITE = ("WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < :n) "
               + _FILL +
               "SELECT 'H' || n, :session, 'true_15551110000@c.us_H' || n, '15551110000@c.us', "
               "'15551110000@c.us', n % 2 = 0, 'text', 'older', 'read', 1, "
               "'2026-01-01 00:00:00.000000', '2026-01-01 00:00:00.000000', 0 FROM g")


def postgres_cpu() -> float:
    total = 0.0
    for proc in psutil.process_iter(["name"]):
        try:
            if (proc.info["name"] or "").startswith("postgres"):
                times = proc.cpu_times()
                total += times.user + times.system
        except psutil.Error:
            continue
    return total


def fill(b: run.Bench, database: str, session_id: str, count: int) -> None:
    if database == "sqlite":
        conn = sqlite3.connect(b.env["DATABASE_SQLITE_PATH"])
        with conn:
            conn.execute(FILL_SQLITE, {"n": count, "session": session_id})
        conn.close()
        return
    pg = psycopg2.connect(b.env["DATABASE_URL"])
    with pg, pg.cursor() as cur:
        cur.execute(FILL_POSTGRES, {"n": count, "session": session_id})
    pg.close()


def measure(root: Path, database: str, history: int, seconds: float) -> dict[str, Any]:
    b = run.Bench(argparse.Namespace(quick=True), root=root)
    b.env["PYTHONPATH"] = f"{root}:{BENCH}"
    if database == "sqlite":
        b.env.update(DATABASE_TYPE="sqlite", DATABASE_SQLITE_PATH=str(b.work / "openwa.db"))
        b.env.pop("DATABASE_URL", None)
    try:
        b.start_platform()
        session = b.ready_session("history")
        if history:
            fill(b, database, session["id"], history)
        stored = b.call("GET", "/sessions/history/messages", params={"limit": 1}).json()["total"]
        http = b.api_session()
        url = f"{b.base}/sessions/history/messages/send-text"
        for n in range(200):  # warm-up; the acks of these land during the measurement too
            assert http.post(url, json={"chatId": "15551230009", "text": f"w{n}"},
                             timeout=30).status_code == 201
        roles = ("api", "host")
        procs = {role: run.tree([b.procs[role].pid]) for role in roles}
        cpu0 = {role: run.cpu_seconds(procs[role]) for role in roles}
        pg0 = postgres_cpu()
        latencies: list[float] = []
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            t0 = time.perf_counter()
            reply = http.post(url, json={"chatId": "15551230009", "text": "m"}, timeout=30)
            latencies.append((time.perf_counter() - t0) * 1000)
            assert reply.status_code == 201, reply.text
        time.sleep(1.0)  # the last sends' acks
        n = len(latencies)
        row = {"database": database, "history": history, "stored_before": stored, "sends": n,
               "p50_ms": round(statistics.median(latencies), 2),
               "p95_ms": round(run.percentile(latencies, 0.95), 2)}
        for role in roles:
            row[f"{role}_cpu_ms_per_send"] = round(
                (run.cpu_seconds(procs[role]) - cpu0[role]) * 1000 / n, 2)
        row["postgres_cpu_ms_per_send"] = round((postgres_cpu() - pg0) * 1000 / n, 2)
        return row
    finally:
        b.stop()
        shutil.rmtree(b.work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--history", default="0,200000")
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--databases", default="postgres,sqlite")
    parser.add_argument("--baseline", action="append", default=[], metavar="COMMIT")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="openwa-history-"))
    trees = [("now", run.ROOT)] + [(c, run.checkout(work, c, False)[0]) for c in args.baseline]
    rows = []
    try:
        for database in args.databases.split(","):
            for history in (int(h) for h in args.history.split(",")):
                for label, root in trees:  # each tree in turn, per case
                    row = {"tree": label, **measure(root, database, history, args.seconds)}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("\n| database | history | tree | sends | p50 ms | p95 ms | API CPU ms/send | "
          "host CPU ms/send | PostgreSQL CPU ms/send |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        pg = r["postgres_cpu_ms_per_send"] if r["database"] == "postgres" else "–"
        print(f"| {r['database']} | {r['history']:,} | {r['tree']} | {r['sends']} | {r['p50_ms']} | "
              f"{r['p95_ms']} | {r['api_cpu_ms_per_send']} | {r['host_cpu_ms_per_send']} | {pg} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
