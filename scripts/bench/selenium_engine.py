"""Figures of the selenium engine, on real Chromium against the local WhatsApp Web stand-in.

    python scripts/bench/selenium_engine.py [--quick] [--json results.json]

Measures, and prints as a table (and JSON with --json):

1. start -> QR: ``engine.start()`` to the first QR event (fresh profile), and through the
   platform: ``POST /sessions/:id/start`` to status ``qr_ready`` with a real session host.
2. memory: RSS and PSS of each browser's process tree (PSS shares pages fairly between
   processes, so it adds up) with 1 and with 3 linked, idle sessions; and one session with
   only the flags the issue lists against our chosen flags.
3. event delivery: page -> engine queue latency with the CDP binding, the cost of one
   ``poll()`` with the binding and with polling the page buffer.
4. inbound latency: stand-in pushes a message -> the row is committed by a real session host
   (HOST_POLL_INTERVAL 0.2 s, the default), median and p95, for both delivery modes.

Needs chromium, chromedriver, the wa-js bundle (`make wajs`) and Redis on 127.0.0.1:6379
(database TEST_REDIS_DB, default 5). Runs at most four browsers at once; about two minutes.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from flask_migrate import upgrade  # noqa: E402
from sqlalchemy import select  # noqa: E402

from app import create_app  # noqa: E402
from app.config import WAJS_DEFAULT_PATH, Config  # noqa: E402
from app.extensions import db  # noqa: E402
from app.models import Message  # noqa: E402
from app.services import api_keys  # noqa: E402
from engines import EventKind, create_engine  # noqa: E402
from engines.selenium import SeleniumOptions  # noqa: E402
from engines.selenium import browser as browser_module  # noqa: E402
from engines.selenium.browser import tree_memory  # noqa: E402
from engines.selenium.engine import SeleniumEngine  # noqa: E402
from tests.integration.conftest import Platform, wait_for  # noqa: E402
from tests.standin import StandIn  # noqa: E402

CHROMIUM_ARGS = ["--no-sandbox", "--disable-dev-shm-usage"]
#: The flags the issue starts from, for the memory comparison.
ISSUE_FLAGS = ("--no-first-run", "--disable-background-networking", "--disable-component-update",
               "--disable-sync")
MiB = 1024 * 1024


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


class Bench:
    def __init__(self, quick: bool) -> None:
        self.quick = quick
        self.tmp = Path(tempfile.mkdtemp(prefix="openwa-selenium-bench-"))
        self.standin = StandIn().start()
        self.wajs = os.environ.get("WAJS_BUNDLE_PATH") or str(ROOT / WAJS_DEFAULT_PATH)
        self.results: dict[str, Any] = {}
        self.count = 0

    def options(self, **overrides: Any) -> SeleniumOptions:
        options = SeleniumOptions(
            executable_path=shutil.which("chromium"), driver_path=shutil.which("chromedriver"),
            wajs_bundle_path=self.wajs, whatsapp_web_url=self.standin.url,
            allowed_hosts=["localhost"], extra_args=list(CHROMIUM_ARGS), command_timeout=5.0)
        for key, value in overrides.items():
            setattr(options, key, value)
        return options

    def engine(self, **overrides: Any) -> SeleniumEngine:
        self.count += 1
        engine = create_engine("selenium", f"b{self.count}", self.tmp / f"b{self.count}",
                               self.options(**overrides))
        assert isinstance(engine, SeleniumEngine)
        return engine

    @staticmethod
    def until(engine: SeleniumEngine, match: Callable[[Any], bool], timeout: float = 20) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in engine.poll():
                if match(event):
                    return event
            time.sleep(0.005)
        raise RuntimeError(f"timed out; engine is {engine.state.value}")

    def link(self, engine: SeleniumEngine, phone: str) -> float:
        started = time.perf_counter()
        engine.start()
        qr = self.until(engine, lambda e: e.kind is EventKind.QR).data["qr"]
        took = time.perf_counter() - started
        self.standin.scan(qr, phone=phone)
        self.until(engine, lambda e: e.kind is EventKind.READY)
        return took

    @staticmethod
    def memory(engine: SeleniumEngine) -> dict[str, Any]:
        assert engine.browser is not None
        return tree_memory(engine.browser.tree())

    # -- 1 and 2: start time and memory ------------------------------------------------
    def start_and_memory(self) -> None:
        starts = []
        for n in range(2 if self.quick else 5):
            engine = self.engine()
            starts.append(self.link(engine, f"1555800{n:04d}"))
            engine.close()
        self.results["start_to_qr_engine_s"] = {"median": statistics.median(starts),
                                                "max": max(starts), "n": len(starts)}

        engines = []
        for n in range(3):
            engine = self.engine()
            self.link(engine, f"1555810{n:04d}")
            engines.append(engine)
            if n == 0:
                time.sleep(3)  # settle: the first page has done its start-up work
                self.results["memory_1_session"] = self.memory(engine)
        time.sleep(3)
        per = [self.memory(engine) for engine in engines]
        self.results["memory_3_sessions"] = {
            "per_session": per,
            "total_pss": sum(m["pss"] for m in per), "total_rss": sum(m["rss"] for m in per)}
        for engine in engines:
            engine.close()

        # Our flags against the issue's list alone (both headless, same page).
        chosen = (browser_module.BASE_FLAGS, browser_module.ENABLE_FEATURES,
                  browser_module.DISABLE_FEATURES)
        try:
            browser_module.BASE_FLAGS = ISSUE_FLAGS
            browser_module.ENABLE_FEATURES = browser_module.DISABLE_FEATURES = ()
            engine = self.engine()
            self.link(engine, "15558200000")
            time.sleep(3)
            self.results["memory_issue_flags_only"] = self.memory(engine)
            engine.close()
        finally:
            (browser_module.BASE_FLAGS, browser_module.ENABLE_FEATURES,
             browser_module.DISABLE_FEATURES) = chosen

    # -- 3: delivery --------------------------------------------------------------------
    def delivery(self) -> None:
        engine = self.engine()
        self.link(engine, "15558300000")
        assert engine.channel is not None
        latencies, poll_costs = [], []
        for n in range(10 if self.quick else 30):
            engine.poll()  # nothing left over from the last round
            time.sleep(0.05)
            engine.poll()
            pushed = time.perf_counter()
            self.standin.incoming("15558300000", "15550001111", f"b{n}")
            while not engine.channel.queue:
                time.sleep(0.0002)
            latencies.append(time.perf_counter() - pushed)
            started = time.perf_counter()
            engine.poll()
            poll_costs.append(time.perf_counter() - started)
        idle = []
        for _ in range(50):
            started = time.perf_counter()
            engine.poll()
            idle.append(time.perf_counter() - started)
        engine.close()
        self.results["binding"] = {
            "push_to_engine_queue_ms": {"median": statistics.median(latencies) * 1000,
                                        "p95": pct(latencies, 0.95) * 1000},
            "poll_idle_ms": statistics.median(idle) * 1000,
            "poll_with_event_ms": statistics.median(poll_costs) * 1000}

        engine = self.engine(event_delivery="poll")
        self.link(engine, "15558310000")
        idle = []
        for _ in range(50):
            started = time.perf_counter()
            engine.poll()
            idle.append(time.perf_counter() - started)
        engine.close()
        self.results["poll"] = {"poll_idle_ms": statistics.median(idle) * 1000}

    # -- 1 and 4 through the platform -----------------------------------------------------
    def platform(self, delivery: str) -> dict[str, Any]:
        base = self.tmp / f"platform-{delivery}"
        redis = f"redis://127.0.0.1:6379/{os.environ.get('TEST_REDIS_DB', '5')}"
        env = {"DATABASE_TYPE": "sqlite", "DATABASE_SQLITE_PATH": str(base / "openwa.db"),
               "REDIS_URL": redis, "DATA_PATH": str(base / "data"),
               "SESSION_DATA_PATH": str(base / "sessions"), "LOG_FORMAT": "text",
               "LOG_LEVEL": "warning", "RATE_LIMIT_MAX": "100000", "SEND_WAIT_TIMEOUT": "10",
               "ENGINE_CALL_TIMEOUT": "10", "SESSION_LEASE_TTL": "6"}
        base.mkdir(parents=True)
        config = Config.from_env(env)
        app = create_app(config)
        with app.app_context():
            upgrade()
            _, key = api_keys.create({"name": "bench", "role": "admin"}, config)
        import redis as redis_lib

        redis_lib.Redis.from_url(redis).flushdb()
        host_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1", "ENGINE_TYPE": "selenium",
                    "WHATSAPP_WEB_URL": self.standin.url, "CHROMIUM_ALLOWED_HOSTS": "localhost",
                    "WAJS_BUNDLE_PATH": self.wajs, "CHROMIUM_ARGS": ",".join(CHROMIUM_ARGS),
                    "CHROMIUM_EVENT_DELIVERY": delivery, "HOST_POLL_INTERVAL": "0.2"}
        host_env.pop("CI", None)
        plat = Platform(app, app.test_client(), key, host_env, base)
        result: dict[str, Any] = {}
        try:
            plat.start_host("bench@host")
            starts = []
            for n in range(1 if self.quick else 3):
                name = f"bench-{delivery}-{n}"
                assert plat.api("POST", "/sessions", json={"name": name}).status_code == 201
                started = time.perf_counter()
                assert plat.api("POST", f"/sessions/{name}/start").status_code == 200
                plat.wait_status(name, "qr_ready", timeout=30)
                starts.append(time.perf_counter() - started)
                if n > 0:
                    assert plat.api("POST", f"/sessions/{name}/stop").status_code == 200
            result["start_to_qr_ready_api_s"] = {"median": statistics.median(starts),
                                                 "max": max(starts), "n": len(starts)}
            name = f"bench-{delivery}-0"
            phone = "1555840" + ("0001" if delivery == "binding" else "0002")
            raw = plat.api("GET", f"/sessions/{name}/qr?format=raw").get_json()["qr"]
            self.standin.scan(raw, phone=phone)
            plat.wait_status(name, "ready", timeout=15)
            sid = plat.session_row(name).id
            latencies = []
            for n in range(10 if self.quick else 40):
                pushed = time.time()
                message = self.standin.incoming(phone, "15550002222", f"latency {n}")

                def stored() -> Any:
                    with app.app_context():
                        return db.session.scalar(select(Message.created_at).where(
                            Message.session_id == sid, Message.wa_message_id == message["id"]))

                created = wait_for(stored, 10, 0.002, "the stored message")
                latencies.append(created.timestamp() - pushed)
                time.sleep(random.uniform(0.05, 0.3))  # not in step with the host's tick
            result["inbound_ms"] = {"median": statistics.median(latencies) * 1000,
                                    "p95": pct(latencies, 0.95) * 1000, "n": len(latencies)}
        finally:
            plat.stop_all()
            with app.app_context():
                db.engine.dispose()
        return result

    def run(self) -> dict[str, Any]:
        try:
            self.start_and_memory()
            self.delivery()
            for delivery in ("binding", "poll"):
                self.results[f"platform_{delivery}"] = self.platform(delivery)
        finally:
            self.standin.stop()
            shutil.rmtree(self.tmp, ignore_errors=True)
        return self.results


def report(r: dict[str, Any]) -> str:
    def mem(m: dict[str, Any]) -> str:
        return (f"RSS {m['rss'] / MiB:6.1f} MiB  PSS {m['pss'] / MiB:6.1f} MiB  "
                f"({m['processes']} processes)")

    lines = [
        f"start -> first QR (engine)        median {r['start_to_qr_engine_s']['median']:.2f} s, "
        f"max {r['start_to_qr_engine_s']['max']:.2f} s (n={r['start_to_qr_engine_s']['n']})",
    ]
    for delivery in ("binding", "poll"):
        p = r[f"platform_{delivery}"]
        lines.append(f"start -> qr_ready (API, {delivery:7s})  median "
                     f"{p['start_to_qr_ready_api_s']['median']:.2f} s, max "
                     f"{p['start_to_qr_ready_api_s']['max']:.2f} s")
    lines += [
        f"1 session                         {mem(r['memory_1_session'])}",
        *[f"3 sessions, session {i + 1}            {mem(m)}"
          for i, m in enumerate(r["memory_3_sessions"]["per_session"])],
        f"3 sessions, total                 "
        f"RSS {r['memory_3_sessions']['total_rss'] / MiB:6.1f} MiB  "
        f"PSS {r['memory_3_sessions']['total_pss'] / MiB:6.1f} MiB",
        f"1 session, the issue's flags only {mem(r['memory_issue_flags_only'])}",
        f"binding: page -> engine queue     "
        f"median {r['binding']['push_to_engine_queue_ms']['median']:.2f} ms, "
        f"p95 {r['binding']['push_to_engine_queue_ms']['p95']:.2f} ms",
        f"poll() cost, idle                 binding {r['binding']['poll_idle_ms']:.3f} ms, "
        f"page buffer {r['poll']['poll_idle_ms']:.3f} ms",
    ]
    for delivery in ("binding", "poll"):
        p = r[f"platform_{delivery}"]["inbound_ms"]
        lines.append(f"inbound push -> stored ({delivery:7s})  median {p['median']:.0f} ms, "
                     f"p95 {p['p95']:.0f} ms (n={p['n']}, HOST_POLL_INTERVAL 0.2 s)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    results = Bench(args.quick).run()
    print(report(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
