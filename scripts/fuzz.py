"""`make fuzz`: schemathesis over the whole OpenAPI document against a running platform.

Starts the real processes (gunicorn API, session host, worker) on free loopback ports with
a throwaway SQLite database and a Redis DB index of their own, runs schemathesis with every
check on, a fixed seed and a fixed budget, prints the figures (operations, requests,
failures by check) and exits non-zero on any failure. Loopback only: the documented
webhook URLs are refused by the SSRF guard before any connection.

Environment: FUZZ_SEED (default 16), FUZZ_MAX_EXAMPLES (per operation, default 40: about 4 minutes),
FUZZ_REDIS_URL (default <TEST_REDIS_URL or redis://127.0.0.1:6379>/<TEST_REDIS_DB or 9>),
FUZZ_REPORT_DIR (default ./fuzz-report), FUZZ_PHASES (default examples,coverage,fuzzing).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from tests.databases import REDIS_URL  # noqa: E402
from tests.integration.conftest import wait_for  # noqa: E402
from tests.live import LivePlatform, base_env  # noqa: E402


def main() -> int:
    seed = os.environ.get("FUZZ_SEED", "16")
    examples = os.environ.get("FUZZ_MAX_EXAMPLES", "40")
    phases = os.environ.get("FUZZ_PHASES", "examples,coverage,fuzzing")
    redis_url = os.environ.get("FUZZ_REDIS_URL") or \
        f"{REDIS_URL}/{os.environ.get('TEST_REDIS_DB', '9')}"
    report_dir = Path(os.environ.get("FUZZ_REPORT_DIR", ROOT / "fuzz-report")).resolve()
    report_dir.mkdir(parents=True, exist_ok=True)
    redis.Redis.from_url(redis_url).flushdb()
    with tempfile.TemporaryDirectory(prefix="openwa-fuzz-") as tmp:
        tmp_path = Path(tmp)
        env = base_env(tmp_path, redis_url, {"DATABASE_TYPE": "sqlite",
                                             "DATABASE_SQLITE_PATH": str(tmp_path / "openwa.db")})
        # fuzz_site/sitecustomize.py: no DNS and no connection beyond loopback, in every process
        site = os.pathsep.join([str(ROOT / "scripts" / "fuzz_site"), str(ROOT / "scripts")])
        env.update({"MAX_CREATED_SESSIONS": "20", "LOG_LEVEL": "warning",
                    "WEBHOOK_RETRY_COUNT": "0", "PYTHONPATH": site})
        platform = LivePlatform(env, tmp_path)
        try:
            platform.start_api()
            platform.start("host", SESSION_HOST_NAME="fuzz-host@local")
            platform.start("worker")
            platform.start("beat")
            wait_for(lambda: platform.request("GET", "/health/detailed")[1]["checks"]["workers"]
                     ["liveHosts"], 60, 0.2, "the session host")
            config = write_config(platform, tmp_path)
            started = time.monotonic()
            report = report_dir / "schemathesis.json"
            command = [
                str(Path(sys.executable).parent / "schemathesis"), "--config-file", str(config),
                "run", f"{platform.base}/openapi.json",
                "--checks", "all", "--seed", seed, "--max-examples", examples,
                "--phases", phases, "--workers", "1", "--no-shrink",
                "--header", f"X-API-Key: {platform.key}",
                "--request-timeout", "30", "--suppress-health-check", "all",
                "--report", "json", "--report-json-path", str(report),
                "--report-junit-path", str(report_dir / "junit.xml"),
                "--report", "junit", "--output-truncate", "true",
            ]
            result = subprocess.run(command, cwd=ROOT, env={
                **os.environ, "NO_COLOR": "1", "PYTHONPATH": site,
                "SCHEMATHESIS_HOOKS": "fuzz_hooks"})
            elapsed = time.monotonic() - started
            summarise(report, elapsed)
            return result.returncode
        finally:
            platform.stop_all()
            logs = sorted(tmp_path.glob("*.log"))
            if logs:
                with open(report_dir / "platform.log", "w") as out:
                    for path in logs:
                        out.write(f"==> {path.name} <==\n{path.read_text(errors='replace')}\n")


def write_config(platform: LivePlatform, tmp_path: Path) -> Path:
    """Real resources for the path parameters, so operations reach their logic instead of
    404: a ready session, disposable keys (so rotating or revoking one never locks the
    fuzzer out), webhooks (on an address literal: no DNS) and a sent message. Each DELETE
    gets resources of its own, so the other operations keep theirs."""
    platform.create_ready_session("fuzz")
    assert platform.request("POST", "/sessions", json={"name": "fuzz-doomed"})[0] == 201

    def key(name: str) -> str:
        status, body = platform.request("POST", "/auth/api-keys",
                                        json={"name": name, "role": "viewer"})
        assert status == 201, body
        return str(body["id"])

    def webhook() -> str:
        status, body = platform.request("POST", "/sessions/fuzz/webhooks",
                                        json={"url": "https://93.184.215.14/hook"})
        assert status == 201, body
        return str(body["id"])

    status, sent = platform.request("POST", "/sessions/fuzz/messages/send-text",
                                    json={"chatId": "15551234567", "text": "fuzz"})
    assert status in (201, 202), sent
    status, history = platform.request("GET", "/sessions/fuzz/messages")
    message_id = history["messages"][0]["id"] if history.get("messages") else "none"
    values = {"sid": "fuzz", "key_id": key("fuzz-target"), "webhook_id": webhook(),
              "message_id": message_id, "number": "15551234567"}
    # -- bulk sends (issue 13.5): a batch that stays open (an hour between its two items),
    # so a cancel answers 200 (then 200 again), never 409 for a batch that ended.
    status, batch = platform.request("POST", "/sessions/fuzz/messages/send-bulk", json={
        "messages": [{"chatId": "15551234567", "type": "text", "content": {"text": "fuzz"}}] * 2,
        "options": {"delayBetweenMessages": 3_600_000}})
    assert status == 202, batch
    values["batch_id"] = batch["batchId"]
    lines = ['hooks = "fuzz_hooks"', "", "[parameters]"]
    lines += [f'"path.{name}" = "{value}"' for name, value in values.items()]
    own = {"DELETE /api/sessions/{sid}": {"sid": "fuzz-doomed"},
           "DELETE /api/auth/api-keys/{key_id}": {"key_id": key("fuzz-doomed")},
           "DELETE /api/sessions/{sid}/webhooks/{webhook_id}": {"webhook_id": webhook()}}
    for name, params in own.items():
        lines += ["", "[[operations]]", f'include-name = "{name}"', "[operations.parameters]"]
        lines += [f'"path.{param}" = "{value}"' for param, value in params.items()]
    # Statuses that hang on state the document cannot state: starting a running session
    # is 400 SESSION_RUNNING (api.md: "400 invalid input or precondition"), and a webhook
    # URL that is schema-valid may still be refused by the SSRF guard (here nothing resolves);
    # so may a media send's `url` (issue 12), checked the same way before it is queued.
    media_sends = [f"POST /api/sessions/{{sid}}/messages/send-{kind}"
                   for kind in ("image", "video", "audio", "document", "sticker")]
    for name in ("POST /api/sessions/{sid}/start", "POST /api/sessions/{sid}/webhooks",
                 "PUT /api/sessions/{sid}/webhooks/{webhook_id}", *media_sends):
        lines += ["", "[[operations]]", f'include-name = "{name}"',
                  "[operations.checks.positive_data_acceptance]",
                  'expected-statuses = ["2xx", "400", "401", "403", "404", "409", "429"]']
    path = tmp_path / "schemathesis.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def summarise(report: Path, elapsed: float) -> None:
    if not report.exists():
        print(f"fuzz: no report at {report}", flush=True)
        return
    data = json.loads(report.read_text())
    print(f"fuzz: {elapsed:.0f} s; report {report}", flush=True)
    print("fuzz: " + json.dumps({k: v for k, v in data.items() if not isinstance(v, (list, dict))}
                                or {}, default=str)[:2000], flush=True)
    print(f"fuzz: operations {data.get('operations')}; test cases {data.get('test_cases')}",
          flush=True)
    failures: Counter[str] = Counter()
    for item in data.get("failures") or []:
        failures[f"{item.get('code')} {item.get('title')}"] += int(item.get("count") or 1)
    print(f"fuzz: failures by check: {dict(failures) or 'none'}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
