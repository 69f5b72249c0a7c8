"""Report figures (pure: plain dataclasses in, figures out; no Django).

Definitions (docs/supervision.md):

* An interaction counts once, on the local day and in the queue of its **first arrival** in a
  queue (``queued_at``); it is *answered* when an agent first took it (``answered_at``: the first
  move to "in progress"), *abandoned* when the citizen left before any agent took it, *closed
  unanswered* when it was closed with no agent ever taking it, and *pending* otherwise (still
  waiting when the report is read: left out of every rate).
* **Offered** (to the queue) = answered + abandoned + closed unanswered.
* **Service level** = answered within the target / (answered + abandoned after
  ``ABANDON_SHORT_SECONDS``). Citizens who hang up within the first seconds (a wrong number, a
  hang-up during the greeting) count neither for nor against. The target is the interaction's
  own (``sla_due_at - queued_at``, set from its queue when it arrived).
* **ASA** = mean(answered_at - queued_at) over answered interactions.
* **AHT** = mean(closed - answered_at) over answered interactions that are closed: the whole
  handling, wrap-up included.
* **Abandonment rate** = abandoned / offered.
* **Answer rate** (Services Publics+ "taux de décroché") = answered by an agent / needing an
  agent, where needing an agent = offered (every interaction that reached a queue, except those
  still waiting).
* **CSAT** = satisfied answers (4 or 5 out of 5) / survey answers, when there are any.

Figures are additive (:meth:`Figures.__add__`), so the wallboard keeps them as counters updated
event by event (``supervision.stats``) with the per-event deltas below, and a report sums the
deltas of each interaction: both agree by construction.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import date, datetime, tzinfo
from typing import Any, TypeVar

from .periods import PARIS, HourBucket, Period, hour_buckets, local_day

ABANDON_SHORT_SECONDS = 5.0
SATISFIED_FROM = 4  # CSAT: 4 or 5 out of 5


@dataclass(frozen=True, slots=True)
class InteractionFacts:
    """What reports need to know about one interaction (built by ``supervision.selectors``)."""

    interaction_id: int
    channel: str
    queue_id: int | None
    queued_at: datetime
    sla_target_s: float
    answered_at: datetime | None = None
    closed_at: datetime | None = None  # first closure: end of handling (wrap-up included)
    abandoned_at: datetime | None = None
    agent_id: int | None = None  # who answered it (the last agent for a transferred one)
    agent_team_id: int | None = None
    queue_team_id: int | None = None
    csat: int | None = None  # 1..5, when the citizen answered the survey


@dataclass(frozen=True, slots=True)
class Figures:
    """Counters, and the rates computed from them (``None`` when the denominator is 0)."""

    arrived: int = 0
    answered: int = 0
    answered_within_sla: int = 0
    abandoned: int = 0
    abandoned_short: int = 0
    closed_unanswered: int = 0
    wait_sum_s: float = 0.0
    handled: int = 0
    handle_sum_s: float = 0.0
    csat_responses: int = 0
    csat_satisfied: int = 0

    def __add__(self, other: Figures) -> Figures:
        # Spelled out (not a loop over the fields): reports add these once per interaction.
        return Figures(
            self.arrived + other.arrived,
            self.answered + other.answered,
            self.answered_within_sla + other.answered_within_sla,
            self.abandoned + other.abandoned,
            self.abandoned_short + other.abandoned_short,
            self.closed_unanswered + other.closed_unanswered,
            self.wait_sum_s + other.wait_sum_s,
            self.handled + other.handled,
            self.handle_sum_s + other.handle_sum_s,
            self.csat_responses + other.csat_responses,
            self.csat_satisfied + other.csat_satisfied,
        )

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(Figures)}

    @property
    def offered(self) -> int:
        return self.answered + self.abandoned + self.closed_unanswered

    @property
    def service_level(self) -> float | None:
        return _ratio(
            self.answered_within_sla, self.answered + self.abandoned - self.abandoned_short
        )

    @property
    def asa_s(self) -> float | None:
        return _ratio(self.wait_sum_s, self.answered)

    @property
    def aht_s(self) -> float | None:
        return _ratio(self.handle_sum_s, self.handled)

    @property
    def abandonment_rate(self) -> float | None:
        return _ratio(self.abandoned, self.offered)

    @property
    def answer_rate(self) -> float | None:
        """Services Publics+ "taux de décroché": answered / needing an agent."""
        return _ratio(self.answered, self.offered)

    @property
    def csat(self) -> float | None:
        return _ratio(self.csat_satisfied, self.csat_responses)


ZERO = Figures()


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator > 0 else None


# --------------------------------------------------------------------------- per-event deltas
# The wallboard's counters move by exactly these amounts as interactions go through their life;
# figures_of() below sums them for one interaction, so counters == report by construction.


def arrival_delta() -> Figures:
    return Figures(arrived=1)


def answer_delta(*, wait_s: float, sla_target_s: float) -> Figures:
    return Figures(
        answered=1,
        answered_within_sla=1 if wait_s <= sla_target_s else 0,
        wait_sum_s=max(0.0, wait_s),
    )


def abandon_delta(*, wait_s: float) -> Figures:
    return Figures(abandoned=1, abandoned_short=1 if wait_s <= ABANDON_SHORT_SECONDS else 0)


def close_delta(*, handle_s: float | None) -> Figures:
    """A first closure: handled (``handle_s`` from the first answer) or closed unanswered."""
    if handle_s is None:
        return Figures(closed_unanswered=1)
    return Figures(handled=1, handle_sum_s=max(0.0, handle_s))


def csat_delta(score: int) -> Figures:
    return Figures(csat_responses=1, csat_satisfied=1 if score >= SATISFIED_FROM else 0)


def _seconds(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds()


def figures_of(f: InteractionFacts) -> Figures:
    """One interaction's contribution (the sum of the deltas of its life)."""
    total = arrival_delta()
    if f.answered_at is not None:
        total += answer_delta(
            wait_s=_seconds(f.queued_at, f.answered_at), sla_target_s=f.sla_target_s
        )
        if f.closed_at is not None:
            total += close_delta(handle_s=_seconds(f.answered_at, f.closed_at))
    elif f.abandoned_at is not None:
        total += abandon_delta(wait_s=_seconds(f.queued_at, f.abandoned_at))
    elif f.closed_at is not None:
        total += close_delta(handle_s=None)
    if f.csat is not None:
        total += csat_delta(f.csat)
    return total


def summarize(facts: Iterable[InteractionFacts]) -> Figures:
    total = ZERO
    for f in facts:
        total += figures_of(f)
    return total


# --------------------------------------------------------------------------- filters, breakdowns


@dataclass(frozen=True, slots=True)
class ReportFilter:
    """Which interactions a report covers (``None``: no restriction).

    ``team_ids``: interactions of a queue served by one of these teams, or answered by one of
    their agents. ``agent_id``: interactions that agent answered (so nothing is abandoned)."""

    channel: str | None = None
    queue_ids: frozenset[int] | None = None
    team_ids: frozenset[int] | None = None
    agent_id: int | None = None

    def accepts(self, f: InteractionFacts) -> bool:
        if self.channel is not None and f.channel != self.channel:
            return False
        if self.queue_ids is not None and f.queue_id not in self.queue_ids:
            return False
        if self.team_ids is not None and not (
            f.queue_team_id in self.team_ids or f.agent_team_id in self.team_ids
        ):
            return False
        return self.agent_id is None or f.agent_id == self.agent_id


K = TypeVar("K", bound=Hashable)


def breakdown(
    facts: Iterable[InteractionFacts], key: Callable[[InteractionFacts], K]
) -> dict[K, Figures]:
    out: dict[K, Figures] = {}
    for f in facts:
        k = key(f)
        out[k] = out.get(k, ZERO) + figures_of(f)
    return out


@dataclass(frozen=True, slots=True)
class Row:
    """One line of a report table (a day, an hour, a queue...)."""

    label: str
    figures: Figures


@dataclass(frozen=True, slots=True)
class Report:
    period: Period
    total: Figures
    rows: tuple[Row, ...]  # per day, or per hour for a one-day period
    granularity: str  # "day" or "hour"


def build_report(
    facts: Iterable[InteractionFacts],
    period: Period,
    flt: ReportFilter | None = None,
    tz: tzinfo = PARIS,
) -> Report:
    """Figures over ``period`` (local days in ``tz``), in total and per day (per hour for one
    day). Interactions that arrived outside the period are ignored."""
    flt = flt or ReportFilter()
    kept = [
        f
        for f in facts
        if period.first <= local_day(f.queued_at, tz) <= period.last and flt.accepts(f)
    ]
    if period.days == 1:
        buckets = hour_buckets(period.first, tz)
        per_hour = breakdown(kept, lambda f: _bucket_index(buckets, f.queued_at))
        rows = tuple(Row(b.label, per_hour.get(i, ZERO)) for i, b in enumerate(buckets))
        granularity = "hour"
    else:
        per_day = breakdown(kept, lambda f: local_day(f.queued_at, tz))
        rows = tuple(Row(d.isoformat(), per_day.get(d, ZERO)) for d in period.each_day())
        granularity = "day"
    return Report(period=period, total=summarize(kept), rows=rows, granularity=granularity)


def _bucket_index(buckets: Sequence[HourBucket], moment: datetime) -> int:
    for i, b in enumerate(buckets):
        if b.start <= moment < b.end:
            return i
    raise ValueError(f"{moment} is outside the day")  # pragma: no cover - filtered before


def days_of(facts: Iterable[InteractionFacts], tz: tzinfo = PARIS) -> set[date]:
    return {local_day(f.queued_at, tz) for f in facts}


# --------------------------------------------------------------------------- CSV

CSV_COLUMNS = (
    "arrived",
    "offered",
    "answered",
    "answered_within_sla",
    "abandoned",
    "abandoned_short",
    "closed_unanswered",
    "service_level",
    "asa_s",
    "aht_s",
    "abandonment_rate",
    "answer_rate",
    "csat",
    "csat_responses",
)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def figures_cells(fig: Figures) -> list[str]:
    return [_cell(getattr(fig, column)) for column in CSV_COLUMNS]


def report_csv(report: Report, first_column: str) -> str:
    """The report as CSV: one line per row, then the total (machine-readable names, ``.``
    decimals, rates as fractions 0..1, durations in seconds)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([first_column, *CSV_COLUMNS])
    for row in report.rows:
        writer.writerow([row.label, *figures_cells(row.figures)])
    writer.writerow(["total", *figures_cells(report.total)])
    return buffer.getvalue()
