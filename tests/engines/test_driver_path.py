"""Which chromedriver the selenium engine runs: an explicit CHROMIUM_DRIVER_PATH, else the
system's, else webdriver-manager's from its cache under DATA_PATH (downloading only when not
SE_OFFLINE). No test here lets webdriver-manager reach the network."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engines import EngineError, EngineOptions
from engines.selenium import browser


def _executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def no_system_driver(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A machine without chromedriver: an empty PATH and no /usr/bin/chromedriver."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setattr(browser, "DEFAULT_DRIVER", str(tmp_path / "no" / "chromedriver"))


@pytest.fixture
def no_download(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Record webdriver-manager install() calls instead of letting one download anything."""
    from webdriver_manager.chrome import ChromeDriverManager

    calls: list[Any] = []

    def install(self: ChromeDriverManager) -> str:
        calls.append(str(Path(self._cache_manager._root_dir)))
        raise OSError("download refused by the test")

    monkeypatch.setattr(ChromeDriverManager, "install", install)
    return calls


def _cache_with_driver(cache_dir: Path) -> Path:
    """A webdriver-manager cache as it leaves it after a download (drivers.json + binary)."""
    root = cache_dir / ".wdm"
    binary = _executable(root / "drivers" / "chromedriver" / "linux64" / "140.0" / "chromedriver")
    (root / "drivers.json").write_text(json.dumps({
        "linux64_chromedriver_140.0_for_140.0": {"timestamp": "01/01/2026",
                                                 "binary_path": str(binary)}}))
    return binary


def test_an_explicit_driver_path_is_used_as_is(tmp_path, no_download) -> None:
    driver = _executable(tmp_path / "my-chromedriver")
    assert browser.driver_path(EngineOptions(driver_path=str(driver))) == str(driver)
    assert no_download == []


def test_a_missing_explicit_driver_is_a_clear_error_not_a_download(tmp_path, no_download) -> None:
    with pytest.raises(EngineError, match="chromedriver not found at .*CHROMIUM_DRIVER_PATH"):
        browser.driver_path(EngineOptions(driver_path=str(tmp_path / "none"),
                                          driver_cache_dir=str(tmp_path / "cache")))
    assert no_download == []


def test_the_system_driver_on_the_path_wins_over_webdriver_manager(
        tmp_path, monkeypatch, no_download) -> None:
    bin_dir = tmp_path / "bin"
    driver = _executable(bin_dir / "chromedriver")
    monkeypatch.setenv("PATH", str(bin_dir))
    found = browser.driver_path(EngineOptions(driver_cache_dir=str(tmp_path / "cache")))
    assert found == str(driver)
    assert no_download == []


def test_without_a_system_driver_webdriver_manager_is_asked_with_the_cache_under_data(
        tmp_path, no_system_driver, no_download) -> None:
    cache = tmp_path / "data" / "webdriver"
    with pytest.raises(EngineError, match="webdriver-manager could not provide a chromedriver"):
        browser.driver_path(EngineOptions(driver_cache_dir=str(cache)))
    assert no_download == [str(cache / ".wdm")]


def test_offline_uses_the_cached_driver_without_asking_webdriver_manager(
        tmp_path, no_system_driver, no_download) -> None:
    cache = tmp_path / "data" / "webdriver"
    binary = _cache_with_driver(cache)
    found = browser.driver_path(EngineOptions(driver_cache_dir=str(cache), offline=True))
    assert found == str(binary)
    assert no_download == []


def test_offline_with_nothing_cached_is_one_clear_error(tmp_path, no_system_driver, no_download) -> None:
    cache = tmp_path / "data" / "webdriver"
    with pytest.raises(EngineError) as caught:
        browser.driver_path(EngineOptions(driver_cache_dir=str(cache), offline=True))
    message = str(caught.value)
    assert "SE_OFFLINE=true" in message and str(cache) in message and "\n" not in message
    assert no_download == []


def test_webdriver_manager_can_be_turned_off(tmp_path, no_system_driver, no_download) -> None:
    with pytest.raises(EngineError, match="WEBDRIVER_MANAGER=true"):
        browser.driver_path(EngineOptions(driver_cache_dir=str(tmp_path), webdriver_manager=False))
    assert no_download == []
