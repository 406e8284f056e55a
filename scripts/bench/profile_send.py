"""Where a send's time goes: py-spy samples the API workers and the session host while
clients send text back to back on the real platform (the `make bench` set-up).

    python scripts/bench/profile_send.py [--clients 8] [--seconds 15] [--out bench-results]
                                         [--gil | --syscalls | --cpu]

Prints, per process, the share of samples spent inside each layer of the send path (by
the innermost matching frame of each sample) and the top self-time functions; the raw
collapsed stacks are kept in <out>/profile-<role>.txt (flame-graph input).

``--syscalls`` counts instead of sampling: ``strace -f -c`` on each process for the same
window, and prints its socket and file writes and reads per send answered in the window
(every Redis or PostgreSQL round trip is a write and at least one read). Needs strace.

``--cpu`` measures instead of sampling: the CPU time (user + system) each process spent
in the window, per send answered — the API (and its workers), the session host, the
webhook worker, beat, every PostgreSQL and redis-server process of the machine (run it on
an otherwise idle machine) and this script's own clients.
"""
from __future__ import annotations

import argparse
import collections
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import run  # noqa: E402

#: (label, substring of a frame "function (file)"): the first one found walking from the
#: innermost frame outwards names the sample's layer.
LAYERS = [
    ("engine (mock send)", "engines/mock"),
    ("psycopg2 / database wait", "psycopg2"),
    ("SQLAlchemy", "sqlalchemy/"),
    ("Redis client", "redis/"),
    ("kombu (broker)", "kombu/"),
    ("celery", "celery/"),
    ("werkzeug / flask / smorest", "werkzeug/"),
    ("werkzeug / flask / smorest", "flask"),
    ("marshmallow / webargs", "marshmallow/"),
    ("marshmallow / webargs", "webargs/"),
    ("gunicorn", "gunicorn/"),
    ("openwa app", "/app/"),
    ("openwa tasks", "/tasks/"),
]


def layer_of(stack: list[str]) -> str:
    for frame in reversed(stack):
        for label, needle in LAYERS:
            if needle in frame:
                return label
    return "other (interpreter, threads, idle)"


def summarize(path: Path, top: int = 12) -> str:
    layers: collections.Counter[str] = collections.Counter()
    selfs: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack_text, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        stack = stack_text.split(";")
        total += count
        layers[layer_of(stack)] += count
        selfs[stack[-1]] += count
    lines = [f"{path.name}: {total} samples (active threads only)", "",
             "| layer | share |", "|---|---:|"]
    lines += [f"| {name} | {n / max(total, 1):.0%} |" for name, n in layers.most_common()]
    lines += ["", "| top self-time frame | share |", "|---|---:|"]
    lines += [f"| `{name[:110]}` | {n / max(total, 1):.1%} |" for name, n in selfs.most_common(top)]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--out", type=Path, default=run.ROOT / "bench-results")
    parser.add_argument("--gil", action="store_true",
                        help="sample only the thread holding the GIL (Python's CPU time, "
                             "without the waits on sockets that the default samples include)")
    parser.add_argument("--syscalls", action="store_true",
                        help="count system calls per send with strace instead of py-spy")
    parser.add_argument("--cpu", action="store_true",
                        help="CPU time per send of each process instead of py-spy")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    b = run.Bench(argparse.Namespace(quick=True))
    try:
        b.start_platform()
        b.ready_session("prof")
        url = f"{b.base}/sessions/prof/messages/send-text"
        stop, measuring = threading.Event(), threading.Event()
        answered = [0] * args.clients

        def client(i: int) -> None:
            http = b.api_session()
            n = 0
            while not stop.is_set():
                try:
                    reply = http.post(url, json={"chatId": "15551230009", "text": f"c{i} n{n}"},
                                      timeout=30)
                    if measuring.is_set() and reply.status_code in (201, 202):
                        answered[i] += 1
                except OSError:  # requests' errors; the platform stopping under a send
                    time.sleep(0.1)
                n += 1

        threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(args.clients)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        if args.syscalls:
            counts = count_syscalls(b, args, measuring)
        elif args.cpu:
            seconds_of = cpu_per_process(b, args, measuring)
        else:
            spies = {}
            for role in ("api", "host"):
                out = args.out / f"profile-{role}.txt"
                spies[role] = (out, subprocess.Popen(
                    [str(Path(sys.executable).parent / "py-spy"), "record", "--format", "raw",
                     "--rate", "250", "--duration", str(int(args.seconds)), "--subprocesses",
                     "--nonblocking", *(["--gil"] if args.gil else []), "-o", str(out),
                     "--pid", str(b.procs[role].pid)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            for out, spy in spies.values():
                spy.wait(args.seconds + 60)
        stop.set()
        for t in threads:
            t.join(30)
    finally:
        b.stop()
    if args.cpu:
        sends = sum(answered)
        total = sum(seconds_of.values())
        print(f"send-text, {args.clients} clients, {args.seconds:g} s: {sends} sends "
              f"({sends / args.seconds:.1f}/s)\n")
        print("| process | cores | CPU ms per send |\n|---|---:|---:|")
        for role, spent in [*seconds_of.items(), ("total", total)]:
            print(f"| {role} | {spent / args.seconds:.2f} | {1000 * spent / max(sends, 1):.3f} |")
        return
    if args.syscalls:
        sends = sum(answered)
        print(f"send-text, {args.clients} clients, {args.seconds:g} s under strace: {sends} sends\n")
        print("| process | system call | calls | per send |\n|---|---|---:|---:|")
        for role, calls in counts.items():
            for name, number in sorted(calls.items()):
                print(f"| {role} | {name} | {number} | {number / max(sends, 1):.2f} |")
        return
    print(f"send-text, {args.clients} clients, {args.seconds:g} s, py-spy at 250 Hz\n")
    for role, (out, _) in spies.items():
        print(f"#### {role}\n")
        print(summarize(out) if out.exists() else "(no profile)\n")


def cpu_per_process(b: "run.Bench", args: argparse.Namespace,
                    measuring: threading.Event) -> dict[str, float]:
    """CPU seconds (user + system) each process spent while ``measuring`` was set."""
    groups: dict[str, list[psutil.Process]] = {}
    for role in ("api", "host", "worker", "beat"):
        root = psutil.Process(b.procs[role].pid)
        groups[role] = [root, *root.children(recursive=True)]
    for role, name in (("PostgreSQL", "postgres"), ("Redis", "redis-server")):
        groups[role] = [proc for proc in psutil.process_iter(["name"])
                        if (proc.info["name"] or "").startswith(name)]
    groups["clients (this script)"] = [psutil.Process()]

    def spent() -> dict[tuple[str, int], float]:
        out = {}
        for role, procs in groups.items():
            for proc in procs:
                try:
                    times = proc.cpu_times()
                except psutil.NoSuchProcess:  # a PostgreSQL backend that ended
                    continue
                out[role, proc.pid] = times.user + times.system
        return out

    before = spent()
    measuring.set()
    time.sleep(args.seconds)
    measuring.clear()
    after = spent()
    totals = dict.fromkeys(groups, 0.0)
    for key in before.keys() & after.keys():  # the processes alive at both ends
        totals[key[0]] += after[key] - before[key]
    return totals


#: What --syscalls counts: a round trip to Redis or PostgreSQL is a write and a read.
SYSCALLS = ("sendto", "sendmsg", "write", "recvfrom", "read")


def count_syscalls(b: "run.Bench", args: argparse.Namespace,
                   measuring: threading.Event) -> dict[str, dict[str, int]]:
    """strace -f -c on the API and the host while ``measuring`` is set: calls per name."""
    tracers = {}
    for role in ("api", "host"):
        out = args.out / f"syscalls-{role}.txt"
        root = psutil.Process(b.procs[role].pid)  # and its children: the API's workers
        pids = [str(proc.pid) for proc in (root, *root.children(recursive=True))]
        tracers[role] = (out, subprocess.Popen(
            ["strace", "-f", "-c", "-e", "trace=" + ",".join(SYSCALLS), "-o", str(out),
             *[arg for pid in pids for arg in ("-p", pid)]],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    time.sleep(1.0)  # attached to every thread
    measuring.set()
    time.sleep(args.seconds)
    measuring.clear()
    counts: dict[str, dict[str, int]] = {}
    for role, (out, tracer) in tracers.items():
        tracer.send_signal(signal.SIGINT)
        tracer.wait(30)
        counts[role] = {}
        for line in out.read_text().splitlines():
            fields = line.split()
            if len(fields) >= 5 and fields[-1] in SYSCALLS and fields[3].isdigit():
                counts[role][fields[-1]] = int(fields[3])
    return counts


if __name__ == "__main__":
    main()
