"""The benchmark harness works end to end (issue 8): `run.py --quick` against the real
platform on Redis and PostgreSQL writes every section with numbers. No thresholds: figures
on a shared CI machine prove nothing, a harness that silently stopped working would."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.databases import ADMIN_URL

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@pytest.mark.timeout(240)
def test_quick_run_writes_every_section(tmp_path: Path, redis_available: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_"))}
    env.update(BENCH_REDIS_URL=redis_available, BENCH_PG_ADMIN=ADMIN_URL)
    result = subprocess.run([sys.executable, "scripts/bench/run.py", "--quick", "--out", str(tmp_path)],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=230)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    report = json.loads((tmp_path / "latest.json").read_text())
    assert (tmp_path / "latest.md").read_text().startswith("OpenWA benchmarks")

    send = report["send_path"]
    for kind in ("send_text", "bare_flask", "bare_celery", "bare_send"):
        assert [row["clients"] for row in send[kind]] == [1, 8, 32]
        for row in send[kind]:
            assert row["n"] > 0 and row["errors"] == 0, row
            for key in ("per_s", "p50_ms", "p95_ms", "p99_ms", "client_cpu_cores", "server_cpu_cores"):
                assert number(row[key]), (kind, key, row)
    assert all(number(r["send_vs_celery"]) and number(r["send_vs_flask"])
               for r in send["ratios"].values())
    # The floor (bare_send.py) answered 201 only after its worker committed `sent` and its
    # reply came back: it holds a whole Celery round trip, so it is never the faster of the two.
    for r in send["ratios"].values():
        assert number(r["floor_p50_vs_celery"]) and r["floor_p50_vs_celery"] > 1, r
        assert number(r["send_vs_floor"]) and number(r["p50_vs_floor"]), r

    inbound = report["inbound_path"]
    assert inbound["received"] == inbound["injected"] > 0 and inbound["duplicates"] == 0
    for key in ("events_per_s", "p50_ms", "p95_ms", "p99_ms", "client_cpu_cores", "server_cpu_cores"):
        assert number(inbound[key]), (key, inbound)
    bare = inbound["bare_post_loop"]
    assert bare["n"] > 0 and bare["errors"] == 0 and number(bare["per_s"]) and number(bare["p95_ms"])
    assert any(t["target"].startswith("inbound-to-webhook") for t in report["targets"])

    history = report["read_path"]["10000"]
    for case in ("newest", "deep_after", "deep_offset"):
        assert number(history[case]["p95_ms"]) and number(history[case]["p50_ms"])

    many = report["many_sessions"]
    assert many["n"] > 0 and many["errors"] == 0 and number(many["per_s"])
    assert many["sessions_in_order"] == many["sessions"]

    memory = report["memory"]
    roles = {row["process"] for row in memory["idle"]}
    assert {"api", "host", "worker", "beat"} <= roles
    assert all(number(row["rss_mib"]) and row["rss_mib"] > 0
               for row in memory["idle"] + memory["loaded"])
    assert report["targets"] and all(isinstance(t["met"], bool) for t in report["targets"])

    # -- media (issue 12)
    media = report["media"]
    for key in ("image_100kb", "text_beside"):
        row = media["image_rate"][key]
        assert row["n"] > 0 and row["errors"] == 0 and number(row["per_s"]), (key, row)
    assert len(media["documents"]) == 4
    for run in media["documents"]:
        assert set(run["statuses"]) <= {201, 202} and len(run["statuses"]) == run["clients"], run
        assert {row["process"].split(" ")[0] for row in run["peak"]} >= {"api", "host", "worker"}
    assert all(number(ms) and ms > 0 for ms in media["incoming_video"]["latencies_ms"])


@pytest.mark.timeout(240)
def test_history_growth_measures_a_send_beside_a_filled_history(tmp_path: Path,
                                                                redis_available: str) -> None:
    """scripts/bench/history_growth.py (issue 18): a session's history filled on both
    databases, then sends measured with the CPU of each process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_"))}
    env.update(BENCH_REDIS_URL=redis_available, BENCH_PG_ADMIN=ADMIN_URL)
    out = tmp_path / "history.json"
    result = subprocess.run([sys.executable, "scripts/bench/history_growth.py", "--history", "3000",
                             "--seconds", "1", "--json", str(out)],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=230)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    rows = json.loads(out.read_text())
    assert [(r["database"], r["history"], r["tree"]) for r in rows] == [
        ("postgres", 3000, "now"), ("sqlite", 3000, "now")]
    for row in rows:
        assert row["sends"] > 0 and row["stored_before"] == 3000, row
        for key in ("p50_ms", "p95_ms", "api_cpu_ms_per_send", "host_cpu_ms_per_send"):
            assert number(row[key]) and row[key] > 0, (key, row)
    assert rows[0]["postgres_cpu_ms_per_send"] > 0
    assert "| postgres | 3,000 | now |" in result.stdout


@pytest.mark.timeout(240)
def test_profile_send_measures_the_cpu_of_each_process_per_send(redis_available: str) -> None:
    """scripts/bench/profile_send.py --cpu (issue 18): sends on the real platform, then the
    CPU time each process spent per send answered."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_"))}
    env.update(BENCH_REDIS_URL=redis_available, BENCH_PG_ADMIN=ADMIN_URL)
    result = subprocess.run([sys.executable, "scripts/bench/profile_send.py", "--cpu",
                             "--clients", "1", "--seconds", "2"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=230)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    rows = {}
    for line in result.stdout.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) == 3 and cells[0] not in ("process", "---"):
            rows[cells[0]] = (float(cells[1]), float(cells[2]))
    assert set(rows) == {"api", "host", "worker", "beat", "PostgreSQL", "Redis",
                         "clients (this script)", "total"}, result.stdout
    for role in ("api", "host", "PostgreSQL", "clients (this script)", "total"):
        assert rows[role][1] > 0, (role, result.stdout)
    assert rows["total"][1] >= rows["api"][1] + rows["host"][1]
    assert int(result.stdout.split(" sends ")[0].rsplit(" ", 1)[1]) > 0
