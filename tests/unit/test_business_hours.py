"""Business hours: local wall-clock intervals in Europe/Paris, across DST changes, holidays."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from flows.calendar import Opening, opening_at

WEEKDAYS_9_17 = [["09:00", "12:00"], ["13:30", "17:00"]]
CALENDAR = {
    "timezone": "Europe/Paris",
    "weekly": {
        "mon": WEEKDAYS_9_17,
        "tue": WEEKDAYS_9_17,
        "wed": WEEKDAYS_9_17,
        "thu": WEEKDAYS_9_17,
        "fri": WEEKDAYS_9_17,
        "sat": [["09:00", "12:00"]],
        # An on-call line open on Sunday mornings, across the night of the change.
        "sun": [["01:00", "04:00"], ["09:00", "12:00"]],
    },
    "holidays": {"country": "FR", "subdiv": None},
}


def utc(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        # 2026-03-29, last Sunday of March: 02:00 CET becomes 03:00 CEST (UTC+1 -> UTC+2).
        (utc(2026, 3, 29, 7, 30), Opening.OPEN),  # 09:30 CEST
        (utc(2026, 3, 29, 7, 59), Opening.OPEN),  # 09:59 CEST (would be 08:59 in CET)
        (utc(2026, 3, 29, 6, 59), Opening.CLOSED),  # 08:59 CEST
        (utc(2026, 3, 29, 10, 0), Opening.CLOSED),  # 12:00 CEST: the interval's end is open
        (utc(2026, 3, 29, 9, 59), Opening.OPEN),  # 11:59 CEST
        (utc(2026, 3, 29, 0, 59), Opening.OPEN),  # 01:59 CET, just before the jump
        (utc(2026, 3, 29, 1, 0), Opening.OPEN),  # 03:00 CEST, just after it
        (utc(2026, 3, 29, 2, 0), Opening.CLOSED),  # 04:00 CEST
        (utc(2026, 3, 28, 7, 59), Opening.CLOSED),  # Saturday, still CET: 08:59
        (utc(2026, 3, 28, 8, 0), Opening.OPEN),  # Saturday 09:00 CET
        (utc(2026, 3, 30, 7, 0), Opening.OPEN),  # Monday 09:00 CEST
        (utc(2026, 3, 30, 6, 59), Opening.CLOSED),  # Monday 08:59 CEST
    ],
)
def test_spring_forward_2026_03_29(instant: datetime, expected: Opening) -> None:
    assert opening_at(CALENDAR, instant) is expected


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        # 2026-10-25, last Sunday of October: 03:00 CEST becomes 02:00 CET (UTC+2 -> UTC+1).
        (utc(2026, 10, 25, 7, 59), Opening.CLOSED),  # 08:59 CET (would be 09:59 in CEST)
        (utc(2026, 10, 25, 8, 0), Opening.OPEN),  # 09:00 CET
        (utc(2026, 10, 25, 10, 59), Opening.OPEN),  # 11:59 CET
        (utc(2026, 10, 25, 11, 0), Opening.CLOSED),  # 12:00 CET
        # 02:30 happens twice that night; both are inside 01:00-04:00.
        (utc(2026, 10, 25, 0, 30), Opening.OPEN),  # 02:30 CEST (first time)
        (utc(2026, 10, 25, 1, 30), Opening.OPEN),  # 02:30 CET (second time)
        (utc(2026, 10, 25, 2, 59), Opening.OPEN),  # 03:59 CET
        (utc(2026, 10, 25, 3, 0), Opening.CLOSED),  # 04:00 CET
        (utc(2026, 10, 24, 7, 0), Opening.OPEN),  # Saturday 09:00 CEST
        (utc(2026, 10, 26, 7, 59), Opening.CLOSED),  # Monday 08:59 CET
        (utc(2026, 10, 26, 8, 0), Opening.OPEN),  # Monday 09:00 CET
    ],
)
def test_fall_back_2026_10_25(instant: datetime, expected: Opening) -> None:
    assert opening_at(CALENDAR, instant) is expected


def test_public_holidays_close_the_service() -> None:
    # Easter Monday 2026-04-06, 10:00 CEST: a Monday, open hours, but a public holiday.
    assert opening_at(CALENDAR, utc(2026, 4, 6, 8, 0)) is Opening.HOLIDAY
    # 14 July and Christmas
    assert opening_at(CALENDAR, utc(2026, 7, 14, 8, 0)) is Opening.HOLIDAY
    assert opening_at(CALENDAR, utc(2026, 12, 25, 9, 0)) is Opening.HOLIDAY
    # The day after Easter Monday is an ordinary Tuesday.
    assert opening_at(CALENDAR, utc(2026, 4, 7, 8, 0)) is Opening.OPEN


def test_alsace_moselle_has_its_own_holidays() -> None:
    # 26 December (Saint Stephen's Day) is a holiday in Moselle (57), not in the rest of France.
    moselle = {**CALENDAR, "holidays": {"country": "FR", "subdiv": "57"}}
    boxing_day = utc(2025, 12, 26, 9, 0)  # a Friday, 10:00 CET
    assert opening_at(CALENDAR, boxing_day) is Opening.OPEN
    assert opening_at(moselle, boxing_day) is Opening.HOLIDAY


def test_closed_dates_and_special_openings() -> None:
    calendar = {
        **CALENDAR,
        "closed_dates": ["2026-12-24"],
        "open_dates": {"2026-11-11": [["09:00", "12:00"]]},  # open on a holiday, mornings
    }
    # a closed date is a closure (its own message), not a public holiday (issue 12)
    assert opening_at(calendar, utc(2026, 12, 24, 9, 0)) is Opening.CLOSED
    assert opening_at(calendar, utc(2026, 11, 11, 9, 0)) is Opening.OPEN
    assert opening_at(calendar, utc(2026, 11, 11, 13, 0)) is Opening.CLOSED


def test_no_holidays_when_none_configured() -> None:
    calendar = {**CALENDAR, "holidays": None}
    assert opening_at(calendar, utc(2026, 7, 14, 8, 0)) is Opening.OPEN


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        opening_at(CALENDAR, datetime(2026, 3, 29, 9, 0))  # noqa: DTZ001
