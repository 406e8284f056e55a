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
    hooks = get_engine_class("mock").test_hooks
    assert {"simulate_scan", "simulate_disconnect", "simulate_incoming_media",
            "simulate_event"} <= hooks
    assert all(hook.startswith("simulate_") for hook in hooks)
    assert get_engine_class("selenium").test_hooks == frozenset()
    for name in ("mock", "selenium"):
        engine = get_engine_class(name)
        assert all(callable(getattr(engine, hook, None)) for hook in engine.test_hooks)


def test_each_engine_has_its_own_options_named_by_the_settings_that_give_them() -> None:
    """The host fills an engine's options by their settings' names, knowing none of them:
    each option names a variable the deployment reads (app/config.py), and each engine's
    options hold only its own fields."""
    from dataclasses import fields

    from app.config import Config

    read = set(Config.variables())
    mock, selenium = (get_engine_class(name).options_class for name in ("mock", "selenium"))
    own = {cls: {spec.name for spec in fields(cls)} for cls in (mock, selenium)}
    assert "auto_scan_seconds" in own[mock] and "headless" not in own[mock]
    assert "headless" in own[selenium] and "auto_scan_seconds" not in own[selenium]
    for cls in (mock, selenium):
        named = [spec.metadata["setting"] for spec in fields(cls) if "setting" in spec.metadata]
        assert named and set(named) <= read, set(named) - read


def test_the_host_fills_the_configured_engines_options_from_the_settings(tmp_path: Path) -> None:
    from app.config import Config
    from tasks.host import HostRuntime

    config = Config.from_env({"DATA_PATH": str(tmp_path), "ENGINE_TYPE": "selenium",
                              "CHROMIUM_HEADLESS": "false", "CHROMIUM_ARGS": "--a,--b",
                              "MOCK_AUTO_SCAN_SECONDS": "0"})
    options = HostRuntime("host@test", config).engine_options()
    assert type(options).__name__ == "SeleniumOptions"
    assert options.headless is False and options.extra_args == ["--a", "--b"]
    assert options.driver_cache_dir == str(config.webdriver_cache_path)
    config = Config.from_env({"DATA_PATH": str(tmp_path), "MOCK_AUTO_SCAN_SECONDS": "0"})
    options = HostRuntime("host@test", config).engine_options()
    assert type(options).__name__ == "MockOptions" and options.auto_scan_seconds == 0
