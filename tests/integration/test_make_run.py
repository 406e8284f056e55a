"""`make run` in a scratch copy of the repository, then the README's curl walkthrough."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

from app.embedded_redis import free_port
from tests.integration.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


def scratch_copy(target: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                           check=True, capture_output=True).stdout.decode().split("\0")
    for name in filter(None, files):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def walkthrough() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Walkthrough", 1)[1]
    return re.search(r"```bash\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]


def test_make_run_starts_the_platform_and_the_readme_walkthrough_works(tmp_path):
    work = tmp_path / "openwa"
    scratch_copy(work)
    port, flower = free_port(), free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DATABASE_", "REDIS_", "VIRTUAL_ENV", "CI"))}
    env.update(PORT=str(port), FLOWER_PORT=str(flower), LOG_FORMAT="text")
    log = open(tmp_path / "make-run.log", "wb")
    started = time.monotonic()
    make = subprocess.Popen(["make", "run"], cwd=work, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}/api"
    try:
        def ready() -> bool:
            assert make.poll() is None, (tmp_path / "make-run.log").read_text()[-5000:]
            try:
                return requests.get(f"{base}/health/ready", timeout=1).status_code == 200
            except requests.RequestException:
                return False

        wait_for(ready, 600, 0.5, "make run to be ready")
        print(f"make run → ready in {time.monotonic() - started:.1f} s")
        key = (work / "data" / ".api-key").read_text().strip()
        banner = wait_for(lambda: re.search(r"OpenWA is ready in .*?Press Ctrl-C",
                                            (tmp_path / "make-run.log").read_text(), re.S),
                          30, 0.2, "the ready banner").group(0)
        assert f"API:      http://127.0.0.1:{port}/api" in banner
        assert f"API key:  {key}" in banner
        output = (tmp_path / "make-run.log").read_text()

        script = walkthrough().replace("http://127.0.0.1:2785/api", base)
        result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=work,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        out = result.stdout
        assert re.search(r'"status":\s*"initializing"', out), out
        assert re.search(r'"qr":\s*"2@', out), out
        assert re.search(r'"status":\s*"ready"', out), out
        assert re.search(r'"messageId":\s*"true_15550000000@c\.us_3EB0', out), out
        assert re.search(r'"body":\s*"Hello from OpenWA".*"direction":\s*"incoming"', out, re.S) \
            or re.search(r'"direction":\s*"incoming".*"body":\s*"Hello from OpenWA"', out, re.S), out
        assert "Traceback" not in output
    finally:
        os.killpg(make.pid, signal.SIGTERM)
        try:
            make.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(make.pid, signal.SIGKILL)
            raise AssertionError("make run did not stop within 60 s of SIGTERM")
        log.close()
    # Every process stopped: nothing answers on the API port any more.
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{base}/health", timeout=1)
    assert "OpenWA stopped" in (tmp_path / "make-run.log").read_text()
