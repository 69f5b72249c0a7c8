"""Report periods in local days (Europe/Paris by default), correct across DST changes (pure).

A period is a range of local calendar days, both ends included. Its bounds are the local
midnights, turned into aware datetimes: a spring-forward day lasts 23 hours, a fall-back day
25 hours. Hourly buckets follow UTC hours, so the repeated hour of a fall-back night appears
twice (once per UTC offset) and the skipped hour of a spring-forward night does not appear.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")


@dataclass(frozen=True, slots=True)
class Period:
    """Local days ``first`` .. ``last`` (both included)."""

    first: date
    last: date

    def __post_init__(self) -> None:
        if self.last < self.first:
            raise ValueError("a period cannot end before it starts")

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    def each_day(self) -> Iterator[date]:
        for offset in range(self.days):
            yield self.first + timedelta(days=offset)


def local_midnight(day: date, tz: tzinfo = PARIS) -> datetime:
    """The aware start of ``day`` in ``tz`` (midnight exists every day in Europe/Paris)."""
    return datetime.combine(day, time(0), tzinfo=tz)


def day_bounds(day: date, tz: tzinfo = PARIS) -> tuple[datetime, datetime]:
    """[start, end) of one local day, in UTC."""
    start = local_midnight(day, tz).astimezone(UTC)
    end = local_midnight(day + timedelta(days=1), tz).astimezone(UTC)
    return start, end


def period_bounds(period: Period, tz: tzinfo = PARIS) -> tuple[datetime, datetime]:
    """[start, end) of a period, in UTC."""
    return day_bounds(period.first, tz)[0], day_bounds(period.last, tz)[1]


def local_day(moment: datetime, tz: tzinfo = PARIS) -> date:
    """The local calendar day an aware moment falls on."""
    if moment.tzinfo is None:
        raise ValueError("naive datetimes are not accepted")
    return moment.astimezone(tz).date()


@dataclass(frozen=True, slots=True)
class HourBucket:
    start: datetime  # UTC
    end: datetime  # UTC
    label: str  # local "HH:MM", with the UTC offset when the local hour occurs twice


def hour_buckets(day: date, tz: tzinfo = PARIS) -> list[HourBucket]:
    """One bucket per real hour of the local day: 23, 24 or 25 of them."""
    start, end = day_bounds(day, tz)
    local_starts = []
    moment = start
    while moment < end:
        local_starts.append(moment)
        moment += timedelta(hours=1)
    labels = [m.astimezone(tz).strftime("%H:%M") for m in local_starts]
    buckets = []
    for m, label in zip(local_starts, labels, strict=True):
        if labels.count(label) > 1:
            offset = m.astimezone(tz).strftime("%z")
            label = f"{label} (UTC{offset[:3]}:{offset[3:]})"
        buckets.append(HourBucket(start=m, end=m + timedelta(hours=1), label=label))
    return buckets


# Periods by name, relative to today (the stats API's ``period``; weeks start on Monday).
PERIOD_NAMES = (
    "today",
    "yesterday",
    "this_week",
    "last_week",
    "this_month",
    "last_month",
    "last_7_days",
    "last_30_days",
)


def named_period(name: str, today: date) -> Period:
    """The period called ``name`` (one of :data:`PERIOD_NAMES`) as seen on local day ``today``;
    ``last_7_days`` and ``last_30_days`` end today. Raises ``ValueError`` for another name."""
    one = timedelta(days=1)
    first_of_month = today.replace(day=1)
    monday = today - timedelta(days=today.weekday())
    periods = {
        "today": (today, today),
        "yesterday": (today - one, today - one),
        "this_week": (monday, today),
        "last_week": (monday - 7 * one, monday - one),
        "this_month": (first_of_month, today),
        "last_month": ((first_of_month - one).replace(day=1), first_of_month - one),
        "last_7_days": (today - 6 * one, today),
        "last_30_days": (today - 29 * one, today),
    }
    if name not in periods:
        raise ValueError(f"unknown period {name!r}")
    return Period(*periods[name])
