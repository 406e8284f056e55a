"""`openwa backup`, `openwa backups list`, `openwa restore`, the cron wrappers and the task."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from app.cli import cli
from app.extensions import db
from app.models import Backup, Host, Session, utcnow
from tasks.backups import scheduled_backup
from tasks.base import set_flask_app
from tests.backups.conftest import Deployment
from tests.databases import env_for, head_revision
from tests.tooling import require_binary

REPO = Path(__file__).resolve().parents[2]


def invoke(deployment: Deployment, *args: str):  # type: ignore[no-untyped-def]
    return deployment.app.test_cli_runner().invoke(cli, list(args))


def test_backup_list_and_restore_commands(deployment: Deployment):
    deployment.seed(sessions=1, messages=5)
    deployment.make_profiles()
    rows = deployment.tables()

    result = invoke(deployment, "backup")
    assert result.exit_code == 0, result.output
    backup_id = result.stdout.split()[1]
    assert result.stdout.startswith(f"backup {backup_id} completed: ")
    # progress, one line per stage when not on a terminal
    for stage in ("database", "sessions", "store database", "store sessions"):
        assert f"  {stage} " in result.stderr

    listed = invoke(deployment, "backups", "list")
    assert listed.exit_code == 0, listed.output
    assert listed.stdout.splitlines()[0].split() == ["ID", "STATUS", "TRIGGER", "STARTED",
                                                     "(UTC)", "SIZE", "REVISION"]
    assert listed.stdout.splitlines()[1].split()[:3] == [backup_id, "completed", "manual"]
    as_json = json.loads(invoke(deployment, "backups", "list", "--json").stdout)
    assert [(b["id"], b["status"], b["alembicRevision"]) for b in as_json] == [
        (backup_id, "completed", head_revision())]

    with deployment.context():
        db.session.add(Session(name="after"))
        db.session.commit()
    restored = invoke(deployment, "restore", backup_id)
    assert restored.exit_code == 0, restored.output
    assert restored.stdout.startswith(f"restored backup {backup_id} ")
    assert "verify database" in restored.stderr and "restore sessions" in restored.stderr
    assert deployment.tables() == rows


def test_restore_command_refuses_a_live_deployment_unless_forced(sqlite_deployment):
    deployment = sqlite_deployment
    assert invoke(deployment, "backup").exit_code == 0
    with deployment.context():
        db.session.add(Host(name="host@busy", capacity=5, held=1, last_heartbeat=utcnow()))
        db.session.commit()

    refused = invoke(deployment, "restore", "latest")
    assert refused.exit_code == 1
    assert "Error: refusing to restore over a live deployment: 1 session host(s) running " \
           "(host@busy)" in refused.stderr
    with deployment.context():
        assert db.session.get(Host, "host@busy") is not None

    forced = invoke(deployment, "restore", "latest", "--force")
    assert forced.exit_code == 0, forced.output
    with deployment.context():
        assert db.session.get(Host, "host@busy") is None


def test_commands_fail_with_one_clear_line(sqlite_deployment):
    deployment = sqlite_deployment
    deployment.config.encryption_key = None
    result = invoke(deployment, "backup")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ENCRYPTION_KEY is not set")
    assert "Traceback" not in result.output
    listed = invoke(deployment, "backups", "list")
    assert "failed" in listed.stdout and "ENCRYPTION_KEY is not set" in listed.stdout
    missing = invoke(deployment, "restore", "20200101T000000Z-abcdef")
    assert missing.exit_code == 1 and "ENCRYPTION_KEY is not set" in missing.stderr


def test_scheduled_task_backs_up_and_applies_retention(sqlite_deployment, backdate):
    deployment = sqlite_deployment
    deployment.config.backup_retention_daily = 0
    deployment.config.backup_retention_weekly = 0
    deployment.config.backup_retention_monthly = 0
    set_flask_app(deployment.app)
    try:
        backdate(1)
        first = scheduled_backup()
        backdate(0)
        second = scheduled_backup()
    finally:
        set_flask_app(None)  # type: ignore[arg-type]
    assert first["deleted"] == [] and second["deleted"] == [first["id"]]
    with deployment.context():
        records = db.session.scalars(select(Backup)).all()
        assert [(r.id, r.trigger, r.status) for r in records] == [
            (second["id"], "scheduled", "completed")]


def test_scheduled_task_skips_while_another_backup_runs(sqlite_deployment):
    deployment = sqlite_deployment
    with deployment.context():
        db.session.add(Backup(id="20260101T000000Z-aaaaaa", status="running", storage="local",
                              location="x", database_backend="sqlite", heartbeat_at=utcnow()))
        db.session.commit()
    set_flask_app(deployment.app)
    try:
        result = scheduled_backup()
    finally:
        set_flask_app(None)  # type: ignore[arg-type]
    assert "backup 20260101T000000Z-aaaaaa is in progress" in result["skipped"]


def test_cron_wrappers_run_the_real_command(sqlite_deployment, tmp_path):
    deployment = sqlite_deployment
    shellcheck = require_binary("shellcheck", "Debian package shellcheck")
    scripts = [REPO / "scripts" / "backup.sh", REPO / "scripts" / "restore.sh"]
    lint = subprocess.run([shellcheck, *map(str, scripts)], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout
    deployment.seed(sessions=1, messages=3)
    env = {
        **os.environ,
        **env_for("sqlite", str(deployment.config.database_sqlite_path)),
        "OPENWA": str(Path(sys.executable).parent / "openwa"),
        "PYTHONPATH": str(REPO),
        "DATA_PATH": str(tmp_path / "data"),
        "SESSION_DATA_PATH": str(deployment.sessions_dir),
        "BACKUP_PATH": str(deployment.backups_dir),
        "STORAGE_LOCAL_PATH": str(deployment.config.storage_local_path),
        "ENCRYPTION_KEY": deployment.config.encryption_key or "",
        "LOG_FORMAT": "text",
        "LOG_LEVEL": "warning",
    }
    made = subprocess.run([str(scripts[0])], env=env, capture_output=True, text=True,
                          timeout=120)
    assert made.returncode == 0, made.stdout + made.stderr
    assert "completed" in made.stdout
    usage = subprocess.run([str(scripts[1])], env=env, capture_output=True, text=True)
    assert usage.returncode == 2 and "usage:" in usage.stderr
    restored = subprocess.run([str(scripts[1]), "latest", "--yes"], env=env,
                              capture_output=True, text=True, timeout=120)
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert "restored backup" in restored.stdout
