"""The published figures of one organisation, from the supervisors' report engine.

Nothing is computed here: the figures come from :func:`supervision.rollup.period_report`, the
function the supervisors' report page calls (``build_report`` over the period's interactions,
past days read from their roll-up), with the organisation administrator's scope: one call per
channel, plus all channels together. The public page and the supervisors' report for the same
period and channel therefore show the same numbers (a test checks it).

Periods are whole local months (Europe/Paris, as the supervisors' reports): the last complete
month, and the twelve complete months that end with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache

from interactions.models import Channel
from organisations.authz import Principal, Role
from organisations.models import Organisation
from supervision.access import Scope
from supervision.periods import Period
from supervision.reports import Figures, ReportFilter
from supervision.rollup import period_report

from .commitments import commitments_of

ALL = "all"
CHANNELS: tuple[str, ...] = tuple(Channel.values)
LAST_MONTH, LAST_12_MONTHS = "last_month", "last_12_months"
PERIOD_KEYS = (LAST_MONTH, LAST_12_MONTHS)


def _month_start(day: date) -> date:
    return day.replace(day=1)


def public_periods(today: date) -> dict[str, Period]:
    """The last complete month and the 12 complete months ending with it."""
    last_day = _month_start(today) - timedelta(days=1)
    first_of_last = _month_start(last_day)
    first = first_of_last
    for _ in range(11):
        first = _month_start(first - timedelta(days=1))
    return {
        LAST_MONTH: Period(first_of_last, last_day),
        LAST_12_MONTHS: Period(first, last_day),
    }


def public_scope(organisation: Organisation) -> Scope:
    """What the organisation's administrator sees in the reports (read only)."""
    principal = Principal(role=Role.ORG_ADMIN, organisation_id=organisation.pk, can_write=False)
    return Scope(principal=principal, organisation_id=organisation.pk, team_ids=None)


def channel_figures(organisation: Organisation, period: Period) -> dict[str, Figures]:
    """Channel (and ``all``) -> the report's total for ``period``."""
    scope = public_scope(organisation)
    out = {
        ch: period_report(period, ReportFilter(channel=ch), scope=scope).total for ch in CHANNELS
    }
    out[ALL] = period_report(period, scope=scope).total
    return out


@dataclass(frozen=True)
class ChannelResult:
    """One published line: a channel over a period, with its announced commitment."""

    channel: str
    contacts: int
    offered: int
    answered: int
    answer_rate: float | None
    within_delay_rate: float | None
    average_delay_s: float | None
    satisfaction_rate: float | None
    satisfaction_responses: int
    announced_delay_s: int | None
    answer_rate_target: int | None
    within_delay_target: int | None


@dataclass(frozen=True)
class PeriodResults:
    key: str
    period: Period
    channels: tuple[ChannelResult, ...]


def _result(channel: str, fig: Figures, commitment: Any) -> ChannelResult:
    return ChannelResult(
        channel=channel,
        contacts=fig.arrived,
        offered=fig.offered,
        answered=fig.answered,
        answer_rate=fig.answer_rate,
        within_delay_rate=fig.service_level,
        average_delay_s=fig.asa_s,
        satisfaction_rate=fig.csat,
        satisfaction_responses=fig.csat_responses,
        announced_delay_s=commitment.answer_delay_seconds if commitment else None,
        answer_rate_target=commitment.answer_rate_target if commitment else None,
        within_delay_target=commitment.within_delay_target if commitment else None,
    )


def published_results(organisation: Organisation, today: date) -> list[PeriodResults]:
    """Both periods, every channel then all channels together (cached a few minutes:
    ``PUBLIC_QUALITY_CACHE_SECONDS``, 0 to compute on every request)."""
    ttl = int(getattr(settings, "PUBLIC_QUALITY_CACHE_SECONDS", 600))
    key = f"publicquality:{organisation.pk}:{today.isoformat()}"
    if ttl > 0:
        cached = cache.get(key)
        if cached is not None:
            return list(cached)
    commitments = commitments_of(organisation.pk)
    results = []
    for name, period in public_periods(today).items():
        figures = channel_figures(organisation, period)
        results.append(
            PeriodResults(
                key=name,
                period=period,
                channels=tuple(
                    _result(ch, figures[ch], commitments.get(ch)) for ch in (*CHANNELS, ALL)
                ),
            )
        )
    if ttl > 0:
        cache.set(key, results, ttl)
    return results
