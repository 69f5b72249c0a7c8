"""Business hours with public holidays (pure: no database).

A calendar is plain JSON, stored in a flow's ``business_hours`` node::

    {
      "timezone": "Europe/Paris",
      "weekly": {"mon": [["08:30", "12:30"], ["13:30", "17:00"]], "tue": [...], ...},
      "holidays": {"country": "FR", "subdiv": null},
      "closed_dates": ["2026-12-24"],
      "open_dates": {"2026-12-26": [["09:00", "12:00"]]}
    }

Opening intervals are local wall-clock times in the calendar's time zone, so an instant is first
converted to that zone (``zoneinfo``) and then compared: 08:30 stays 08:30 on both sides of a
daylight-saving change, and the hour that does not exist (02:00-03:00 on the last Sunday of
March) or happens twice (02:00-03:00 on the last Sunday of October) is handled by the conversion.
Public holidays come from the ``holidays`` package (``subdiv`` covers Alsace-Moselle "57", "67",
"68" and the overseas departments). ``open_dates`` overrides the week and holidays for a date.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import date, datetime, time
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import holidays

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_TIMEZONE = "Europe/Paris"


class Opening(enum.StrEnum):
    OPEN = "open"
    CLOSED = "closed"
    HOLIDAY = "holiday"


def parse_hhmm(text: str) -> time:
    hours, minutes = text.split(":")
    if hours == "24" and minutes == "00":
        return time.max
    return time(int(hours), int(minutes))


@lru_cache(maxsize=64)
def _holidays(country: str, subdiv: str | None, year: int) -> holidays.HolidayBase:
    return holidays.country_holidays(country, subdiv=subdiv, years=year)


def holiday_name(calendar: Mapping[str, Any], day: date) -> str | None:
    spec = calendar.get("holidays")
    if not spec:
        return None
    found = _holidays(spec.get("country", "FR"), spec.get("subdiv") or None, day.year).get(day)
    return str(found) if found else None


def _in_intervals(intervals: list[list[str]], moment: time) -> bool:
    return any(parse_hhmm(start) <= moment < parse_hhmm(end) for start, end in intervals)


def opening_at(calendar: Mapping[str, Any], at: datetime) -> Opening:
    """Whether the service is open at the aware instant ``at``."""
    if at.tzinfo is None:
        raise ValueError("opening_at needs a timezone-aware datetime")
    local = at.astimezone(ZoneInfo(calendar.get("timezone") or DEFAULT_TIMEZONE))
    day = local.date()
    moment = local.time().replace(tzinfo=None)
    special = (calendar.get("open_dates") or {}).get(day.isoformat())
    if special is not None:
        return Opening.OPEN if _in_intervals(special, moment) else Opening.CLOSED
    if day.isoformat() in set(calendar.get("closed_dates") or ()):
        return Opening.CLOSED  # a closure of the service, not a public holiday
    if holiday_name(calendar, day) is not None:
        return Opening.HOLIDAY
    weekly = calendar.get("weekly") or {}
    intervals = weekly.get(WEEKDAYS[local.weekday()]) or []
    return Opening.OPEN if _in_intervals(intervals, moment) else Opening.CLOSED
