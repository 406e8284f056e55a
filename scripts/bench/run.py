"""OpenWA benchmarks on this machine, each figure beside the machine's own limit measured
the same way, in one run (issue 8).

The platform runs as its real processes (`python -m app api|host|worker|beat`) on Redis
(DB 15 by default) and PostgreSQL (a throwaway database, dropped afterwards) with the mock
engine. Measured:

- send path: send-text at 1 / 8 / 32 concurrent clients, beside a bare Flask JSON endpoint
  under the same gunicorn settings and a bare Celery round trip (apply_async + get of a
  no-op task, solo-pool worker, same broker and settings) from the same client threads,
  and the send path's floor (bare_send.py: a committed insert, the Celery round trip to a
  worker that commits the row `sent`, the reply on a list; none of the product's work);
- inbound path: messages dropped into 4 mock sessions' inboxes at 100/s → stored →
  `message.received` at a local receiver, end to end, beside a bare loop of POSTs to it;
- read path: history (limit 50) newest page, a deep page by keyset (`after`) and by
  `offset`, with 10k and (full run) 1M stored messages;
- many sessions: N mock sessions sending at once, aggregate sends/s, per-session order
  checked in each session's sent.jsonl;
- memory: RSS of every process idle and under load;
- media (scripts/bench/media.py): 100 kB image sends/s at 8 clients beside send-text, peak
  RSS while 10 clients send a 15 MB document each, an incoming 5 MB video to its webhook;
- the client's own CPU beside the server's, so a client bottleneck shows.

    python scripts/bench/run.py [--quick] [--out bench-results]

Writes <out>/latest.json and <out>/latest.md and prints the Markdown.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import psutil
import requests

ROOT = Path(__file__).resolve().parents[2]
BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from app.embedded_redis import free_port  # noqa: E402

KEY = "owa_k1_" + "be" * 32
PG_ADMIN = os.environ.get("BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")


# -- helpers -------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def wait(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError(f"timed out waiting for {what}")


def cpu_seconds(procs: list[psutil.Process]) -> float:
    total = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def tree(pids: list[int]) -> list[psutil.Process]:
    out = []
    for pid in pids:
        try:
            root = psutil.Process(pid)
            out.extend([root, *root.children(recursive=True)])
        except psutil.NoSuchProcess:
            pass
    return out


def client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def load(call: Callable[[requests.Session, int, int], None], clients: int, seconds: float,
         server: list[int], setup: Callable[[], requests.Session] | None = None,
         warmup: float = 0.5) -> dict[str, Any]:
    """`clients` threads call `call(http, client, n)` back to back for `seconds` (after a
    warm-up); latency per call, throughput, client and server CPU (in cores)."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    samples: list[str] = []
    start_flag = threading.Event()
    phase = {"measure": False, "stop": False}

    def worker(i: int) -> None:
        http = setup() if setup else requests.Session()
        n = 0
        start_flag.wait()
        while not phase["stop"]:
            t0 = time.perf_counter()
            try:
                call(http, i, n)
                ok = True
            except Exception as exc:  # noqa: BLE001 - counted, reported
                ok = False
                if len(samples) < 3:
                    samples.append(repr(exc)[:300])
            if phase["measure"]:
                if ok:
                    latencies[i].append((time.perf_counter() - t0) * 1000)
                else:
                    errors[i] += 1
            n += 1

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    start_flag.set()
    time.sleep(warmup)
    procs = tree(server)
    c0, s0, w0 = client_cpu(), cpu_seconds(procs), time.perf_counter()
    phase["measure"] = True
    time.sleep(seconds)
    phase["measure"] = False
    c1, s1, w1 = client_cpu(), cpu_seconds(procs), time.perf_counter()
    phase["stop"] = True
    for t in threads:
        t.join(30)
    flat = [x for per in latencies for x in per]
    wall = w1 - w0
    return {
        "clients": clients, "n": len(flat), "errors": sum(errors),
        "per_s": round(len(flat) / wall, 1),
        "p50_ms": round(percentile(flat, 0.50), 2), "p95_ms": round(percentile(flat, 0.95), 2),
        "p99_ms": round(percentile(flat, 0.99), 2),
        "client_cpu_cores": round((c1 - c0) / wall, 2),
        "server_cpu_cores": round((s1 - s0) / wall, 2),
        "error_samples": samples,
        "_raw": {"lat": flat, "wall": wall, "client_cpu": c1 - c0, "server_cpu": s1 - s0},
    }


def merged(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One row from the slices of an interleaved measurement (same clients)."""
    flat = [x for part in parts for x in part["_raw"]["lat"]]
    wall = sum(part["_raw"]["wall"] for part in parts)
    return {
        "clients": parts[0]["clients"], "n": len(flat), "errors": sum(p["errors"] for p in parts),
        "per_s": round(len(flat) / wall, 1),
        "p50_ms": round(percentile(flat, 0.50), 2), "p95_ms": round(percentile(flat, 0.95), 2),
        "p99_ms": round(percentile(flat, 0.99), 2),
        "client_cpu_cores": round(sum(p["_raw"]["client_cpu"] for p in parts) / wall, 2),
        "server_cpu_cores": round(sum(p["_raw"]["server_cpu"] for p in parts) / wall, 2),
        "error_samples": [x for p in parts for x in p["error_samples"]][:3],
        "slices": len(parts),
        "load_avg": [round(x, 2) for x in os.getloadavg()],
    }


def interleaved(cases: dict[str, tuple[Callable[[requests.Session, int, int], None], list[int],
                                       Callable[[], requests.Session] | None]],
                clients: int, seconds: float, rounds: int = 4) -> dict[str, dict[str, Any]]:
    """Measure every case at `clients` for `seconds` in all, in `rounds` short slices taken
    in turn (A B C A B C ...), so a ratio between two cases compares figures from the same
    seconds of this machine, not from two minutes that a neighbour's load made different."""
    parts: dict[str, list[dict[str, Any]]] = {name: [] for name in cases}
    for r in range(rounds):
        # Alternate which case goes first, so none always follows the same one.
        order = list(cases) if r % 2 == 0 else list(reversed(cases))
        for name in order:
            call, server, setup = cases[name]
            parts[name].append(load(call, clients, seconds / rounds, server, setup, warmup=0.3))
    return {name: merged(rows) for name, rows in parts.items()}


def public(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if not k.startswith("_")}


def rss(named: dict[str, int]) -> list[dict[str, Any]]:
    rows = []
    for name, pid in named.items():
        for i, proc in enumerate(tree([pid])):
            try:
                label = name if i == 0 else f"{name} (child {proc.pid})"
                rows.append({"process": label, "pid": proc.pid,
                             "rss_mib": round(proc.memory_info().rss / 2**20, 1)})
            except psutil.NoSuchProcess:
                pass
    return rows


class PeakRss:
    """Samples RSS of every process every 0.25 s; keeps each process's peak."""

    def __init__(self, named: dict[str, int]) -> None:
        self.named, self.peak = named, {}  # type: dict[str, int], dict[tuple[str, int], float]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            for row in rss(self.named):
                key = (row["process"], row["pid"])
                self.peak[key] = max(self.peak.get(key, 0.0), row["rss_mib"])
            self.stop.wait(0.25)

    def __enter__(self) -> "PeakRss":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()

    def rows(self) -> list[dict[str, Any]]:
        return [{"process": p, "pid": pid, "rss_mib": v} for (p, pid), v in self.peak.items()]


# -- the platform ----------------------------------------------------------------
class Bench:
    def __init__(self, args: argparse.Namespace, root: Path = ROOT, python: str = sys.executable,
                 redis_url: str = REDIS_URL) -> None:
        """The platform of the checkout at `root`, run by `python` on `redis_url` (the
        comparison runs older checkouts beside this one, each on its own redis-server)."""
        self.args = args
        self.root, self.python = root, python
        self.work = Path(tempfile.mkdtemp(prefix="openwa-bench-"))
        self.db = f"openwa_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}/api"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("DATABASE_", "REDIS_", "CI", "API_KEY"))}
        env.update({
            "DATABASE_TYPE": "postgres",
            "DATABASE_URL": PG_ADMIN.rsplit("/", 1)[0] + "/" + self.db,
            "REDIS_URL": redis_url,
            "DATA_PATH": str(self.work / "data"),
            "SESSION_DATA_PATH": str(self.work / "sessions"),
            "API_KEY_MASTER": KEY, "PORT": str(self.port), "METRICS_PORT": "0",
            "LOG_LEVEL": "warning", "LOG_FORMAT": "text", "PYTHONUNBUFFERED": "1",
            "RATE_LIMIT_ENABLED": "false", "MOCK_AUTO_SCAN_SECONDS": "0",
            "SEND_WAIT_TIMEOUT": "10", "API_DRAIN_SECONDS": "0",
            # One session host holds every session of the many-sessions run.
            "SESSIONS_PER_HOST": "30", "MAX_SESSIONS": "40",
            "ENCRYPTION_KEY": "bench-encryption-key-0123456789",
            # The inbound path's receiver listens on 127.0.0.1.
            "WEBHOOK_ALLOW_PRIVATE": "true",
            "PYTHONPATH": f"{root}:{BENCH}",
            # -- media (issue 12): files in the run's folder; URL sends come from 127.0.0.1
            "STORAGE_LOCAL_PATH": str(self.work / "media"), "MEDIA_ALLOW_PRIVATE": "true",
        })
        self.env = env
        from app.config import Config
        config = Config.from_env(env)
        self.api_workers, self.api_threads = config.api_workers, config.api_threads
        self.http = requests.Session()
        self.http.headers["X-API-Key"] = KEY

    # processes
    def spawn(self, name: str, argv: list[str], cwd: Path | None = None, **extra: str) -> None:
        log = open(self.work / f"{name}.log", "wb")
        self.procs[name] = subprocess.Popen(argv, env={**self.env, **extra}, cwd=cwd or self.root,
                                            stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def log_tail(self, name: str) -> str:
        path = self.work / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def up(self, url: str) -> bool:
        try:
            return requests.get(url, timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def start_platform(self) -> None:
        pg_admin(PG_ADMIN, f'CREATE DATABASE "{self.db}"')
        subprocess.run([self.python, "-m", "app", "db", "upgrade"], env=self.env, cwd=self.root,
                       check=True, capture_output=True)
        for role in ("api", "host", "worker", "beat"):
            self.spawn(role, [self.python, "-m", "app", role])
        try:
            wait(lambda: self.up(f"{self.base}/health/ready"), 90, "the API")
        except TimeoutError:
            raise RuntimeError(self.log_tail("api")) from None

    def stop(self) -> None:
        for name in reversed(list(self.procs)):
            self.kill(name)
        try:
            pg_admin(PG_ADMIN, f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)')
        except Exception as exc:  # noqa: BLE001
            print(f"could not drop {self.db}: {exc}", file=sys.stderr)

    def platform_pids(self) -> list[int]:
        return [self.procs[r].pid for r in ("api", "host", "worker", "beat") if r in self.procs]

    # sessions
    def call(self, method: str, path: str, **kw: Any) -> requests.Response:
        return self.http.request(method, f"{self.base}{path}", timeout=30, **kw)

    def ready_session(self, name: str) -> dict[str, Any]:
        assert self.call("POST", "/sessions", json={"name": name}).status_code == 201
        assert self.call("POST", f"/sessions/{name}/start").status_code == 200
        wait(lambda: self.call("GET", f"/sessions/{name}").json()["status"] == "qr_ready", 60,
             f"{name} qr_ready")
        assert self.call("POST", f"/sessions/{name}/mock/scan").status_code == 200
        return wait(lambda: (s := self.call("GET", f"/sessions/{name}").json())["status"]
                    == "ready" and s, 60, f"{name} ready")

    def api_session(self) -> requests.Session:
        http = requests.Session()
        http.headers["X-API-Key"] = KEY
        return http


# -- sections ----------------------------------------------------------------------
def send_path(b: Bench, levels: list[int], seconds: float) -> dict[str, Any]:
    session = b.ready_session("bench")
    url = f"{b.base}/sessions/bench/messages/send-text"

    def send(http: requests.Session, i: int, n: int) -> None:
        reply = http.post(url, json={"chatId": "15551230009", "text": f"c{i} n{n}"}, timeout=30)
        if reply.status_code != 201:
            raise RuntimeError(reply.status_code, reply.text[:200])

    out: dict[str, Any] = {"session_id": session["id"], "send_text": [], "bare_flask": [],
                           "bare_celery": [], "bare_send": []}

    # (a) bare Flask under the same gunicorn settings
    flask_port = free_port()
    b.spawn("bare_flask", [sys.executable, "-m", "gunicorn", "-k", "gthread",
                           "-w", str(b.api_workers), "--threads", str(b.api_threads),
                           "-b", f"127.0.0.1:{flask_port}", "--chdir", str(BENCH),
                           "--no-control-socket", "--access-logfile", "/dev/null",
                           "bare_flask:app"])
    wait(lambda: b.up(f"http://127.0.0.1:{flask_port}/ping"), 30, "bare flask")
    echo = f"http://127.0.0.1:{flask_port}/echo"

    def flask_call(http: requests.Session, i: int, n: int) -> None:
        if http.post(echo, json={"chatId": "15551230009", "text": f"c{i} n{n}"},
                     timeout=30).status_code != 201:
            raise RuntimeError("bare flask")

    # (b) bare Celery round trip, solo pool, same broker and settings
    queue = f"bench.noop.{uuid.uuid4().hex[:8]}"
    b.spawn("bare_celery", [sys.executable, "-m", "celery", "-A", "bare_celery", "worker",
                            "--pool", "solo", "--concurrency", "1", "-Q", queue,
                            "--hostname", f"bench-{queue}@%h", "--without-mingle",
                            "--without-gossip", "--loglevel", "WARNING"], cwd=BENCH,
            BENCH_QUEUE=queue)
    os.environ["REDIS_URL"] = REDIS_URL
    sys.path.insert(0, str(BENCH))
    import bare_celery

    wait(lambda: _celery_ok(bare_celery, queue), 60, "bare celery worker")

    def celery_call(http: requests.Session, i: int, n: int) -> None:
        bare_celery.noop.apply_async(({"n": n},), queue=queue).get(timeout=30)

    # (c) the floor (issue 18): HTTP + a committed insert + the Celery round trip + a
    # committed update + the reply on a list, with none of the product's work (bare_send.py)
    floor_url, floor_pids = _start_bare_send(b)

    def floor_call(http: requests.Session, i: int, n: int) -> None:
        reply = http.post(floor_url, json={"chatId": "15551230009", "text": f"c{i} n{n}"}, timeout=30)
        if reply.status_code != 201:
            raise RuntimeError("bare send", reply.status_code)

    # Each level measures the four interleaved in short slices (issue 18 item 4), so a
    # ratio compares figures taken within the same seconds: this machine's speed moves by a
    # third between minutes.
    for c in levels:
        rows = interleaved({
            "send_text": (send, b.platform_pids(), b.api_session),
            "bare_celery": (celery_call, [b.procs["bare_celery"].pid], None),
            "bare_flask": (flask_call, [b.procs["bare_flask"].pid], None),
            "bare_send": (floor_call, floor_pids, None)}, c, seconds)
        for name, row in rows.items():
            out[name].append(row)
    for name in ("bare_flask", "bare_celery", "bare_send_http", "bare_send_worker"):
        b.kill(name)
    by = {name: {r["clients"]: r for r in out[name]} for name in ("send_text", "bare_flask",
                                                                  "bare_celery", "bare_send")}

    def ratio(c: int, what: str, limit: str, key: str = "per_s", digits: int = 3) -> float:
        return round(by[what][c][key] / max(by[limit][c][key], 1e-9), digits)

    out["ratios"] = {str(c): {"send_vs_celery": ratio(c, "send_text", "bare_celery"),
                              "send_vs_flask": ratio(c, "send_text", "bare_flask"),
                              "p50_vs_celery": ratio(c, "send_text", "bare_celery", "p50_ms", 2),
                              "floor_vs_celery": ratio(c, "bare_send", "bare_celery"),
                              "floor_p50_vs_celery": ratio(c, "bare_send", "bare_celery", "p50_ms", 2),
                              "send_vs_floor": ratio(c, "send_text", "bare_send"),
                              "p50_vs_floor": ratio(c, "send_text", "bare_send", "p50_ms", 2)}
                     for c in levels}
    return out


def _start_bare_send(b: Bench) -> tuple[str, list[int]]:
    """The floor's two processes (bare_send.py) on the run's database and Redis: its HTTP
    side under the API's gunicorn settings, its worker a solo pool like a session host.
    Answers the send URL and the processes' pids."""
    # psycopg2, as the platform (SQLAlchemy's plain postgresql:// would pick psycopg 3)
    url = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg2://", 1) + "/" + b.db
    queue = f"bench.bare_send.{uuid.uuid4().hex[:8]}"
    extra = {"BARE_SEND_DB": url, "BENCH_QUEUE": queue}  # Redis: the run's (b.env)
    subprocess.run([sys.executable, "-c", "import bare_send; bare_send.create_table()"],
                   cwd=BENCH, env={**b.env, **extra}, check=True, capture_output=True)
    port = free_port()
    b.spawn("bare_send_http", [sys.executable, "-m", "gunicorn", "-k", "gthread",
                               "-w", str(b.api_workers), "--threads", str(b.api_threads),
                               "-b", f"127.0.0.1:{port}", "--chdir", str(BENCH),
                               "--no-control-socket", "--access-logfile", "/dev/null",
                               "bare_send:app"], **extra)
    b.spawn("bare_send_worker", [sys.executable, "-m", "celery", "-A", "bare_send:celery_app",
                                 "worker", "--pool", "solo", "--concurrency", "1", "-Q", queue,
                                 "--hostname", f"bench-{queue}@%h", "--without-mingle",
                                 "--without-gossip", "--loglevel", "WARNING"], cwd=BENCH, **extra)
    send_url = f"http://127.0.0.1:{port}/send"
    http = requests.Session()
    # Up when a send makes the whole round trip (gunicorn listens, the worker consumes).
    wait(lambda: _posted(http, send_url), 60, "bare send")
    return send_url, [b.procs["bare_send_http"].pid, b.procs["bare_send_worker"].pid]


def _posted(http: requests.Session, url: str) -> bool:
    try:
        return http.post(url, json={"text": "up?"}, timeout=15).status_code == 201
    except requests.RequestException:
        return False


def inbound_path(b: Bench, rate: float, seconds: float, sessions: int) -> dict[str, Any]:
    """Messages arriving at mock sessions at `rate`/s (dropped into their mock-network
    inboxes, as another phone does) → stored → `message.received` at a local receiver:
    events/s and end-to-end latency, beside a bare loop of HTTP POSTs to that receiver."""
    from receiver import Receiver

    from engines.mock import write_json_atomic

    receiver = Receiver()
    phones = []
    for i in range(sessions):
        name = f"inbound{i}"
        phones.append(b.ready_session(name)["phone"])
        reply = b.call("POST", f"/sessions/{name}/webhooks",
                       json={"url": receiver.url, "events": ["message.received"]})
        assert reply.status_code == 201, reply.text
    inboxes = [b.work / "sessions" / "_mocknet" / phone / "inbox" for phone in phones]
    total = int(rate * seconds)
    injected: dict[str, float] = {}
    c0, procs = client_cpu(), tree(b.platform_pids())
    s0, started = cpu_seconds(procs), time.perf_counter()
    for n in range(total):
        due = started + n / rate
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        body = f"inbound {n}"
        injected[body] = time.perf_counter()
        write_json_atomic(inboxes[n % sessions] / f"{time.time_ns():020d}-{n:08d}.json", {
            "id": f"BENCHIN{n:010d}", "from": "15559990000", "to": phones[n % sessions],
            "type": "text", "body": body, "timestamp": int(time.time())}, durable=False)
    injected_for = time.perf_counter() - started
    try:
        wait(lambda: receiver.count("message.received") >= total, 60, "every inbound webhook")
    finally:
        c1, s1, ended = client_cpu(), cpu_seconds(procs), time.perf_counter()
    with receiver.lock:
        arrivals = [(t, body["data"]["body"]) for t, body in receiver.arrivals
                    if body.get("event") == "message.received"]
    latencies = [(t - injected[text]) * 1000 for t, text in arrivals if text in injected]
    wall = max(t for t, _ in arrivals) - started
    out: dict[str, Any] = {
        "sessions": sessions, "offered_per_s": rate, "injected": total,
        "injected_in_s": round(injected_for, 2), "received": len(set(t for _, t in arrivals)),
        "duplicates": len(arrivals) - len(set(t for _, t in arrivals)),
        "events_per_s": round(len(latencies) / wall, 1),
        "p50_ms": round(percentile(latencies, 0.5), 1), "p95_ms": round(percentile(latencies, 0.95), 1),
        "p99_ms": round(percentile(latencies, 0.99), 1),
        "client_cpu_cores": round((c1 - c0) / (ended - started), 2),
        "server_cpu_cores": round((s1 - s0) / (ended - started), 2),
    }
    # The receiver's own limit: one client POSTing a message.received-sized body back to back.
    sample = json.dumps({"event": "message.received", "data": {"body": "x" * 40}, "pad": "y" * 600})

    def post(http: requests.Session, i: int, n: int) -> None:
        if http.post(receiver.url, data=sample, headers={"Content-Type": "application/json"},
                     timeout=10).status_code != 204:
            raise RuntimeError("receiver")

    out["bare_post_loop"] = public(load(post, 1, min(seconds, 5.0), []))
    receiver.stop()
    return out


def _celery_ok(module: Any, queue: str) -> bool:
    try:
        module.noop.apply_async(({"n": -1},), queue=queue).get(timeout=2)
        return True
    except Exception:  # noqa: BLE001
        return False


def pg_admin(url: str, statement: str) -> None:
    """One statement in autocommit (CREATE/DROP DATABASE need it)."""
    import psycopg2

    conn = psycopg2.connect(url)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.close()


def insert_messages(b: Bench, session_id: str, count: int) -> float:
    """COPY `count` rows for one session; returns seconds taken (incl. ANALYZE)."""
    import io

    import psycopg2

    started = time.perf_counter()
    now = dt.datetime.now(dt.timezone.utc).isoformat()
    base_ts = int(time.time()) - count
    url = PG_ADMIN.rsplit("/", 1)[0] + "/" + b.db
    prefix = uuid.uuid4().hex[:8]
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            for start in range(0, count, 100_000):  # COPY in chunks: bounded memory
                rows = io.StringIO()
                for i in range(start, min(count, start + 100_000)):
                    chat = f"1555{i % 97:07d}@c.us"
                    rows.write("\t".join((f"b{prefix}{i:010d}", session_id, f"wa{prefix}{i}", chat,
                                          chat, "15550001111@c.us", "t" if i % 2 == 0 else "f",
                                          "text", f"benchmark message {i}", "sent",
                                          str(base_ts + i), now, now)) + "\n")
                rows.seek(0)
                cur.copy_expert("COPY messages (id, session_id, wa_message_id, chat_id, sender, "
                                "recipient, from_me, type, body, status, timestamp, created_at, "
                                "updated_at) FROM STDIN", rows)
        conn.commit()
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("ANALYZE messages")
    finally:
        conn.close()
    return time.perf_counter() - started


def read_path(b: Bench, sizes: list[int], reps: int) -> dict[str, Any]:
    """History at each size; the sizes' requests interleaved (10k, 1M, 10k, 1M ...) so the
    ratio between them never compares two different minutes of this machine."""
    out: dict[str, Any] = {}
    cases: dict[int, dict[str, tuple[str, dict[str, Any]]]] = {}
    for size in sizes:
        name = f"hist{size}"
        created = b.call("POST", "/sessions", json={"name": name})
        assert created.status_code == 201, created.text
        sid = created.json()["id"]
        load_s = insert_messages(b, sid, size)
        path = f"/sessions/{name}/messages"
        mid = b.call("GET", path, params={"limit": 1, "offset": size // 2}).json()["messages"][0]["id"]
        cases[size] = {"newest": (path, {"limit": 50}),
                       "deep_after": (path, {"limit": 50, "after": mid}),
                       "deep_offset": (path, {"limit": 50, "offset": size // 2})}
        out[str(size)] = {"rows": size, "insert_s": round(load_s, 1)}
    times = {(size, case): [] for size in sizes for case in HISTORY_CASES}  # type: dict[tuple[int, str], list[float]]
    for rep in range(reps):
        for case in HISTORY_CASES:
            for size in (sizes if rep % 2 == 0 else list(reversed(sizes))):
                path, params = cases[size][case]
                t0 = time.perf_counter()
                reply = b.call("GET", path, params=params)
                times[(size, case)].append((time.perf_counter() - t0) * 1000)
                assert reply.status_code == 200 and len(reply.json()["messages"]) == 50
    for (size, case), values in times.items():
        out[str(size)][case] = {"n": reps, "p50_ms": round(percentile(values, 0.5), 2),
                                "p95_ms": round(percentile(values, 0.95), 2)}
    out["load_avg"] = [round(x, 2) for x in os.getloadavg()]
    if len(sizes) > 1:
        small, big = out[str(sizes[0])], out[str(sizes[-1])]
        out["ratio_big_vs_small_p95"] = {
            case: round(big[case]["p95_ms"] / max(small[case]["p95_ms"], 1e-9), 2)
            for case in HISTORY_CASES}
    return out


HISTORY_CASES = ("newest", "deep_after", "deep_offset")


# -- this checkout beside earlier commits, interleaved (issue 15 item 9, issue 18) ---------------
#: Earlier commits run beside this checkout: (label, commit, extra pip pin file or None).
#: 342e9a5 is the last commit on psycopg 3 (issue 15 item 9: before and after psycopg2);
#: b8cdfd7 is the main branch before issue 18's send path (the doorbell).
BASELINES = [("before issue 18 (b8cdfd7)", "b8cdfd7", False),
             ("psycopg 3 (342e9a5)", "342e9a5", True)]
OLD_DRIVER_COMMIT = "342e9a5"


def checkout(work: Path, commit: str, psycopg3: bool) -> tuple[Path, str]:
    """The tree of `commit` (git archive: the repository is not touched) and a python for it:
    this venv's, or for the psycopg 3 commit a venv under .tools/ that sees this venv's
    packages through a .pth and holds that commit's psycopg pin itself (made once)."""
    dest = work / f"checkout-{commit}"
    dest.mkdir()
    tar = subprocess.run(["git", "-C", str(ROOT), "archive", commit], check=True,
                         capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=tar, check=True)
    if not psycopg3:
        return dest, sys.executable
    venv = ROOT / ".tools" / "bench-psycopg3-venv"
    python = venv / "bin" / "python"
    if not (venv / ".ready").exists():
        import sysconfig

        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              check=True, capture_output=True, text=True).stdout.strip()
        Path(site, "openwa-bench-base.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
        pin = next(line.strip() for line in (dest / "requirements" / "base.txt").read_text().splitlines()
                   if line.startswith("psycopg"))
        subprocess.run([str(python), "-m", "pip", "install", "-q", pin], check=True)
        (venv / ".ready").touch()
    return dest, str(python)


def compare_commits(main: Bench, args: argparse.Namespace, levels: list[int], seconds: float,
                    reps: int, size: int) -> dict[str, Any]:
    """The send path and history of this checkout beside each of BASELINES: one more
    platform each, all up at once, each on its own database and its own private
    redis-server (same binary and settings), every case interleaved across them."""
    from app import embedded_redis

    labels: dict[str, Bench] = {}
    servers = []
    try:
        for label, commit, psycopg3 in [("now (this checkout)", None, False), *BASELINES]:
            root, python = (ROOT, sys.executable) if commit is None else checkout(main.work, commit, psycopg3)
            server = embedded_redis.start(main.work / f"redis-{commit or 'now'}")
            servers.append(server)
            labels[label] = Bench(args, root=root, python=python, redis_url=server[1])
        out: dict[str, Any] = {"size": size, "send_text": {name: [] for name in labels}}
        calls: dict[str, Any] = {}
        paths: dict[str, dict[str, tuple[str, dict[str, Any]]]] = {}
        for name, b in labels.items():
            b.start_platform()
        for name, b in labels.items():
            b.ready_session("compare")
            url = f"{b.base}/sessions/compare/messages/send-text"

            def send(http: requests.Session, i: int, n: int, url: str = url) -> None:
                reply = http.post(url, json={"chatId": "15551230009", "text": f"c{i} n{n}"}, timeout=30)
                if reply.status_code != 201:
                    raise RuntimeError(reply.status_code, reply.text[:200])

            calls[name] = (send, b.platform_pids(), b.api_session)
            created = b.call("POST", "/sessions", json={"name": "cmphist"})
            assert created.status_code == 201, created.text
            insert_messages(b, created.json()["id"], size)
            path = "/sessions/cmphist/messages"
            mid = b.call("GET", path, params={"limit": 1, "offset": size // 2}).json()["messages"][0]["id"]
            paths[name] = {"newest": (path, {"limit": 50}), "deep_after": (path, {"limit": 50, "after": mid})}
        for c in levels:
            for name, row in interleaved(calls, c, seconds).items():
                out["send_text"][name].append(row)
        times: dict[tuple[str, str], list[float]] = {(n, c): [] for n in labels for c in ("newest", "deep_after")}
        for rep in range(reps):
            for case in ("newest", "deep_after"):
                for name in (list(labels) if rep % 2 == 0 else list(reversed(labels))):
                    path, params = paths[name][case]
                    t0 = time.perf_counter()
                    reply = labels[name].call("GET", path, params=params)
                    times[(name, case)].append((time.perf_counter() - t0) * 1000)
                    assert reply.status_code == 200 and len(reply.json()["messages"]) == 50
        out["history"] = {name: {case: {"n": reps, "p50_ms": round(percentile(times[(name, case)], 0.5), 2),
                                        "p95_ms": round(percentile(times[(name, case)], 0.95), 2)}
                                 for case in ("newest", "deep_after")} for name in labels}
        out["load_avg"] = [round(x, 2) for x in os.getloadavg()]
    finally:
        for b in reversed(list(labels.values())):
            b.stop()
            shutil.rmtree(b.work, ignore_errors=True)
        for process, _ in servers:
            process.terminate()
            process.wait(30)
    return out


def many_sessions(b: Bench, count: int, seconds: float) -> dict[str, Any]:
    names = [f"multi{i:02d}" for i in range(count)]
    # Start them all, then scan them all: faster than one by one.
    for name in names:
        assert b.call("POST", "/sessions", json={"name": name}).status_code == 201
        assert b.call("POST", f"/sessions/{name}/start").status_code == 200
    ids = {}
    for name in names:
        try:
            wait(lambda: b.call("GET", f"/sessions/{name}").json()["status"] == "qr_ready", 60,
                 f"{name} qr_ready")
        except TimeoutError:
            raise TimeoutError(f"{name}: {b.call('GET', f'/sessions/{name}').json()}") from None
        b.call("POST", f"/sessions/{name}/mock/scan")
    for name in names:
        ids[name] = wait(lambda: (s := b.call("GET", f"/sessions/{name}").json())["status"]
                         == "ready" and s["id"], 120, f"{name} ready")
    sent: dict[str, list[str]] = {name: [] for name in names}

    def send(http: requests.Session, i: int, n: int) -> None:
        name = names[i]
        reply = http.post(f"{b.base}/sessions/{name}/messages/send-text",
                          json={"chatId": "15551230009", "text": f"{name} {n:06d}"}, timeout=30)
        if reply.status_code != 201:
            raise RuntimeError(reply.status_code, reply.text[:200])
        sent[name].append(reply.json()["messageId"])

    result = public(load(send, count, seconds, b.platform_pids(), b.api_session))
    time.sleep(1)
    in_order = 0
    problems = []
    for name in names:
        path = b.work / "sessions" / ids[name] / "sent.jsonl"
        recorded = [json.loads(line)["messageId"] for line in path.read_text().splitlines() if line]
        # Each client sends one after another, so the engine must see them in that order.
        if recorded == sent[name][:len(recorded)] and len(recorded) >= len(sent[name]):
            in_order += 1
        else:
            problems.append(name)
    result.update(sessions=count, sessions_in_order=in_order, out_of_order=problems[:5])
    return result


# -- report ----------------------------------------------------------------------
def markdown(r: dict[str, Any]) -> str:
    m = r["machine"]
    lines = [f"OpenWA benchmarks ({'quick' if r['quick'] else 'full'} run, {r['finished']})",
             "",
             f"Machine: {m['cpus']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB RAM, "
             f"{m['system']}, Python {m['python']}; API: gunicorn gthread "
             f"{r['api_workers']} workers x {r['api_threads']} threads; platform on Redis + "
             "PostgreSQL with the mock engine; client = threads + requests on the same machine; "
             f"load average at start {m['load_avg_at_start']} (other work on the machine).",
             ""]
    s = r.get("send_path")
    if s:
        lines += ["### Send path (send-text) beside its limits", "",
                  "| what | clients | req/s | p50 ms | p95 ms | p99 ms | errors | client CPU | server CPU | load avg |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        for name, label in (("send_text", "send-text"), ("bare_celery", "bare Celery round trip"),
                            ("bare_flask", "bare Flask JSON"),
                            ("bare_send", "bare send (the floor: HTTP, insert, Celery, update)")):
            for row in s[name]:
                lines.append(f"| {label} | {row['clients']} | {row['per_s']} | {row['p50_ms']} | "
                             f"{row['p95_ms']} | {row['p99_ms']} | {row['errors']} | "
                             f"{row['client_cpu_cores']} | {row['server_cpu_cores']} | "
                             f"{row.get('load_avg', '')} |")
        lines += ["", "CPU in cores (1.0 = one core busy). Each level's four rows are measured "
                  "interleaved (4 slices each, in turn); load avg = 1/5/15 min after the level.", "",
                  "| clients | send / bare Celery (req/s) | send / bare Flask (req/s) | send p50 / bare Celery p50 "
                  "| floor / bare Celery (req/s) | floor p50 / bare Celery p50 | send / floor (req/s) "
                  "| send p50 / floor p50 |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for c, ratio in s["ratios"].items():
            lines.append(f"| {c} | {ratio['send_vs_celery']:.0%} | {ratio['send_vs_flask']:.0%} | "
                         f"{ratio['p50_vs_celery']}x | {ratio['floor_vs_celery']:.0%} | "
                         f"{ratio['floor_p50_vs_celery']}x | {ratio['send_vs_floor']:.0%} | "
                         f"{ratio['p50_vs_floor']}x |")
        lines += ["", "The floor (scripts/bench/bare_send.py) is a send with the durability "
                  "contract and none of the product's work: a committed insert before the "
                  "enqueue, the Celery round trip to a solo worker that commits `sent` before it "
                  "replies, the reply on a list; what send-text costs above it is the product's.", ""]
    dc = r.get("compare")
    if dc:
        names = list(dc["send_text"])
        lines += ["### This checkout beside earlier commits, interleaved (issue 15 item 9, issue 18)", "",
                  "| what | " + " | ".join(names) + " | " + " | ".join(f"now / {n}" for n in names[1:]) + " |",
                  "|---|" + "---:|" * (2 * len(names) - 1)]

        def row_of(label: str, values: list[float], higher_better: bool) -> str:
            now = values[0]
            return (f"| {label} | " + " | ".join(str(v) for v in values) + " | "
                    + " | ".join(f"{now / max(v, 1e-9):.2f}x" for v in values[1:]) + " |")

        for i, row in enumerate(dc["send_text"][names[0]]):
            c = row["clients"]
            lines.append(row_of(f"send-text {c} client(s) req/s", [dc["send_text"][n][i]["per_s"] for n in names], True))
            lines.append(row_of(f"send-text {c} client(s) p50 ms", [dc["send_text"][n][i]["p50_ms"] for n in names], False))
        for case in ("newest", "deep_after"):
            for q in ("p50_ms", "p95_ms"):
                lines.append(row_of(f"history {case} at {dc['size']:,} {q.replace('_ms', '')} ms",
                                    [dc["history"][n][case][q] for n in names], False))
        lines += ["", "All platforms up at once, each on its own database and its own private "
                  f"redis-server; load avg after: {dc['load_avg']}. Each older commit differs from "
                  "this checkout by more than the one change it is named after.", ""]
    ib = r.get("inbound_path")
    if ib:
        bare = ib["bare_post_loop"]
        lines += ["### Inbound path (mock inbox → stored → webhook at a local receiver)", "",
                  "| what | offered /s | events/s | p50 ms | p95 ms | p99 ms | client CPU | server CPU |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|",
                  f"| message.received, {ib['sessions']} sessions | {ib['offered_per_s']} | "
                  f"{ib['events_per_s']} | {ib['p50_ms']} | {ib['p95_ms']} | {ib['p99_ms']} | "
                  f"{ib['client_cpu_cores']} | {ib['server_cpu_cores']} |",
                  f"| bare POST loop to the receiver (1 client) | – | {bare['per_s']} | "
                  f"{bare['p50_ms']} | {bare['p95_ms']} | {bare['p99_ms']} | "
                  f"{bare['client_cpu_cores']} | – |",
                  "", f"{ib['received']} of {ib['injected']} messages received, "
                  f"{ib['duplicates']} duplicates.", ""]
    rp = r.get("read_path")
    if rp:
        lines += ["### Read path (history, limit 50)", "",
                  "| stored messages | newest p50 / p95 ms | deep (after) p50 / p95 ms | "
                  "deep (offset n/2) p50 / p95 ms |", "|---:|---:|---:|---:|"]
        for key, row in rp.items():
            if key.startswith("ratio") or key == "load_avg":
                continue
            lines.append(f"| {row['rows']:,} | " + " | ".join(
                f"{row[c]['p50_ms']} / {row[c]['p95_ms']}"
                for c in ("newest", "deep_after", "deep_offset")) + " |")
        if "ratio_big_vs_small_p95" in rp:
            q = rp["ratio_big_vs_small_p95"]
            lines.append(f"| p95 ratio | {q['newest']}x | {q['deep_after']}x | {q['deep_offset']}x |")
        lines.append("")
    ms = r.get("many_sessions")
    if ms:
        lines += ["### Many sessions", "",
                  f"{ms['sessions']} mock sessions, one client each sending back to back: "
                  f"**{ms['per_s']} sends/s** aggregate, p50 {ms['p50_ms']} ms, p95 {ms['p95_ms']} ms, "
                  f"errors {ms['errors']}; order kept in {ms['sessions_in_order']}/{ms['sessions']} "
                  f"sessions (sent.jsonl); client CPU {ms['client_cpu_cores']}, server CPU "
                  f"{ms['server_cpu_cores']} cores.", ""]
    mem = r.get("memory")
    if mem:
        lines += ["### Memory (RSS MiB)", "", "| process | idle | peak under load |",
                  "|---|---:|---:|"]
        peak = {row["process"]: row["rss_mib"] for row in mem["loaded"]}
        for row in mem["idle"]:
            lines.append(f"| {row['process']} | {row['rss_mib']} | {peak.get(row['process'], '')} |")
        lines.append(f"| **total** | {round(sum(x['rss_mib'] for x in mem['idle']), 1)} | "
                     f"{round(sum(x['rss_mib'] for x in mem['loaded']), 1)} |")
        lines.append("")
    if r.get("media"):  # -- media (issue 12)
        import media as media_bench
        lines += media_bench.markdown(r["media"])
    t = r.get("targets")
    if t:
        lines += ["### Targets", "", "| target | measured | met |", "|---|---:|---|"]
        for row in t:
            lines.append(f"| {row['target']} | {row['measured']} | {'yes' if row['met'] else 'NO'} |")
        lines.append("")
    lines.append(f"Total run time: {r['elapsed_s']} s")
    return "\n".join(lines) + "\n"


def _before_issue18(r: dict[str, Any]) -> dict[int, dict[str, float]]:
    """Per client level, the pre-issue-18 commit's figure over this checkout's, from the
    interleaved comparison: the factor that turns a ratio of now into the ratio of before."""
    dc = r.get("compare")
    label = BASELINES[0][0]
    if not dc or label not in dc["send_text"]:
        return {}
    out = {}
    for now, was in zip(next(iter(dc["send_text"].values())), dc["send_text"][label]):
        out[now["clients"]] = {"per_s": was["per_s"] / max(now["per_s"], 1e-9),
                               "p50_ms": was["p50_ms"] / max(now["p50_ms"], 1e-9)}
    return out


def targets(r: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    s = r.get("send_path")
    before = _before_issue18(r)
    if s and "8" in s["ratios"]:
        ratio = s["ratios"]["8"]["send_vs_celery"]
        was = f" ({BASELINES[0][1]}: {ratio * before[8]['per_s']:.0%}, derived)" if 8 in before else ""
        out.append({"target": "send path >= 50% of bare Celery round trip at 8 clients",
                    "measured": f"{ratio:.0%}{was}", "met": ratio >= 0.5})
    if s and "1" in s["ratios"]:
        p50 = s["ratios"]["1"]["p50_vs_celery"]
        was = f" ({BASELINES[0][1]}: {p50 * before[1]['p50_ms']:.2f}x, derived)" if 1 in before else ""
        floor = s["ratios"]["1"]["floor_p50_vs_celery"]
        out.append({"target": "send-text p50 at 1 client within 3x of the bare Celery round trip",
                    "measured": f"{p50}x{was}; the floor alone: {floor}x", "met": p50 <= 3.0})
    ib = r.get("inbound_path")
    if ib:
        out.append({"target": f"inbound-to-webhook p95 < 250 ms at {ib['offered_per_s']:g} messages/s",
                    "measured": f"{ib['p95_ms']} ms ({ib['events_per_s']} events/s, "
                                f"{ib['received']}/{ib['injected']} received)",
                    "met": ib["p95_ms"] < 250 and ib["received"] == ib["injected"]})
    rp = r.get("read_path")
    if rp and "ratio_big_vs_small_p95" in rp:
        # The deep page is the keyset cursor (`after`), which the API offers for paging;
        # `offset` walks every skipped row in any database and is reported, not targeted.
        for case in ("newest", "deep_after"):
            q = rp["ratio_big_vs_small_p95"][case]
            out.append({"target": f"history {case} p95 at 1M within 1.5x of 10k",
                        "measured": f"{q}x", "met": q <= 1.5})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short run (CI): < 2 minutes")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results")
    parser.add_argument("--seconds", type=float, help="measuring time per load level")
    parser.add_argument("--sessions", type=int, help="sessions in the many-sessions run")
    parser.add_argument("--inbound-rate", type=float, default=100.0,
                        help="messages/s offered on the inbound path")
    parser.add_argument("--compare", action="store_true",
                        help="with --quick: also run the comparison with earlier commits")
    parser.add_argument("--skip", default="", help="comma list: send,compare,inbound,read,many,media")
    parser.add_argument("--baseline", action="append", metavar="COMMIT",
                        help="compare with this commit instead of BASELINES (repeatable), "
                             "e.g. --baseline main --skip inbound,read,many,media")
    args = parser.parse_args()
    if args.baseline:
        global BASELINES
        BASELINES = [(f"baseline ({commit})", commit, False) for commit in args.baseline]
    seconds = args.seconds or (2.0 if args.quick else 8.0)
    sizes = [10_000] if args.quick else [10_000, 1_000_000]
    reps = 20 if args.quick else 300
    n_sessions = args.sessions or (5 if args.quick else 20)
    skip = set(filter(None, args.skip.split(",")))

    t_start = time.monotonic()
    b = Bench(args)
    mem_total = psutil.virtual_memory().total
    cpu_model = next((line.split(":", 1)[1].strip() for line in
                      Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("model name")), platform.processor())
    report: dict[str, Any] = {
        "quick": args.quick, "seconds_per_level": seconds,
        "machine": {"cpus": psutil.cpu_count(), "cpu_model": cpu_model,
                    "memory_gib": round(mem_total / 2**30, 1),
                    "system": f"{platform.system()} {platform.release()}",
                    "python": platform.python_version(),
                    "load_avg_at_start": [round(x, 2) for x in os.getloadavg()]},
        "api_workers": b.api_workers, "api_threads": b.api_threads,
        "redis": REDIS_URL,
    }
    ok = False
    try:
        b.start_platform()
        time.sleep(3)  # settle before reading idle memory
        named = {r: b.procs[r].pid for r in ("api", "host", "worker", "beat")}
        report["memory"] = {"idle": rss(named)}
        with PeakRss(named) as peak:
            if "send" not in skip:
                report["send_path"] = send_path(b, [1, 8, 32], seconds)
            # The comparison starts two more platforms: part of the full run, asked for in a quick one.
            if "compare" not in skip and (args.compare or not args.quick):
                report["compare"] = compare_commits(b, args, [1, 8], seconds, min(reps, 100), 10_000)
            if "inbound" not in skip:
                report["inbound_path"] = inbound_path(b, args.inbound_rate,
                                                      3.0 if args.quick else 10.0, 4)
            if "many" not in skip:
                report["many_sessions"] = many_sessions(b, n_sessions, seconds)
        report["memory"]["loaded"] = peak.rows()
        if "media" not in skip:  # -- media (issue 12): its own peaks, after the others
            import media as media_bench
            report["media"] = media_bench.run(b, load, PeakRss, seconds, args.quick)
        if "read" not in skip:
            report["read_path"] = read_path(b, sizes, reps)
        ok = True
    finally:
        b.stop()
        if ok:
            shutil.rmtree(b.work, ignore_errors=True)
        else:
            print(f"failed: process logs kept in {b.work}", file=sys.stderr)
    report["targets"] = targets(report)
    report["elapsed_s"] = round(time.monotonic() - t_start, 1)
    report["finished"] = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.json").write_text(json.dumps(report, indent=2))
    text = markdown(report)
    (args.out / "latest.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
