"""Named report periods (the stats API's ``period``), on a Thursday, a month's first day and
the first of January."""

from __future__ import annotations

from datetime import date

import pytest

from supervision.periods import PERIOD_NAMES, Period, named_period

THURSDAY = date(2026, 12, 3)


@pytest.mark.parametrize(
    ("name", "first", "last"),
    [
        ("today", THURSDAY, THURSDAY),
        ("yesterday", date(2026, 12, 2), date(2026, 12, 2)),
        ("this_week", date(2026, 11, 30), THURSDAY),  # from Monday
        ("last_week", date(2026, 11, 23), date(2026, 11, 29)),
        ("this_month", date(2026, 12, 1), THURSDAY),
        ("last_month", date(2026, 11, 1), date(2026, 11, 30)),
        ("last_7_days", date(2026, 11, 27), THURSDAY),
        ("last_30_days", date(2026, 11, 4), THURSDAY),
    ],
)
def test_named_periods(name: str, first: date, last: date) -> None:
    assert named_period(name, THURSDAY) == Period(first, last)


def test_across_a_year_and_on_a_monday() -> None:
    new_year = date(2027, 1, 1)  # a Friday
    assert named_period("last_month", new_year) == Period(date(2026, 12, 1), date(2026, 12, 31))
    assert named_period("yesterday", new_year) == Period(date(2026, 12, 31), date(2026, 12, 31))
    assert named_period("this_month", new_year) == Period(new_year, new_year)
    monday = date(2026, 11, 30)
    assert named_period("this_week", monday) == Period(monday, monday)
    assert named_period("last_week", monday) == Period(date(2026, 11, 23), date(2026, 11, 29))
    assert named_period("last_month", date(2026, 3, 31)).days == 28  # February 2026


def test_every_name_is_known_and_nothing_else() -> None:
    for name in PERIOD_NAMES:
        assert named_period(name, THURSDAY).last <= THURSDAY
    with pytest.raises(ValueError, match="fortnight"):
        named_period("fortnight", THURSDAY)
