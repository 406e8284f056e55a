"""Engine classes by name: ``ENGINE_TYPE`` picks one.

Each engine module registers its class with :func:`register`. The built-in modules are
imported on the first lookup, never at import time; an engine whose module or dependencies
are missing (``selenium`` without the selenium package) is left out and its import error is
kept to explain a lookup of its name.
"""
from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import TypeVar

from engines.base import Engine, EngineOptions

logger = logging.getLogger(__name__)

#: Modules that must import; a failure here is a bug and is raised.
REQUIRED_MODULES: tuple[str, ...] = ("engines.mock",)
#: Modules whose import may fail (missing optional dependency); they are skipped softly.
OPTIONAL_MODULES: tuple[str, ...] = ("engines.selenium",)

E = TypeVar("E", bound=type[Engine])

_engines: dict[str, type[Engine]] = {}
_unavailable: dict[str, str] = {}
_loaded = False


class UnknownEngine(KeyError, ValueError):
    """No engine is registered under the name asked for."""

    def __str__(self) -> str:
        # KeyError quotes its argument; this message is read by people.
        return str(self.args[0]) if self.args else "unknown engine"


def register(engine_class: E) -> E:
    """Class decorator: make ``engine_class`` available under its ``name``."""
    name = engine_class.name
    if not name:
        raise ValueError(f"{engine_class.__qualname__} has no engine name")
    existing = _engines.get(name)
    if existing is not None and existing is not engine_class:
        # Re-registering the same class (a module reload) is harmless; a second class is not.
        taken_by = f"{existing.__module__}.{existing.__qualname__}"
        raise ValueError(f"engine name {name!r} is already taken by {taken_by}")
    _engines[name] = engine_class
    _unavailable.pop(name, None)
    return engine_class


def _load_builtins() -> None:
    global _loaded
    if _loaded:
        return
    for module in REQUIRED_MODULES:
        importlib.import_module(module)
    for module in OPTIONAL_MODULES:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            short = module.rsplit(".", 1)[-1]
            _unavailable.setdefault(short, str(exc))
            logger.info("engine module %s is not available: %s", module, exc)
    _loaded = True


def available() -> list[str]:
    """Names of the engines that can be created here, sorted."""
    _load_builtins()
    return sorted(_engines)


def backup_exclusions() -> tuple[frozenset[str], frozenset[str]]:
    """What a backup of SESSION_DATA_PATH leaves out, as the available engines tell it:
    (folders beside the profiles, lock file names inside them)."""
    _load_builtins()
    dirs = frozenset().union(*(engine.shared_dirs for engine in _engines.values()))
    locks = frozenset().union(*(engine.lock_files for engine in _engines.values()))
    return dirs, locks


def get_engine_class(name: str) -> type[Engine]:
    """The engine class registered as ``name`` (case-insensitive).

    Raises :class:`UnknownEngine` (a ``KeyError`` and a ``ValueError``) naming the known engines.
    """
    _load_builtins()
    key = name.strip().lower()
    try:
        return _engines[key]
    except KeyError:
        known = ", ".join(sorted(_engines)) or "none"
        if key in _unavailable:
            reason = _unavailable[key]
            message = f"engine {key!r} is not available ({reason}); known engines: {known}"
        else:
            message = f"unknown engine {name!r}; known engines: {known}"
        raise UnknownEngine(message) from None


def create_engine(
    name: str,
    session_id: str,
    profile_dir: Path,
    options: EngineOptions | None = None,
) -> Engine:
    """Create the engine named ``name`` for one session (it is not started)."""
    engine_class = get_engine_class(name)
    return engine_class(session_id, Path(profile_dir), options or EngineOptions())
