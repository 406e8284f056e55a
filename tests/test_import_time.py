"""Nothing happens at import time: hooks are installed by the app factory (issue 15, item 3)."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, text=True,
                          capture_output=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "DATA_PATH": str(tmp_path / "data"),
                               "LOG_FORMAT": "text"})


def test_importing_the_key_services_installs_no_exit_or_fork_hook(tmp_path: Path) -> None:
    result = run("""
        import atexit
        import app.models, app.extensions, flask, sqlalchemy  # their own hooks, if any
        before = atexit._ncallbacks()
        from app.services import api_keys, key_auth, key_usage
        assert atexit._ncallbacks() == before, "an import registered an atexit hook"
        assert key_usage._installed is False
        from app import create_app
        create_app()
        assert key_usage._installed is True
        installed = atexit._ncallbacks()
        assert installed > before
        key_usage.install()  # once per process, however many apps
        assert atexit._ncallbacks() == installed
        print("ok")
    """, tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_a_forked_child_starts_with_no_pending_usage(tmp_path: Path) -> None:
    result = run("""
        import os
        from datetime import datetime, timezone
        from app import create_app
        from app.services import key_usage
        app = create_app()
        with app.app_context():
            meter = key_usage.meter()
            meter.note("k1", datetime.now(timezone.utc))
        pid = os.fork()
        if pid == 0:
            os._exit(0 if meter.pending == {} and meter.timer is None else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, "the child kept the parent's counts"
        assert list(meter.pending) == ["k1"]
        meter.pending.clear()
        print("ok")
    """, tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_importing_the_webhook_and_live_services_adds_no_session_listener_the_factory_does(tmp_path: Path) -> None:
    result = run("""
        from sqlalchemy import event
        from sqlalchemy.orm import Session
        from app import live
        from app.services import webhooks
        from app.services.webhooks import outbox
        assert not event.contains(Session, "after_transaction_end", outbox._forget_hooks)
        assert not event.contains(Session, "after_commit", live._after_commit)
        from app import create_app
        create_app()
        assert event.contains(Session, "after_transaction_end", outbox._forget_hooks)
        assert event.contains(Session, "after_commit", live._after_commit)
        create_app()  # a second app adds no second listener
        outbox.install()
        print("ok")
    """, tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
