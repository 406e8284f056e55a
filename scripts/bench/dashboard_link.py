"""Time from `openwa run` (what `make run` starts) printing "ready" to a linked mock session,
done through the dashboard alone in headless Chromium: log in with the printed key, create a
session, start it, wait for its QR on the page, let the phone scan it (the mock's scan route,
at once, or the mock's own auto-scan with --auto-scan), and wait until the page shows
`ready` without a reload. Also the dashboard's first-load weight.

    python scripts/bench/dashboard_link.py [--auto-scan]
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from app.embedded_redis import free_port  # noqa: E402
from tests.realtime.test_dashboard import Page, _browser  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--auto-scan", action="store_true",
                        help="wait for MOCK_AUTO_SCAN_SECONDS (5 s) instead of scanning at once")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="openwa-bench-dash-") as tmp:
        port = free_port()
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("DATABASE_", "REDIS_", "CI", "API_KEY_MASTER"))}
        env.update(PORT=str(port), FLOWER_PORT=str(free_port()), LOG_FORMAT="text",
                   DATA_PATH=str(Path(tmp) / "data"), METRICS_PORT=str(free_port()))
        log_path = Path(tmp) / "run.log"
        with open(log_path, "wb") as log:
            run = subprocess.Popen([sys.executable, "-m", "app", "run"], cwd=ROOT, env=env,
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        driver = None
        try:
            started = time.monotonic()
            while "OpenWA is ready" not in log_path.read_text(errors="replace"):
                if run.poll() is not None or time.monotonic() - started > 300:
                    raise SystemExit(log_path.read_text(errors="replace")[-3000:])
                time.sleep(0.05)
            ready_at = time.monotonic()
            banner = log_path.read_text(errors="replace")
            key = re.search(r"API key:\s+(owa_k1_[0-9a-f]{64})", banner).group(1)  # type: ignore[union-attr]
            root = f"http://127.0.0.1:{port}"
            driver = _browser()
            page = Page(driver, root)
            page.login(key)
            page.go("sessions")
            page.find("#new-session").send_keys("linked")
            page.click("#create-session button")
            page.click('tr[data-session="linked"] [data-action="Start"]')
            page.wait(lambda: (page.find("#qr-image").get_attribute("src") or "").startswith("data:"), 60)
            qr_at = time.monotonic()
            if not args.auto_scan:
                requests.post(f"{root}/api/sessions/linked/mock/scan", headers={"X-API-Key": key},
                              timeout=10).raise_for_status()
            page.wait(lambda: page.text('tr[data-session="linked"] .status') == "ready", 60)
            linked_at = time.monotonic()
            print(f"openwa run -> ready: {ready_at - started:.1f} s")
            print(f"ready -> QR on the dashboard: {qr_at - ready_at:.1f} s")
            print(f"ready -> linked session shown ready on the dashboard: {linked_at - ready_at:.1f} s"
                  f" ({'auto-scan' if args.auto_scan else 'scanned at once'})")
        finally:
            if driver is not None:
                driver.quit()
            if run.poll() is None:
                os.killpg(run.pid, signal.SIGTERM)
                try:
                    run.wait(60)
                except subprocess.TimeoutExpired:
                    os.killpg(run.pid, signal.SIGKILL)


if __name__ == "__main__":
    main()
