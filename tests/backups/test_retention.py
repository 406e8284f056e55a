"""Retention: daily 7 / weekly 4 / monthly 12, as a pure function of the backups' times."""
from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from app.backups.retention import Policy, keep

START = datetime(2025, 3, 17, 2, 0, tzinfo=timezone.utc)  # a Monday, mid-month


Kept = tuple[dict[str, datetime], dict[str, str]]


def simulate(days: int, policy: Policy, per_day: int = 1) -> Kept:
    """Back up ``per_day`` times a day for ``days`` days, applying retention after each
    backup as the scheduled task does; return the surviving backups and their rules."""
    alive: dict[str, datetime] = {}
    kept: dict[str, str] = {}
    for day in range(days):
        for n in range(per_day):
            when = START + timedelta(days=day, hours=n * 5)
            alive[f"{when:%Y%m%dT%H%M%SZ}"] = when
            kept = keep(alive.items(), policy)
            alive = {backup_id: alive[backup_id] for backup_id in kept}
    return alive, kept


def test_400_days_of_daily_backups_keep_exactly_7_daily_4_weekly_12_monthly():
    alive, kept = simulate(400, Policy(7, 4, 12))
    assert Counter(kept.values()) == {"daily": 7, "weekly": 4, "monthly": 12}
    assert len(alive) == 23
    last = START + timedelta(days=399)
    by_rule = {rule: sorted(alive[i] for i, r in kept.items() if r == rule)
               for rule in ("daily", "weekly", "monthly")}
    # daily: the last 7 days, one each
    assert [d.date() for d in by_rule["daily"]] == [
        (last - timedelta(days=n)).date() for n in range(6, -1, -1)]
    # weekly: 4 distinct ISO weeks, all older than the daily ones, each a week's newest
    weeks = [d.isocalendar()[:2] for d in by_rule["weekly"]]
    assert len(set(weeks)) == 4 and max(by_rule["weekly"]) < min(by_rule["daily"])
    assert all(d.isoweekday() == 7 for d in by_rule["weekly"])  # Sunday: the week's last
    # monthly: the 12 months before this one (whose newest backup is a daily one), each
    # by its last day; a month's last day may fall between two weekly backups
    months = [(d.year, d.month) for d in by_rule["monthly"]]
    assert months == [(2025, m) for m in range(4, 13)] + [(2026, m) for m in range(1, 4)]
    assert last.month == 4 and max(by_rule["monthly"]) < min(by_rule["daily"])
    assert all((d + timedelta(days=1)).day == 1 for d in by_rule["monthly"])


def test_steady_state_holds_every_day_after_the_first_year():
    alive: dict[str, datetime] = {}
    for day in range(400):
        when = START + timedelta(days=day)
        alive[f"{when:%Y%m%dT%H%M%SZ}"] = when
        kept = keep(alive.items(), Policy())
        alive = {i: alive[i] for i in kept}
        counts = Counter(kept.values())
        assert counts["daily"] == min(day + 1, 7)
        assert counts["weekly"] <= 4 and counts["monthly"] <= 12
        if day >= 7 * 5 + 31 * 13:
            assert counts == {"daily": 7, "weekly": 4, "monthly": 12}, day


def test_pruning_after_every_backup_equals_pruning_once_at_the_end():
    everything = {f"b{d:03d}": START + timedelta(days=d) for d in range(400)}
    alive, incremental = simulate(400, Policy())
    once = keep(everything.items(), Policy())
    assert sorted(once) == sorted(f"b{(when - START).days:03d}" for when in alive.values())
    assert sorted(once.values()) == sorted(incremental.values())


def test_several_backups_a_day_keep_the_newest_of_each_day_and_all_of_the_last_day():
    alive, kept = simulate(30, Policy(7, 0, 0), per_day=3)
    last_day = max(alive.values()).date()
    older = [when for when in alive.values() if when.date() != last_day]
    assert len(older) == 6 and all(when.hour == 12 for when in older)  # the day's newest
    assert sorted(when.hour for when in alive.values() if when.date() == last_day) == [2, 7, 12]
    assert Counter(kept.values()) == {"daily": 7, "recent": 2}


def test_a_backup_made_by_hand_survives_the_next_one_for_a_day():
    morning = START.replace(hour=9)
    backups = [("nightly", START), ("before-upgrade", morning),
               ("after-upgrade", morning + timedelta(hours=1))]
    assert keep(backups, Policy()) == {"after-upgrade": "daily", "before-upgrade": "recent",
                                       "nightly": "recent"}
    tomorrow = backups + [("next-nightly", START + timedelta(days=1))]
    assert set(keep(tomorrow, Policy())) == {"next-nightly", "after-upgrade", "before-upgrade"}


def test_counts_are_configurable():
    _, kept = simulate(400, Policy(daily=3, weekly=2, monthly=6))
    assert Counter(kept.values()) == {"daily": 3, "weekly": 2, "monthly": 6}


def test_zero_everywhere_still_keeps_the_newest():
    _, kept = simulate(10, Policy(0, 0, 0))
    assert list(kept.values()) == ["recent"]


def test_input_order_and_time_zones_do_not_matter():
    backups = [(f"b{d}", START + timedelta(days=d)) for d in range(60)]
    shifted = [(i, when.astimezone(timezone(timedelta(hours=-7)))) for i, when in backups]
    assert keep(reversed(backups), Policy()) == keep(backups, Policy()) == keep(shifted, Policy())


@pytest.mark.parametrize("days", [1, 5])
def test_young_deployments_keep_everything(days: int):
    alive, _ = simulate(days, Policy())
    assert len(alive) == days
