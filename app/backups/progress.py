"""How long operations report progress: stages with a byte count and, when known, a total."""
from __future__ import annotations

import logging
import time
from typing import Protocol


class Progress(Protocol):
    def begin(self, stage: str, total: int | None = None) -> None:
        """A stage starts; ``total`` bytes when known."""

    def advance(self, amount: int) -> None:
        """``amount`` more bytes of the current stage are done (may be called from threads)."""

    def end(self) -> None:
        """The current stage is done."""


class NoProgress:
    def begin(self, stage: str, total: int | None = None) -> None:
        pass

    def advance(self, amount: int) -> None:
        pass

    def end(self) -> None:
        pass


class LogProgress:
    """One log line per finished stage: what a worker shows."""

    def __init__(self, log: logging.Logger, what: str) -> None:
        self._log = log
        self._what = what
        self._stage = ""
        self._done = 0
        self._started = 0.0

    def begin(self, stage: str, total: int | None = None) -> None:
        self._stage, self._done, self._started = stage, 0, time.monotonic()

    def advance(self, amount: int) -> None:
        self._done += amount

    def end(self) -> None:
        self._log.info("%s: %s done, %s in %.1f s", self._what, self._stage,
                       human_bytes(self._done), time.monotonic() - self._started)


def human_bytes(count: int | float) -> str:
    value = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"  # pragma: no cover - the loop returns at GB
