"""Typed reads of the environment, shared by ``app/config.py`` and ``celeryconfig.py``.

An invalid value raises :class:`ConfigError` with one line naming the variable. Also the
one translation of a cron expression to Celery's ``crontab`` and the one reading of
BACKUP_SCHEDULE, which both the configuration and the beat schedule need.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Callable, TypeVar

if TYPE_CHECKING:
    from celery.schedules import crontab

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}

#: The five fields of a cron expression, in cron's order, named as celery's ``crontab`` names them.
CRON_FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")
#: BACKUP_SCHEDULE values that turn scheduled backups off.
SCHEDULE_OFF = ("off", "none", "disabled", "false")
#: When beat takes a backup unless BACKUP_SCHEDULE says otherwise (cron, UTC).
BACKUP_SCHEDULE_DEFAULT = "0 2 * * *"


class ConfigError(ValueError):
    """A variable has a value we cannot use."""


class Env:
    """Typed reads of one environment mapping; each read names its variable on failure.
    An empty or blank value counts as unset; aliases are read in order after the name.
    (``text``/``integer``/``number``/``flag``: methods named after builtins would hide them.)"""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ

    def raw(self, *names: str) -> str | None:
        for name in names:
            value = self.environ.get(name)
            if value is not None and value.strip() != "":
                return value.strip()
        return None

    def text(self, name: str, default: str, *aliases: str) -> str:
        value = self.raw(name, *aliases)
        return default if value is None else value

    def opt(self, name: str, *aliases: str) -> str | None:
        return self.raw(name, *aliases)

    def _parse(self, name: str, default: T, parse: Callable[[str], T], what: str,
               aliases: tuple[str, ...] = ()) -> T:
        value = self.raw(name, *aliases)
        if value is None:
            return default
        try:
            return parse(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name}={value!r} is not {what}") from None

    def integer(self, name: str, default: int, *aliases: str, minimum: int | None = None,
                maximum: int | None = None) -> int:
        result = self._parse(name, default, int, "a whole number", aliases)
        if minimum is not None and result < minimum:
            raise ConfigError(f"{name}={result} must be at least {minimum}")
        if maximum is not None and result > maximum:
            raise ConfigError(f"{name}={result} must be at most {maximum}")
        return result

    def number(self, name: str, default: float, *aliases: str, minimum: float = 0.0) -> float:
        result = self._parse(name, default, float, "a number", aliases)
        if result < minimum:
            raise ConfigError(f"{name}={result} must be at least {minimum}")
        return result

    def flag(self, name: str, default: bool, *aliases: str) -> bool:
        def parse(value: str) -> bool:
            lowered = value.lower()
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
            raise ValueError(value)

        return self._parse(name, default, parse, "true or false", aliases)

    def choice(self, name: str, default: str, choices: tuple[str, ...], *aliases: str) -> str:
        value = self.text(name, default, *aliases).lower()
        if value not in choices:
            raise ConfigError(f"{name}={value!r} must be one of: {', '.join(choices)}")
        return value

    def csv(self, name: str, *aliases: str) -> list[str]:
        value = self.raw(name, *aliases)
        if value is None:
            return []
        return [part.strip() for part in value.split(",") if part.strip()]


def cron_schedule(expression: str) -> "crontab":
    """Translate ``"m h dom mon dow"`` to a celery crontab; ValueError names the bad field."""
    from celery.schedules import crontab

    parts = expression.split()
    if len(parts) != len(CRON_FIELDS):
        raise ValueError(f"needs 5 fields (minute hour day-of-month month day-of-week), "
                         f"got {len(parts)}")
    for name, part in zip(CRON_FIELDS, parts):
        try:
            crontab(**{name: part})
        except ValueError as error:
            raise ValueError(f"{name.replace('_', ' ')} {part!r}: {error}") from None
    return crontab(**dict(zip(CRON_FIELDS, parts)))


def backup_schedule(env: Env) -> str | None:
    """BACKUP_SCHEDULE, checked and normalised; None when scheduled backups are off."""
    value = env.text("BACKUP_SCHEDULE", BACKUP_SCHEDULE_DEFAULT)
    if value.lower() in SCHEDULE_OFF:
        return None
    try:
        cron_schedule(value)
    except ValueError as error:
        raise ConfigError(f"BACKUP_SCHEDULE={value!r} is not a cron expression: {error}") from None
    return " ".join(value.split())
