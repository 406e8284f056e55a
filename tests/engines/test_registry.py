"""The engine registry: lookup by name, soft optional engines, clear errors."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import pytest

import engines
from engines import registry
from engines.base import Engine, EngineOptions, EngineState
from engines.mock import MockEngine, MockOptions


def test_mock_is_registered_and_found_by_name_case_insensitively() -> None:
    assert "mock" in engines.available()
    assert engines.get_engine_class("mock") is MockEngine
    assert engines.get_engine_class(" MOCK ") is MockEngine


def test_unknown_engine_error_lists_the_known_names() -> None:
    with pytest.raises(KeyError) as caught:
        engines.get_engine_class("telepathy")
    message = str(caught.value)
    assert "telepathy" in message
    assert "known engines:" in message and "mock" in message
    assert isinstance(caught.value, ValueError)  # config code may catch either


def test_a_missing_optional_engine_fails_softly_and_says_why() -> None:
    # engines.selenium is optional: if it (or its dependencies) cannot be imported, the
    # registry still works and a lookup explains the import failure. A child interpreter
    # where `selenium` cannot be imported plays the machine without it.
    code = (
        "import sys; sys.modules['selenium'] = None\n"
        "import engines\n"
        "assert engines.available() == ['mock'], engines.available()\n"
        "try:\n"
        "    engines.get_engine_class('selenium')\n"
        "except engines.UnknownEngine as error:\n"
        "    print(error)\n"
    )
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "'selenium' is not available" in result.stdout and "mock" in result.stdout


def test_the_selenium_engine_is_registered_when_selenium_is_installed() -> None:
    assert "selenium" in engines.available()
    assert engines.get_engine_class("selenium").name == "selenium"


def test_create_engine_builds_an_unstarted_engine(tmp_path: Path) -> None:
    engine = engines.create_engine("mock", "s1", tmp_path / "s1", EngineOptions(push_name="X"))
    assert isinstance(engine, MockEngine)
    assert engine.session_id == "s1"
    assert engine.options.push_name == "X"
    assert engine.state is EngineState.CLOSED
    assert isinstance(engine.options, MockOptions)  # the base options adopted as the mock's
    default = engines.create_engine("mock", "s2", tmp_path / "s2")
    assert default.options == MockOptions()


def test_register_refuses_a_second_class_under_a_taken_name() -> None:
    class Impostor(MockEngine):
        name: ClassVar[str] = "mock"

    with pytest.raises(ValueError, match="already taken"):
        registry.register(Impostor)
    assert engines.get_engine_class("mock") is MockEngine
    assert registry.register(MockEngine) is MockEngine  # the same class again is harmless


def test_register_refuses_a_class_without_a_name() -> None:
    class Nameless(MockEngine):
        name: ClassVar[str] = ""

    with pytest.raises(ValueError, match="no engine name"):
        registry.register(Nameless)


def test_a_new_engine_is_one_registered_class(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_engines", dict(registry._engines))

    @registry.register
    class Other(MockEngine):
        name: ClassVar[str] = "other"

    assert engines.get_engine_class("other") is Other
    assert "other" in engines.available()
    assert issubclass(Other, Engine)


def test_importing_engines_does_not_import_web_or_queue_frameworks() -> None:
    code = (
        "import sys, engines, engines.mock, engines.qr, engines.registry;"
        "engines.available();"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('flask', 'sqlalchemy', 'celery', 'app', 'tasks')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
