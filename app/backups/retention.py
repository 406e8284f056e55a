"""Which backups to keep: the newest of each of the last N days, weeks and months.

The rule is borg's and restic's "keep daily/weekly/monthly", with borg's convention that a
backup already kept by an earlier rule does not count for a later one. Backups are taken
newest first, days, ISO weeks and months in UTC:

- daily:   the newest backup of each of the ``daily`` most recent days that have one;
- weekly:  then the newest backup of each of the next ``weekly`` weeks, skipping weeks whose
           newest backup the daily rule already keeps;
- monthly: the same for months, after the daily and weekly rules.

With one backup a day and 7/4/12 that is exactly 23 backups: the last 7 days, the Sundays
of the 4 weeks before those, and the last day of each of the 12 months before this one,
reaching back a little over a year. The newest backup is always kept, whatever the counts,
and so is every backup of the 24 hours before it: a backup taken by hand before a risky
change is not deleted by the next one the same day. This is a pure function of the
backups' times, so repeating it, or running it after every backup, keeps the same set.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone


@dataclass(frozen=True)
class Policy:
    daily: int = 7
    weekly: int = 4
    monthly: int = 12


def _day(moment: datetime) -> tuple[int, ...]:
    return (moment.year, moment.month, moment.day)


def _week(moment: datetime) -> tuple[int, ...]:
    iso = moment.isocalendar()
    return (iso.year, iso.week)


def _month(moment: datetime) -> tuple[int, ...]:
    return (moment.year, moment.month)


#: Backups this close to the newest one are kept whatever the rules say.
RECENT = timedelta(hours=24)

RULES: tuple[tuple[str, Callable[[datetime], tuple[int, ...]]], ...] = (
    ("daily", _day), ("weekly", _week), ("monthly", _month))


def keep(backups: Iterable[tuple[str, datetime]], policy: Policy) -> dict[str, str]:
    """Map the id of every backup to keep to the rule that keeps it.

    ``backups`` are (id, creation time) of the completed backups; the ones missing from
    the result are to be deleted.
    """
    ordered = sorted(((when.astimezone(timezone.utc), backup_id) for backup_id, when in backups),
                     reverse=True)
    kept: dict[str, str] = {}
    for rule, period_of in RULES:
        wanted = getattr(policy, rule)
        count = 0
        last_period: tuple[int, ...] | None = None
        for when, backup_id in ordered:
            if count >= wanted:
                break
            period = period_of(when)
            if period == last_period:
                continue
            last_period = period
            if backup_id not in kept:
                kept[backup_id] = rule
                count += 1
    if ordered:
        newest = ordered[0][0]
        for when, backup_id in ordered:
            if newest - when >= RECENT:
                break
            kept.setdefault(backup_id, "recent")
    return kept
