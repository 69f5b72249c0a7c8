"""Reports over weeks, months and years without scanning the interactions.

A past local day (before today in Europe/Paris) is rolled up once into
:class:`~supervision.models.ReportDayStats`: the report figures of its interactions (the very
``figures_of`` a report sums), per organisation, queue, channel, agent and "answered". Every
report filter and supervision scope is a condition on those keys, so a multi-day report is one
``GROUP BY day`` over a few hundred rows per day, plus today's interactions read as before.

A day's roll-up holds its **settled** interactions only: those still waiting (queued or
offered) are left out and read from the interactions by each report, with today's
(``selectors.live_report_facts``; the waiting index makes it a read of the current backlog).
They are the only ones the router claims, in bulk and without reading their arrival day, so a
claim needs no invalidation and the claim path reads nothing for it.

The roll-up of a day is dropped (its :class:`~supervision.models.ReportDay` row deleted) after
any other change of an interaction that arrived that day: a status change (but one between
"queued" and "offered", which keeps it out of the roll-up), an auto-accepted claim (an answer)
or a survey answer (``supervision.stats`` calls :func:`invalidate_after_commit`); the next
report that needs the day rebuilds it from the interactions. A rebuild and an invalidation of
the same day take the same advisory lock, so a rebuild that read the day before a change
committed is always followed by that change's invalidation. ``manage.py rebuild_report_days``
rebuilds a range of days at once (after generating or importing history, or nightly for
yesterday).

One-day reports (per hour) are computed from the interactions, as are the days from today on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from django.db import connection, transaction
from django.db.models import Q, Sum
from django.utils import timezone

from agents.models import AgentProfile
from configuration.models import Queue
from interactions.models import Interaction

from .access import Scope
from .models import ReportDay, ReportDayStats
from .periods import PARIS, Period, day_bounds, local_day, period_bounds
from .reports import ZERO, Figures, Report, ReportFilter, Row, breakdown, build_report
from .selectors import live_report_facts, report_facts

logger = logging.getLogger(__name__)

COUNTERS = tuple(Figures.__dataclass_fields__)
LOCK_CLASS = 0x5245  # pg_advisory_xact_lock(LOCK_CLASS, day ordinal): one lock per report day


def today(now: datetime | None = None) -> date:
    return local_day(now or timezone.now(), PARIS)


def _lock_day(day: date) -> None:
    if connection.vendor != "postgresql":
        return  # SQLite (the embedded default) lets one writer at a time in: nothing can cross
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [LOCK_CLASS, day.toordinal()])


# --------------------------------------------------------------------------- building


def build_day(day: date) -> int:
    """Roll up one local day from the interactions (returns the rows written)."""
    start, end = day_bounds(day, PARIS)
    with transaction.atomic():
        _lock_day(day)
        facts = report_facts(start, end, settled_only=True)
        owners = {
            pk: (org, agent or 0)
            for pk, org, agent in Interaction.objects.filter(
                pk__in=[f.interaction_id for f in facts]
            ).values_list("pk", "organisation_id", "assigned_agent_id")
            if facts
        }

        def key(f: Any) -> tuple[int, int, str, int, bool]:
            org, agent = owners[f.interaction_id]
            return (org, f.queue_id or 0, f.channel, agent, f.answered_at is not None)

        per_key = breakdown(facts, key)
        write_day_stats({(day, *k): fig for k, fig in per_key.items()}, [day], timezone.now())
    return len(per_key)


RollupKey = tuple[date, int, int, str, int, bool]  # day, org, queue, channel, agent, answered


def write_day_stats(rows: dict[RollupKey, Figures], days: list[date], built_at: datetime) -> None:
    """Replace the rolled-up rows of ``days`` with ``rows`` and mark those days built (the one
    writer of :class:`ReportDayStats`: the day's build here, the history generator's bulk
    load). Call it inside a transaction."""
    ReportDayStats.objects.filter(day__in=days).delete()
    ReportDayStats.objects.bulk_create(
        (
            ReportDayStats(
                day=day,
                organisation_key=org,
                queue_key=queue_key,
                channel=channel,
                agent_key=agent_key,
                answered_by_agent=answered,
                **fig.as_dict(),
            )
            for (day, org, queue_key, channel, agent_key, answered), fig in rows.items()
        ),
        batch_size=5000,
    )
    ReportDay.objects.bulk_create(
        [ReportDay(day=day, built_at=built_at) for day in days],
        update_conflicts=True,
        unique_fields=["day"],
        update_fields=["built_at"],
    )


def ensure_built(days: Iterable[date]) -> list[date]:
    """Roll up those of ``days`` that are not (or no longer) rolled up; returns them."""
    wanted = sorted(set(days))
    if not wanted:
        return []
    built = set(
        ReportDay.objects.filter(day__gte=wanted[0], day__lte=wanted[-1]).values_list(
            "day", flat=True
        )
    )
    missing = [d for d in wanted if d not in built]
    for day in missing:
        build_day(day)
    return missing


def invalidate(day: date) -> None:
    """Forget a day's roll-up (something of that day changed)."""
    with transaction.atomic():
        _lock_day(day)
        ReportDay.objects.filter(day=day).delete()


def invalidate_after_commit(queued_at: datetime | None, now: datetime | None = None) -> None:
    """After the current transaction commits, forget the roll-up of the day ``queued_at`` is in
    (nothing for today's interactions: today is never rolled up)."""
    if queued_at is None:
        return
    day = local_day(queued_at, PARIS)
    if day >= today(now):
        return

    def apply() -> None:
        try:
            invalidate(day)
        except Exception:  # a report must never break a write; rebuild_report_days repairs
            logger.exception("report roll-up of %s not invalidated", day)

    transaction.on_commit(apply)


# --------------------------------------------------------------------------- reading


def _rows_filter(flt: ReportFilter, scope: Scope | None) -> Q:
    """The rolled-up rows a scope sees and a filter keeps (the same rules as
    ``Scope.interactions`` and ``ReportFilter.accepts`` on the interactions)."""
    cond = Q()
    if scope is not None:
        if scope.sees_nothing:
            return Q(pk__in=[])
        if scope.organisation_id is not None:
            cond &= Q(organisation_key=scope.organisation_id)
        elif not scope.principal.is_platform_admin:
            return Q(pk__in=[])
        if scope.team_ids is not None:
            cond &= Q(queue_key__in=list(scope.queues().values_list("pk", flat=True))) | Q(
                agent_key__in=list(scope.agents().values_list("pk", flat=True))
            )
    if flt.channel is not None:
        cond &= Q(channel=flt.channel)
    if flt.queue_ids is not None:
        cond &= Q(queue_key__in=[q or 0 for q in flt.queue_ids])
    if flt.team_ids is not None:
        teams = list(flt.team_ids)
        queues = list(Queue.objects.filter(team_id__in=teams).values_list("pk", flat=True))
        agents = list(AgentProfile.objects.filter(team_id__in=teams).values_list("pk", flat=True))
        cond &= Q(queue_key__in=queues) | Q(answered_by_agent=True, agent_key__in=agents)
    if flt.agent_id is not None:
        cond &= Q(answered_by_agent=True, agent_key=flt.agent_id)
    return cond


def rolled_up_days(
    first: date, last: date, flt: ReportFilter, scope: Scope | None
) -> dict[date, Figures]:
    """Day -> figures of the rolled-up days ``first`` .. ``last`` (built first if needed)."""
    ensure_built(Period(first, last).each_day())
    sums = {name: Sum(name) for name in COUNTERS}
    rows = (
        ReportDayStats.objects.filter(_rows_filter(flt, scope), day__gte=first, day__lte=last)
        .values("day")
        .annotate(**sums)
        .order_by("day")
    )
    return {r["day"]: Figures(**{name: r[name] for name in COUNTERS}) for r in rows}


def period_report(
    period: Period,
    flt: ReportFilter | None = None,
    *,
    scope: Scope | None = None,
    now: datetime | None = None,
) -> Report:
    """The report of ``period``, equal to ``build_report`` over its interactions: past days
    from the roll-up, today (and a one-day period, per hour) from the interactions."""
    flt = flt or ReportFilter()
    current = today(now)
    if period.days == 1 or period.first >= current:
        start, end = period_bounds(period)
        return build_report(report_facts(start, end, scope=scope), period, flt)
    last_past = min(period.last, date.fromordinal(current.toordinal() - 1))
    per_day = rolled_up_days(period.first, last_past, flt, scope)
    # Today (when the period reaches it), and the past days' contacts still waiting, which
    # their days' roll-ups leave out, from the interactions: one read for both.
    past_start, end = period_bounds(period)
    today_start = day_bounds(date.fromordinal(last_past.toordinal() + 1), PARIS)[0]
    live = live_report_facts(past_start, min(today_start, end), end, scope=scope)
    kept = [f for f in live if flt.accepts(f)]
    for day, figures in breakdown(kept, lambda f: local_day(f.queued_at, PARIS)).items():
        per_day[day] = per_day.get(day, ZERO) + figures
    rows = tuple(Row(d.isoformat(), per_day.get(d, ZERO)) for d in period.each_day())
    total = ZERO
    for row in rows:
        total += row.figures
    return Report(period=period, total=total, rows=rows, granularity="day")
