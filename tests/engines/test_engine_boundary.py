"""Engines stay behind their protocol: app/ and tasks/ name no engine module, and each engine
tells what a backup must leave out and which test hooks it offers (issue 15, item 5)."""
from __future__ import annotations

import re
from pathlib import Path

from engines import backup_exclusions, get_engine_class

ROOT = Path(__file__).resolve().parents[2]


def test_app_and_tasks_import_no_engine_module_by_name() -> None:
    # engines.base (the protocol), engines.registry and engines.qr (a QR renderer) are shared.
    pattern = re.compile(r"^\s*(?:from|import)\s+engines\.(?!base\b|registry\b|qr\b)\w+", re.M)
    offenders = [str(path.relative_to(ROOT))
                 for path in [*ROOT.glob("app/**/*.py"), *ROOT.glob("tasks/**/*.py")]
                 if pattern.search(path.read_text())]
    assert offenders == []


def test_backups_leave_out_what_the_engines_name() -> None:
    shared_dirs, lock_files = backup_exclusions()
    assert get_engine_class("mock").shared_dirs <= shared_dirs
    assert "_mocknet" in shared_dirs
    assert {"SingletonLock", "SingletonSocket", "SingletonCookie", "LOCK"} <= lock_files
    assert get_engine_class("selenium").lock_files <= lock_files


def test_only_the_mock_engine_offers_simulate_hooks() -> None:
    assert get_engine_class("mock").test_hooks == {"simulate_scan", "simulate_disconnect"}
    assert get_engine_class("selenium").test_hooks == frozenset()
    for name in ("mock", "selenium"):
        engine = get_engine_class(name)
        assert all(callable(getattr(engine, hook, None)) for hook in engine.test_hooks)
