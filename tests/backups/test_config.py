"""Backup settings: parsed and checked with the rest of the config, scheduled by beat."""
from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest
from celery.schedules import crontab

from app.config import Config, ConfigError, cron_schedule


def test_defaults():
    config = Config.from_env({"DATA_PATH": "/srv/openwa"})
    assert config.backup_schedule == "0 2 * * *"
    assert config.backup_crontab == crontab(minute="0", hour="2")
    assert (config.backup_retention_daily, config.backup_retention_weekly,
            config.backup_retention_monthly) == (7, 4, 12)
    assert config.backup_storage == "local"
    assert config.backup_path == Path("/srv/openwa/backups")


@pytest.mark.parametrize("value, message", [
    ("0 2 * *", "needs 5 fields .* got 4"),
    ("61 2 * * *", r"minute '61'"),
    ("0 25 * * *", r"hour '25'"),
    ("0 2 32 * *", r"day of month '32'"),
    ("0 2 * 13 *", r"month of year '13'"),
    ("0 2 * * funday", r"day of week 'funday'"),
])
def test_a_bad_schedule_is_one_clear_line(value: str, message: str):
    with pytest.raises(ConfigError, match=rf"^BACKUP_SCHEDULE='{re.escape(value)}' is not a "
                                          rf"cron expression: .*{message}"):
        Config.from_env({"BACKUP_SCHEDULE": value})


@pytest.mark.parametrize("value", ["off", "OFF", "none", "disabled"])
def test_the_schedule_can_be_turned_off(value: str):
    config = Config.from_env({"BACKUP_SCHEDULE": value})
    assert config.backup_schedule is None and config.backup_crontab is None


def test_retention_counts_must_not_be_negative():
    with pytest.raises(ConfigError, match="BACKUP_RETENTION_WEEKLY=-1 must be at least 0"):
        Config.from_env({"BACKUP_RETENTION_WEEKLY": "-1"})


def test_backups_follow_media_storage_unless_told_otherwise():
    s3 = {"STORAGE_TYPE": "minio", "STORAGE_S3_BUCKET": "media"}
    config = Config.from_env(s3)
    assert (config.backup_storage, config.backup_s3_bucket) == ("minio", "media")
    config = Config.from_env({**s3, "BACKUP_S3_BUCKET": "vault", "BACKUP_S3_PREFIX": "/a/b/"})
    assert (config.backup_s3_bucket, config.backup_s3_prefix) == ("vault", "a/b/")
    assert Config.from_env({**s3, "BACKUP_STORAGE": "local"}).backup_storage == "local"


def test_a_missing_bucket_stops_the_backup_not_the_platform(tmp_path):
    from app.backups import BackupError
    from app.backups.storage import open_storage

    config = Config.from_env({"STORAGE_TYPE": "s3", "DATA_PATH": str(tmp_path)})
    assert config.backup_storage == "s3" and config.backup_s3_bucket is None
    with pytest.raises(BackupError, match=r"no bucket is set: set BACKUP_S3_BUCKET \(or "
                                          r"STORAGE_S3_BUCKET\)"):
        open_storage(config)


def _celeryconfig(monkeypatch: pytest.MonkeyPatch, schedule: str | None) -> ModuleType:
    if schedule is None:
        monkeypatch.delenv("BACKUP_SCHEDULE", raising=False)
    else:
        monkeypatch.setenv("BACKUP_SCHEDULE", schedule)
    sys.modules.pop("celeryconfig", None)
    try:
        return importlib.import_module("celeryconfig")
    finally:
        sys.modules.pop("celeryconfig", None)


@pytest.mark.parametrize("schedule", [None, "30 3 * * 1", "*/15 1-5 1,15 */2 mon-fri"])
def test_beat_runs_the_backup_task_at_the_configured_schedule(monkeypatch, schedule):
    settings = _celeryconfig(monkeypatch, schedule)
    entry = settings.beat_schedule["scheduled-backup"]
    assert entry["task"] == "tasks.backups.scheduled_backup"
    # celeryconfig repeats the translation of app.config: the two must agree.
    assert entry["schedule"] == cron_schedule(schedule or "0 2 * * *")
    assert settings.task_routes["tasks.backups.*"] == {"queue": "backups"}


def test_beat_has_no_backup_entry_when_the_schedule_is_off(monkeypatch):
    assert "scheduled-backup" not in _celeryconfig(monkeypatch, "off").beat_schedule


def test_the_task_is_registered_under_its_name_and_acked_on_receipt():
    import tasks  # noqa: F401 - registers the tasks
    from app.extensions import celery_app

    task = celery_app.tasks["tasks.backups.scheduled_backup"]
    assert task.acks_late is False
