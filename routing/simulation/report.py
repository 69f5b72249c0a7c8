"""What a run reports: figures of a simulation (and Erlang C's), outcomes of a replay.

Pure: no Django. :func:`format_report` is the text ``manage.py simulate`` prints; the what-if
turns :class:`ReplayOutcome` rows into report figures (``supervision.whatif``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from routing import erlang

from .scenario import Scenario

__all__ = [
    "ErlangPrediction",
    "QueueResult",
    "ReplayOutcome",
    "SimulationResult",
    "erlang_prediction",
    "format_report",
]


@dataclass(frozen=True, slots=True)
class ReplayOutcome:
    """What happened to one contact in a replay (seconds from the period's start)."""

    contact_id: int
    queue_id: int  # the queue it arrived in
    channel: str
    arrival_s: float
    sla_target_s: float
    answered_s: float | None = None
    closed_s: float | None = None
    abandoned_s: float | None = None
    agent_id: int | None = None


@dataclass(frozen=True, slots=True)
class ErlangPrediction:
    agents: int
    traffic_erlangs: float
    service_level: float
    asa_s: float | None
    """None when the load exceeds the agents (the queue grows without bound)."""
    occupancy: float


@dataclass(frozen=True, slots=True)
class QueueResult:
    queue_id: int
    name: str
    offered: int
    answered: int
    abandoned: int
    overflowed: int
    service_level: float | None
    asa_s: float | None
    abandon_rate: float | None
    mean_proficiency: float | None


@dataclass(frozen=True, slots=True)
class SimulationResult:
    scenario: str
    hours: float
    warmup_hours: float
    agents: int
    offered: int
    answered: int
    abandoned: int
    answered_within_sl: int
    abandoned_within_sl: int
    overflowed: int
    unresolved: int
    """Still waiting when events ran out (no agent could ever take them)."""
    service_level: float | None
    service_level_excl_short_abandons: float | None
    asa_s: float | None
    abandon_rate: float | None
    occupancy: float
    mean_proficiency: float | None
    max_wait_s: float
    events: int
    wall_s: float
    queues: tuple[QueueResult, ...]
    rules: Mapping[str, int]
    realized_traffic_erlangs: float = 0.0
    """Handle time of the measured answered contacts / window length."""
    erlang_c: ErlangPrediction | None = None
    """Erlang C at the nominal traffic (single-skill scenarios only)."""
    erlang_c_realized: ErlangPrediction | None = None
    """Erlang C at the traffic this run actually drew (arrival count and mean handle
    time), which removes the sampling noise of the load from the comparison."""

    @property
    def events_per_s(self) -> float:
        return self.events / self.wall_s if self.wall_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary (the last line of ``simulate --json``)."""
        out: dict[str, Any] = {
            "service_level": _r(self.service_level),
            "asa_s": _r(self.asa_s),
            "abandon_rate": _r(self.abandon_rate),
            "occupancy": _r(self.occupancy),
            "mean_proficiency": _r(self.mean_proficiency),
            "service_level_excl_short_abandons": _r(self.service_level_excl_short_abandons),
            "scenario": self.scenario,
            "hours": self.hours,
            "warmup_hours": self.warmup_hours,
            "agents": self.agents,
            "offered": self.offered,
            "answered": self.answered,
            "abandoned": self.abandoned,
            "answered_within_sl": self.answered_within_sl,
            "overflowed": self.overflowed,
            "unresolved": self.unresolved,
            "max_wait_s": _r(self.max_wait_s),
            "events": self.events,
            "events_per_s": round(self.events_per_s),
            "rules": dict(sorted(self.rules.items())),
            "queues": [
                {
                    "queue_id": q.queue_id,
                    "name": q.name,
                    "offered": q.offered,
                    "answered": q.answered,
                    "abandoned": q.abandoned,
                    "overflowed": q.overflowed,
                    "service_level": _r(q.service_level),
                    "asa_s": _r(q.asa_s),
                    "abandon_rate": _r(q.abandon_rate),
                    "mean_proficiency": _r(q.mean_proficiency),
                }
                for q in self.queues
            ],
        }
        out["realized_traffic_erlangs"] = _r(self.realized_traffic_erlangs)
        if self.erlang_c is not None:
            out["erlang_c"] = _erlang_dict(self.erlang_c)
            if self.erlang_c_realized is not None:
                out["erlang_c"]["at_realized_load"] = _erlang_dict(self.erlang_c_realized)
        return out


def _erlang_dict(e: ErlangPrediction) -> dict[str, Any]:
    return {
        "service_level": _r(e.service_level),
        "asa_s": _r(e.asa_s),
        "occupancy": _r(e.occupancy),
        "traffic_erlangs": _r(e.traffic_erlangs),
        "agents": e.agents,
    }


def _r(v: float | None, nd: int = 4) -> float | None:
    if v is None or math.isnan(v) or math.isinf(v):
        return None
    return round(v, nd)


def ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def erlang_prediction(
    scenario: Scenario, arrivals_per_hour: float | None = None, aht_s: float | None = None
) -> ErlangPrediction | None:
    """Erlang C figures for a single-queue, single-skill scenario (else None), at the
    scenario's nominal traffic or at the given one."""
    if not scenario.erlang_comparable():
        return None
    q = scenario.queues[0]
    n = scenario.agent_count
    rate = erlang.per_hour(q.arrivals_per_hour if arrivals_per_hour is None else arrivals_per_hour)
    aht = q.aht_s if aht_s is None else aht_s
    a = erlang.traffic_erlangs(rate, aht)
    sl_t = q.sl_seconds if q.sl_seconds is not None else scenario.sl_seconds
    asa = erlang.asa(n, rate, aht)
    return ErlangPrediction(
        agents=n,
        traffic_erlangs=a,
        service_level=erlang.service_level(n, rate, aht, sl_t),
        asa_s=None if math.isinf(asa) else asa,
        occupancy=erlang.occupancy(n, rate, aht),
    )


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f} %"


def _sec(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1f} s"


def format_report(result: SimulationResult, gettext: Callable[[str], str] = lambda s: s) -> str:
    """Human-readable report. ``gettext`` translates the labels (Django's in the command)."""
    _ = gettext
    lines = [
        _("Scenario: %(name)s — %(agents)d agents, %(hours)g h simulated (%(warm)g h warm-up)")
        % {
            "name": result.scenario,
            "agents": result.agents,
            "hours": result.hours,
            "warm": round(result.warmup_hours, 3),
        },
        _("Offered %(o)d, answered %(a)d, abandoned %(x)d, overflowed %(f)d")
        % {
            "o": result.offered,
            "a": result.answered,
            "x": result.abandoned,
            "f": result.overflowed,
        },
        _("Service level: %(v)s (answered within the target / offered; hang-ups count as missed)")
        % {"v": _pct(result.service_level)},
        _("Average speed of answer: %(v)s") % {"v": _sec(result.asa_s)},
        _("Abandonment: %(v)s") % {"v": _pct(result.abandon_rate)},
        _("Occupancy: %(v)s") % {"v": _pct(result.occupancy)},
        _("Mean proficiency of the chosen agent: %(v)s")
        % {"v": "n/a" if result.mean_proficiency is None else f"{result.mean_proficiency:.2f} / 5"},
    ]
    if len(result.queues) > 1:
        lines.append(_("Per queue:"))
        for q in result.queues:
            lines.append(
                "  "
                + _(
                    "%(name)s: offered %(o)d, SL %(sl)s, ASA %(asa)s, abandoned %(ab)s, "
                    "overflowed %(f)d, proficiency %(p)s"
                )
                % {
                    "name": q.name,
                    "o": q.offered,
                    "sl": _pct(q.service_level),
                    "asa": _sec(q.asa_s),
                    "ab": _pct(q.abandon_rate),
                    "f": q.overflowed,
                    "p": "n/a" if q.mean_proficiency is None else f"{q.mean_proficiency:.2f}",
                }
            )
    if result.erlang_c is not None:
        e = result.erlang_c
        lines.append(
            _(
                "Erlang C (%(a).1f Erlangs on %(n)d agents, no abandonment): "
                "service level %(sl)s, ASA %(asa)s, occupancy %(occ)s"
            )
            % {
                "a": e.traffic_erlangs,
                "n": e.agents,
                "sl": _pct(e.service_level),
                "asa": _sec(e.asa_s),
                "occ": _pct(e.occupancy),
            }
        )
    lines.append(
        _("%(n)d events in %(s).2f s (%(r)d events/s)")
        % {"n": result.events, "s": result.wall_s, "r": round(result.events_per_s)}
    )
    return "\n".join(lines)
