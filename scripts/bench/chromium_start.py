"""How long starting Chromium takes with the selenium engine's own ``launch()``: wall time,
the CPU time the driver and browser processes had used when the session was created, and
the load average, for ``--starts`` starts on fresh profiles.

    python scripts/bench/chromium_start.py [--starts 20] [--allowed-hosts localhost] [-- extra flags]

``--allowed-hosts ""`` starts Chromium without resolver rules (it then looks up its update
and search hosts: run that only inside a network namespace of its own, e.g.
``unshare -rn sh -c 'ip link set lo up && python ...'``, so no query leaves the machine).
As root, pass ``-- --no-sandbox`` as the tests do.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from engines.selenium import browser  # noqa: E402
from engines.selenium.options import SeleniumOptions  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--starts", type=int, default=20)
    parser.add_argument("--allowed-hosts", default="localhost",
                        help="CHROMIUM_ALLOWED_HOSTS, comma-separated ('' = no resolver rules)")
    parser.add_argument("extra", nargs="*", help="more Chromium flags (after --)")
    args = parser.parse_args()
    options = SeleniumOptions(extra_args=list(args.extra), webdriver_manager=False,
                              allowed_hosts=[h for h in args.allowed_hosts.split(",") if h])
    walls, cpus = [], []
    for n in range(args.starts):
        profile = Path(tempfile.mkdtemp(prefix="openwa-chromium-start-"))
        started = time.perf_counter()
        running = browser.launch(options, profile, command_timeout=10.0)
        wall = time.perf_counter() - started
        cpu = 0.0
        for process in running.tree():
            try:
                times = process.cpu_times()
                cpu += times.user + times.system
            except Exception:  # noqa: BLE001 - a process that just left used no more
                pass
        running.kill()
        shutil.rmtree(profile, ignore_errors=True)
        walls.append(wall)
        cpus.append(cpu)
        print(f"start {n}: {wall:.2f} s, {cpu:.2f} s CPU, load {os.getloadavg()[0]:.1f}",
              flush=True)
    print(json.dumps({
        "starts": args.starts, "allowed_hosts": options.allowed_hosts, "extra": args.extra,
        "wall_s": {"median": round(statistics.median(walls), 2), "max": round(max(walls), 2),
                   "min": round(min(walls), 2), "over_5_s": sum(w > 5 for w in walls)},
        "cpu_s_median": round(statistics.median(cpus), 2),
        "load_average": [round(x, 1) for x in os.getloadavg()]}))


if __name__ == "__main__":
    main()
