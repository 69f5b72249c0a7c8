"""Discrete-event contact-centre simulation in virtual time.

The simulator routes with the production code: :class:`routing.matching.AgentIndex`
picks the agent when a contact arrives or reaches an escalation step,
:class:`routing.matching.WaitingIndex` picks the contact when an agent frees up, and
the escalation/overflow decisions come from :mod:`routing.policy`. Nothing is
re-implemented here except the world around them (arrivals, handle times, patience).

Model
-----
* Poisson arrivals per queue; handle times exponential or lognormal (mean ``aht_s``,
  coefficient of variation ``handle_cv``); patience exponential with mean
  ``patience_s`` (None = nobody hangs up).
* Agents are always logged in and available on their channels, with per-channel
  capacity (voice exclusive); no after-call work, no declines.
* After an overflow the contact takes the target queue's skills, priority and team
  and its escalation clock restarts; its wait (for the service level) does not.

Measured over contacts *arriving* in ``[warm-up, end)``; arrivals stop at the end
and the run continues until every measured contact is answered or has hung up, so
nothing is censored.

* service level = answered within the queue's threshold / offered, where offered =
  answered + abandoned: a contact that hangs up, even before the threshold, counts
  against the service level. Without abandonment this is exactly Erlang C's
  ``P(wait <= t)``. ``service_level_excl_short_abandons`` is the other common
  variant (abandons before the threshold removed from the denominator).
* ASA = mean wait of answered contacts (immediate answers count as 0 s), which is
  Erlang C's ASA when nobody abandons.
* occupancy = time-average share of agents handling at least one contact, over the
  measurement window.
* mean proficiency = mean level of the chosen agent on the contact's required skills
  (contacts without required skills are left out).

No Django import here; ``routing/management/commands/simulate.py`` is a thin wrapper
around :func:`run_simulation`, :func:`format_report` and :func:`add_arguments`.
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from routing import erlang
from routing.matching import AgentIndex, WaitingIndex
from routing.policy import (
    DEFAULT_CAPACITY,
    OVERFLOW,
    AgentSnapshot,
    EscalationStep,
    InteractionSnapshot,
    PolicyConfig,
    Requirements,
    proficiency,
    requirements_at_step,
    step_index,
    validate_steps,
)

__all__ = [
    "AgentGroupSpec",
    "ErlangPrediction",
    "QueueResult",
    "QueueSpec",
    "Scenario",
    "SimulateOptions",
    "SimulationResult",
    "Simulator",
    "add_arguments",
    "build_scenario",
    "format_report",
    "main",
    "options_from_mapping",
    "run_simulation",
    "simulate",
    "single_skill_scenario",
]

ProgressCallback = Callable[[float, float], None]
"""Called as ``progress(virtual_now_s, virtual_end_s)`` every few thousand events."""

HANDLE_DISTS: Final = ("exp", "lognormal")

_ARRIVAL: Final = 0
_END: Final = 1
_ABANDON: Final = 2
_ESCALATE: Final = 3


# =========================================================================== scenario


@dataclass(frozen=True, slots=True)
class QueueSpec:
    """One queue: its traffic and what its contacts need."""

    queue_id: int
    name: str
    arrivals_per_hour: float
    aht_s: float
    channel: str = "voice"
    required_skills: Mapping[str, int] = field(default_factory=dict)
    language_mix: Mapping[str, float] = field(default_factory=dict)
    """Language -> share of contacts; empty = no language requirement."""
    base_priority: int = 0
    sl_seconds: float | None = None
    """Answer target; None = the scenario's ``sl_seconds``."""
    patience_s: float | None = None
    """Mean (exponential) patience; None or 0 = infinite."""
    handle_dist: str = "exp"
    handle_cv: float = 1.0
    """Coefficient of variation of lognormal handle times (exp is always 1)."""
    team_id: int | None = None
    escalation: tuple[EscalationStep, ...] = ()

    def __post_init__(self) -> None:
        if self.arrivals_per_hour < 0 or self.aht_s <= 0:
            raise ValueError(f"queue {self.name}: arrivals must be >= 0 and aht_s > 0")
        if self.handle_dist not in HANDLE_DISTS:
            raise ValueError(f"queue {self.name}: handle_dist must be one of {HANDLE_DISTS}")
        if self.handle_cv <= 0:
            raise ValueError(f"queue {self.name}: handle_cv must be > 0")
        validate_steps(self.escalation)


@dataclass(frozen=True, slots=True)
class AgentGroupSpec:
    """``count`` identical agents (levels may be drawn from a range per agent)."""

    name: str
    count: int
    skills: Mapping[str, int | tuple[int, int]] = field(default_factory=dict)
    """Skill -> level, or (low, high) to draw each agent's level uniformly."""
    languages: frozenset[str] = frozenset({"fr"})
    channels: frozenset[str] = frozenset({"voice"})
    capacity: Mapping[str, int] = field(default_factory=dict)
    """Channel -> max concurrent; missing channels use DEFAULT_CAPACITY."""
    team_id: int | None = None


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    queues: tuple[QueueSpec, ...]
    agent_groups: tuple[AgentGroupSpec, ...]
    hours: float = 8.0
    warmup_hours: float | None = None
    """Discarded start-up period; None = 10 % of the run, at most 1 h."""
    sl_seconds: float = 20.0
    seed: int = 1
    description: str = ""
    policy: PolicyConfig = field(default_factory=PolicyConfig)

    def __post_init__(self) -> None:
        if not self.queues:
            raise ValueError("a scenario needs at least one queue")
        if self.hours <= 0:
            raise ValueError("hours must be > 0")
        ids = [q.queue_id for q in self.queues]
        if len(set(ids)) != len(ids):
            raise ValueError("queue ids must be unique")
        by_id = {q.queue_id: q for q in self.queues}
        for q in self.queues:
            for s in q.escalation:
                target = s.overflow_queue_id
                if target is None:
                    continue
                if target not in by_id:
                    raise ValueError(f"queue {q.name}: overflow to unknown queue {target}")
                if by_id[target].channel != q.channel:
                    raise ValueError(f"queue {q.name}: overflow must stay on {q.channel}")

    @property
    def warmup_s(self) -> float:
        if self.warmup_hours is not None:
            return self.warmup_hours * 3600.0
        return min(3600.0, 0.1 * self.hours * 3600.0)

    @property
    def agent_count(self) -> int:
        return sum(g.count for g in self.agent_groups)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Scenario:
        """Build from the JSON format of ``scenarios/*.json``."""
        queues = tuple(_queue_from_dict(q) for q in data["queues"])
        groups = tuple(_group_from_dict(g) for g in data["agent_groups"])
        policy = PolicyConfig(**data.get("policy", {}))
        return cls(
            name=str(data.get("name", "scenario")),
            description=str(data.get("description", "")),
            queues=queues,
            agent_groups=groups,
            hours=float(data.get("hours", 8.0)),
            warmup_hours=_opt_float(data.get("warmup_hours")),
            sl_seconds=float(data.get("sl_seconds", 20.0)),
            seed=int(data.get("seed", 1)),
            policy=policy,
        )

    @classmethod
    def load(cls, path: str | Path) -> Scenario:
        with open(path, encoding="utf-8") as fh:
            return cls.from_dict(json.load(fh))

    def erlang_comparable(self) -> bool:
        """One queue, no escalation, every agent eligible and serving one contact at a
        time on its channel: the M/M/N assumptions Erlang C rests on (apart from
        patience and handle-time distribution, which the caller judges)."""
        if len(self.queues) != 1:
            return False
        q = self.queues[0]
        if q.escalation or q.team_id is not None or len(q.language_mix) > 1:
            return False
        for g in self.agent_groups:
            if q.channel not in g.channels or _capacity(g).get(q.channel, 0) != 1:
                return False
            for lang in q.language_mix:
                if lang not in g.languages:
                    return False
            for code, need in q.required_skills.items():
                lv = g.skills.get(code)
                if lv is None or (lv[0] if isinstance(lv, tuple) else lv) < need:
                    return False
        return True


def _opt_float(v: Any) -> float | None:
    return None if v is None else float(v)


def _step_from_dict(d: Mapping[str, Any]) -> EscalationStep:
    return EscalationStep(
        after_seconds=float(d["after_seconds"]),
        min_level_cap=d.get("min_level_cap"),
        drop_skills=frozenset(d.get("drop_skills", ())),
        any_agent_of_team=d.get("any_agent_of_team"),
        overflow_queue_id=d.get("overflow_queue_id"),
    )


def _queue_from_dict(d: Mapping[str, Any]) -> QueueSpec:
    patience = _opt_float(d.get("patience_s"))
    return QueueSpec(
        queue_id=int(d["id"]),
        name=str(d.get("name", d["id"])),
        arrivals_per_hour=float(d["arrivals_per_hour"]),
        aht_s=float(d["aht_s"]),
        channel=str(d.get("channel", "voice")),
        required_skills={str(k): int(v) for k, v in d.get("required_skills", {}).items()},
        language_mix={str(k): float(v) for k, v in d.get("language_mix", {}).items()},
        base_priority=int(d.get("base_priority", 0)),
        sl_seconds=_opt_float(d.get("sl_seconds")),
        patience_s=patience if patience else None,
        handle_dist=str(d.get("handle_dist", "exp")),
        handle_cv=float(d.get("handle_cv", 1.0)),
        team_id=d.get("team_id"),
        escalation=tuple(_step_from_dict(s) for s in d.get("escalation", ())),
    )


def _group_from_dict(d: Mapping[str, Any]) -> AgentGroupSpec:
    skills: dict[str, int | tuple[int, int]] = {}
    for code, lv in d.get("skills", {}).items():
        skills[str(code)] = (int(lv[0]), int(lv[1])) if isinstance(lv, list | tuple) else int(lv)
    return AgentGroupSpec(
        name=str(d["name"]),
        count=int(d["count"]),
        skills=skills,
        languages=frozenset(d.get("languages", ["fr"])),
        channels=frozenset(d.get("channels", ["voice"])),
        capacity={str(k): int(v) for k, v in d.get("capacity", {}).items()},
        team_id=d.get("team_id"),
    )


def _capacity(g: AgentGroupSpec) -> dict[str, int]:
    return {ch: int(g.capacity.get(ch, DEFAULT_CAPACITY.get(ch, 1))) for ch in g.channels}


def single_skill_scenario(
    agents: int,
    calls_per_hour: float,
    aht_s: float,
    *,
    sl_seconds: float = 20.0,
    hours: float = 8.0,
    seed: int = 1,
    patience_s: float | None = None,
    handle_dist: str = "exp",
    handle_cv: float = 1.0,
    warmup_hours: float | None = None,
) -> Scenario:
    """One voice queue needing skill ``general`` (level 1), ``agents`` agents at level 3:
    the M/M/N (or M/G/N+M with patience/lognormal) set-up Erlang C describes."""
    return Scenario(
        name="single-skill",
        description=f"{agents} agents, {calls_per_hour:g} calls/h, AHT {aht_s:g} s",
        queues=(
            QueueSpec(
                queue_id=1,
                name="accueil",
                arrivals_per_hour=calls_per_hour,
                aht_s=aht_s,
                required_skills={"general": 1},
                patience_s=patience_s or None,
                handle_dist=handle_dist,
                handle_cv=handle_cv,
            ),
        ),
        agent_groups=(AgentGroupSpec(name="agents", count=agents, skills={"general": 3}),),
        hours=hours,
        warmup_hours=warmup_hours,
        sl_seconds=sl_seconds,
        seed=seed,
    )


# =========================================================================== results


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


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


# =========================================================================== engine


class _QueueStats:
    __slots__ = (
        "abandoned",
        "abandoned_within",
        "answered",
        "answered_within",
        "handle_sum",
        "overflowed",
        "prof_n",
        "prof_sum",
        "unresolved",
        "wait_sum",
    )

    def __init__(self) -> None:
        self.unresolved = 0
        self.answered = 0
        self.answered_within = 0
        self.abandoned = 0
        self.abandoned_within = 0
        self.overflowed = 0
        self.wait_sum = 0.0
        self.handle_sum = 0.0
        self.prof_sum = 0.0
        self.prof_n = 0


class Simulator:
    """One run of a :class:`Scenario`. Use :meth:`run` once."""

    def __init__(
        self,
        scenario: Scenario,
        *,
        progress: ProgressCallback | None = None,
        progress_every: int = 8192,
    ) -> None:
        self.scenario = scenario
        self.progress = progress
        self.progress_every = max(1, progress_every)
        self.rng = random.Random(scenario.seed)  # noqa: S311 - simulation, not crypto
        self.config = scenario.policy
        self.queues: dict[int, QueueSpec] = {q.queue_id: q for q in scenario.queues}
        self.steps: dict[int, tuple[EscalationStep, ...]] = {
            q.queue_id: q.escalation for q in scenario.queues
        }
        self.agents = AgentIndex(self._make_agents(), self.config)
        self.waiting = WaitingIndex(self.config, self.steps)
        self.end = scenario.hours * 3600.0
        self.warm = min(scenario.warmup_s, self.end * 0.5)
        self.events: list[tuple[float, int, int, int, int, int]] = []
        self._channels: list[str] = sorted({q.channel for q in scenario.queues})
        self._channel_code = {ch: i for i, ch in enumerate(self._channels)}
        self._seq = 0
        self._next_id = 0
        # waiting contact -> (origin queue id, arrival time, measured?)
        self._meta: dict[int, tuple[int, float, bool]] = {}
        self._stats: dict[int, _QueueStats] = {q: _QueueStats() for q in self.queues}
        self._rules: Counter[str] = Counter()
        self._req_cache: dict[tuple[int, str | None, int], Requirements] = {}
        self._busy = 0
        self._busy_area = 0.0
        self._last_t = 0.0
        self._max_wait = 0.0
        self._handle: dict[int, tuple[str, float, float]] = {}
        for q in scenario.queues:
            if q.handle_dist == "lognormal":
                sigma2 = math.log(1.0 + q.handle_cv**2)
                self._handle[q.queue_id] = (
                    "lognormal",
                    math.log(q.aht_s) - sigma2 / 2.0,
                    math.sqrt(sigma2),
                )
            else:
                self._handle[q.queue_id] = ("exp", 1.0 / q.aht_s, 0.0)
        self._lang_mix: dict[int, tuple[list[str], list[float]]] = {}
        for q in scenario.queues:
            if q.language_mix:
                langs = sorted(q.language_mix)
                total = sum(q.language_mix[x] for x in langs)
                cum, acc = [], 0.0
                for x in langs:
                    acc += q.language_mix[x] / total
                    cum.append(acc)
                self._lang_mix[q.queue_id] = (langs, cum)

    def _make_agents(self) -> list[AgentSnapshot]:
        out: list[AgentSnapshot] = []
        aid = 0
        for g in self.scenario.agent_groups:
            cap = _capacity(g)
            for _ in range(g.count):
                aid += 1
                skills = {
                    code: (self.rng.randint(lv[0], lv[1]) if isinstance(lv, tuple) else lv)
                    for code, lv in g.skills.items()
                }
                out.append(
                    AgentSnapshot(
                        agent_id=aid,
                        skills=skills,
                        languages=g.languages,
                        team_id=g.team_id,
                        present=True,
                        available_channels=g.channels,
                        capacity=cap,
                        idle_since=0.0,
                    )
                )
        return out

    # ---------------------------------------------------------------- helpers

    def _push(self, t: float, kind: int, a: int, b: int = 0, c: int = 0) -> None:
        self._seq += 1
        heapq.heappush(self.events, (t, self._seq, kind, a, b, c))

    def _advance(self, t: float) -> None:
        lo = self._last_t if self._last_t > self.warm else self.warm
        hi = t if t < self.end else self.end
        if hi > lo:
            self._busy_area += self._busy * (hi - lo)
        self._last_t = t

    def _handle_time(self, queue_id: int) -> float:
        kind, p1, p2 = self._handle[queue_id]
        if kind == "exp":
            return self.rng.expovariate(p1)
        return self.rng.lognormvariate(p1, p2)

    def _requirements(self, ix: InteractionSnapshot, now: float) -> Requirements:
        """Effective requirements (same as policy.effective_requirements), cached per
        (queue, language, step) since every contact of a queue shares them."""
        steps = self.steps.get(ix.queue_id, ())
        idx = step_index(steps, now - ix.escalation_clock_start) if steps else -1
        key = (ix.queue_id, ix.language, idx)
        req = self._req_cache.get(key)
        if req is None:
            req = self._req_cache[key] = requirements_at_step(
                ix.channel, ix.required_skills, ix.language, ix.team_id, steps, idx
            )
        return req

    def _schedule_escalations(self, ix: InteractionSnapshot) -> None:
        start = ix.escalation_clock_start
        for k, step in enumerate(self.steps.get(ix.queue_id, ())):
            self._push(start + step.after_seconds, _ESCALATE, ix.interaction_id, k, ix.queue_id)

    def _start(
        self, ix: InteractionSnapshot, agent_id: int, now: float, prof: float | None
    ) -> None:
        origin, arrived, measured = self._meta.pop(ix.interaction_id)
        if self.agents.total_load(agent_id) == 0:
            self._advance(now)
            self._busy += 1
        self.agents.assign(agent_id, ix.channel, now)
        code = self._channel_code[ix.channel]
        handle = self._handle_time(origin)
        self._push(now + handle, _END, agent_id, code)
        if not measured:
            return
        wait = now - arrived
        st = self._stats[origin]
        st.answered += 1
        st.handle_sum += handle
        st.wait_sum += wait
        if wait > self._max_wait:
            self._max_wait = wait
        if wait <= self._sl_of(origin):
            st.answered_within += 1
        if prof is not None and self.queues[origin].required_skills:
            st.prof_sum += prof
            st.prof_n += 1

    def _sl_of(self, queue_id: int) -> float:
        q = self.queues[queue_id]
        return q.sl_seconds if q.sl_seconds is not None else self.scenario.sl_seconds

    def _fill_agent(self, agent_id: int, now: float) -> None:
        """Work-conserving: give a freed agent waiting work while it has capacity."""
        while self.waiting and self.agents.ready_channels(agent_id):
            snap = self.agents.snapshot(agent_id)
            choice = self.waiting.best_for_agent(snap, now)
            if choice is None:
                return
            ix = choice.interaction
            self.waiting.remove(ix.interaction_id)
            self._rules[choice.rule] += 1
            self._start(ix, agent_id, now, proficiency(snap, ix.required_skills))

    # ---------------------------------------------------------------- events

    def _on_arrival(self, now: float, queue_id: int) -> None:
        q = self.queues[queue_id]
        rate = q.arrivals_per_hour / 3600.0
        nxt = now + self.rng.expovariate(rate)
        if nxt < self.end:
            self._push(nxt, _ARRIVAL, queue_id)
        self._next_id += 1
        iid = self._next_id
        lang: str | None = None
        mix = self._lang_mix.get(queue_id)
        if mix is not None:
            u = self.rng.random()
            langs, cum = mix
            lang = langs[-1]
            for x, c in zip(langs, cum, strict=True):
                if u < c:
                    lang = x
                    break
        ix = InteractionSnapshot(
            interaction_id=iid,
            channel=q.channel,
            queue_id=queue_id,
            enqueued_at=now,
            required_skills=q.required_skills,
            language=lang,
            base_priority=q.base_priority,
            sla_due_at=now + self._sl_of(queue_id),
            team_id=q.team_id,
        )
        self._meta[iid] = (queue_id, now, now >= self.warm)
        self._route_new(ix, now)

    def _route_new(self, ix: InteractionSnapshot, now: float) -> None:
        d = self.agents.decide_with_requirements(
            ix, self._requirements(ix, now), now, explain=False
        )
        if d.agent_id is not None:
            self._rules[d.rule] += 1
            self._start(ix, d.agent_id, now, d.proficiency)
            return
        self.waiting.add(ix)
        origin = self._meta[ix.interaction_id][0]
        patience = self.queues[origin].patience_s
        if patience and ix.queue_entered_at is None:
            self._push(now + self.rng.expovariate(1.0 / patience), _ABANDON, ix.interaction_id)
        self._schedule_escalations(ix)

    def _on_end(self, now: float, agent_id: int, channel: str) -> None:
        self.agents.release(agent_id, channel, now)
        if self.agents.total_load(agent_id) == 0:
            self._advance(now)
            self._busy -= 1
        self._fill_agent(agent_id, now)

    def _on_abandon(self, now: float, iid: int) -> None:
        if self.waiting.remove(iid) is None:
            return
        origin, arrived, measured = self._meta.pop(iid)
        if measured:
            st = self._stats[origin]
            st.abandoned += 1
            if now - arrived <= self._sl_of(origin):
                st.abandoned_within += 1

    def _on_escalate(self, now: float, iid: int, step: int, queue_id: int) -> None:
        ix = self.waiting.get(iid)
        if ix is None or ix.queue_id != queue_id:
            return
        steps = self.steps.get(ix.queue_id, ())
        start = ix.escalation_clock_start
        if step >= len(steps) or start + steps[step].after_seconds != now:
            return  # stale: the contact changed queue since this was scheduled
        d = self.agents.decide_with_requirements(
            ix, self._requirements(ix, now), now, explain=False
        )
        if d.agent_id is not None:
            self.waiting.remove(iid)
            self._rules[d.rule] += 1
            self._start(ix, d.agent_id, now, d.proficiency)
        elif d.action == OVERFLOW and d.overflow_queue_id is not None:
            target = self.queues[d.overflow_queue_id]
            self.waiting.remove(iid)
            origin, _arrived, measured = self._meta[iid]
            if measured:
                self._stats[origin].overflowed += 1
            moved = replace(
                ix,
                queue_id=target.queue_id,
                required_skills=target.required_skills,
                base_priority=target.base_priority,
                team_id=target.team_id,
                queue_entered_at=now,
            )
            self._route_new(moved, now)

    # ---------------------------------------------------------------- run

    def run(self) -> SimulationResult:
        t0 = time.perf_counter()
        for q in self.scenario.queues:
            if q.arrivals_per_hour > 0:
                self._push(self.rng.expovariate(q.arrivals_per_hour / 3600.0), _ARRIVAL, q.queue_id)
        events = self.events
        n = 0
        every = self.progress_every
        progress = self.progress
        end = self.end
        now = 0.0
        while events:
            now, _, kind, a, b, c = heapq.heappop(events)
            if now >= end and not self.waiting:
                break
            n += 1
            if kind == _END:
                self._on_end(now, a, self._channels[b])
            elif kind == _ARRIVAL:
                self._on_arrival(now, a)
            elif kind == _ABANDON:
                self._on_abandon(now, a)
            else:
                self._on_escalate(now, a, b, c)
            if progress is not None and n % every == 0:
                progress(min(now, end), end)
        self._advance(max(now, end))
        if progress is not None:
            progress(end, end)
        return self._result(n, time.perf_counter() - t0)

    def _result(self, events: int, wall: float) -> SimulationResult:
        sc = self.scenario
        for origin, _arrived, measured in self._meta.values():
            if measured:  # never answered: nobody could ever take it (counted as missed)
                self._stats[origin].unresolved += 1
        per_queue: list[QueueResult] = []
        tot = _QueueStats()
        for q in sc.queues:
            st = self._stats[q.queue_id]
            offered = st.answered + st.abandoned + st.unresolved
            per_queue.append(
                QueueResult(
                    queue_id=q.queue_id,
                    name=q.name,
                    offered=offered,
                    answered=st.answered,
                    abandoned=st.abandoned,
                    overflowed=st.overflowed,
                    service_level=_ratio(st.answered_within, offered),
                    asa_s=_ratio(st.wait_sum, st.answered),
                    abandon_rate=_ratio(st.abandoned, offered),
                    mean_proficiency=_ratio(st.prof_sum, st.prof_n),
                )
            )
            for name in _QueueStats.__slots__:
                setattr(tot, name, getattr(tot, name) + getattr(st, name))
        offered = tot.answered + tot.abandoned + tot.unresolved
        n_agents = len(self.agents)
        window = self.end - self.warm
        occupancy = self._busy_area / (n_agents * window) if n_agents and window > 0 else 0.0
        return SimulationResult(
            scenario=sc.name,
            hours=sc.hours,
            warmup_hours=self.warm / 3600.0,
            agents=n_agents,
            offered=offered,
            answered=tot.answered,
            abandoned=tot.abandoned,
            answered_within_sl=tot.answered_within,
            abandoned_within_sl=tot.abandoned_within,
            overflowed=tot.overflowed,
            unresolved=tot.unresolved,
            service_level=_ratio(tot.answered_within, offered),
            service_level_excl_short_abandons=_ratio(
                tot.answered_within, offered - tot.abandoned_within
            ),
            asa_s=_ratio(tot.wait_sum, tot.answered),
            abandon_rate=_ratio(tot.abandoned, offered),
            occupancy=occupancy,
            mean_proficiency=_ratio(tot.prof_sum, tot.prof_n),
            max_wait_s=self._max_wait,
            events=events,
            wall_s=wall,
            queues=tuple(per_queue),
            rules=dict(self._rules),
            realized_traffic_erlangs=tot.handle_sum / window if window > 0 else 0.0,
            erlang_c=erlang_prediction(sc),
            erlang_c_realized=(
                erlang_prediction(sc, offered * 3600.0 / window, tot.handle_sum / tot.answered)
                if tot.answered and not tot.abandoned and window > 0
                else None
            ),
        )


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


def simulate(scenario: Scenario, progress: ProgressCallback | None = None) -> SimulationResult:
    """Run ``scenario`` once and return its figures."""
    return Simulator(scenario, progress=progress).run()


# =========================================================================== CLI glue


@dataclass(frozen=True, slots=True)
class SimulateOptions:
    """Options of ``manage.py simulate`` (None = the default, or the scenario's value)."""

    agents: int | None = None
    calls_per_hour: float | None = None
    aht: float | None = None
    sl_seconds: float | None = None
    hours: float | None = None
    seed: int | None = None
    json: bool = False
    scenario: str | None = None
    patience: float | None = None
    handle_dist: str | None = None
    handle_cv: float | None = None
    warmup_hours: float | None = None
    progress: bool = True


DEFAULTS: Final[Mapping[str, Any]] = {
    "agents": 50,
    "calls_per_hour": 500.0,
    "aht": 300.0,
    "sl_seconds": 20.0,
    "hours": 8.0,
    "seed": 1,
    "patience": 0.0,
    "handle_dist": "exp",
    "handle_cv": 1.0,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the ``simulate`` options on an argparse (or Django) parser."""
    d = DEFAULTS
    parser.add_argument("--agents", type=int, help=f"single-skill agents (default {d['agents']})")
    parser.add_argument(
        "--calls-per-hour", type=float, help=f"arrivals per hour (default {d['calls_per_hour']:g})"
    )
    parser.add_argument("--aht", type=float, help=f"average handle time, s (default {d['aht']:g})")
    parser.add_argument(
        "--sl-seconds", type=float, help=f"service-level threshold, s (default {d['sl_seconds']:g})"
    )
    parser.add_argument("--hours", type=float, help=f"simulated hours (default {d['hours']:g})")
    parser.add_argument("--warmup-hours", type=float, help="discarded start (default 10%%, <=1 h)")
    parser.add_argument("--seed", type=int, help=f"random seed (default {d['seed']})")
    parser.add_argument(
        "--patience", type=float, help="mean patience before hanging up, s (0 = infinite)"
    )
    parser.add_argument("--handle-dist", choices=HANDLE_DISTS, help="handle-time distribution")
    parser.add_argument("--handle-cv", type=float, help="lognormal coefficient of variation")
    parser.add_argument("--scenario", help="multi-skill scenario JSON file (see scenarios/)")
    parser.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def options_from_mapping(options: Mapping[str, Any] | argparse.Namespace) -> SimulateOptions:
    """Build :class:`SimulateOptions` from argparse results or Django's ``**options``."""
    m = vars(options) if isinstance(options, argparse.Namespace) else dict(options)
    return SimulateOptions(
        agents=m.get("agents"),
        calls_per_hour=m.get("calls_per_hour"),
        aht=m.get("aht"),
        sl_seconds=m.get("sl_seconds"),
        hours=m.get("hours"),
        seed=m.get("seed"),
        json=bool(m.get("json", False)),
        scenario=m.get("scenario"),
        patience=m.get("patience"),
        handle_dist=m.get("handle_dist"),
        handle_cv=m.get("handle_cv"),
        warmup_hours=m.get("warmup_hours"),
        progress=not m.get("no_progress", False) and m.get("progress", True) is not False,
    )


def build_scenario(opts: SimulateOptions) -> Scenario:
    """The scenario a set of options describes (raises ValueError on bad options)."""
    if opts.scenario:
        clash = [
            name for name in ("agents", "calls_per_hour", "aht") if getattr(opts, name) is not None
        ]
        if clash:
            raise ValueError(
                "--" + ", --".join(c.replace("_", "-") for c in clash) + " do not apply "
                "to --scenario (edit the scenario file instead)"
            )
        sc = Scenario.load(opts.scenario)
        changes: dict[str, Any] = {}
        for name in ("hours", "seed", "sl_seconds", "warmup_hours"):
            if getattr(opts, name) is not None:
                changes[name] = getattr(opts, name)
        queue_changes: dict[str, Any] = {}
        if opts.patience is not None:
            queue_changes["patience_s"] = opts.patience or None
        if opts.handle_dist is not None:
            queue_changes["handle_dist"] = opts.handle_dist
        if opts.handle_cv is not None:
            queue_changes["handle_cv"] = opts.handle_cv
        if queue_changes:
            changes["queues"] = tuple(replace(q, **queue_changes) for q in sc.queues)
        return replace(sc, **changes) if changes else sc

    def pick(name: str) -> Any:
        v = getattr(opts, name)
        return DEFAULTS[name] if v is None else v

    agents = int(pick("agents"))
    if agents < 1:
        raise ValueError("--agents must be >= 1")
    return single_skill_scenario(
        agents,
        float(pick("calls_per_hour")),
        float(pick("aht")),
        sl_seconds=float(pick("sl_seconds")),
        hours=float(pick("hours")),
        seed=int(pick("seed")),
        patience_s=float(pick("patience")) or None,
        handle_dist=str(pick("handle_dist")),
        handle_cv=float(pick("handle_cv")),
        warmup_hours=opts.warmup_hours,
    )


def expected_arrivals(scenario: Scenario) -> float:
    return sum(q.arrivals_per_hour for q in scenario.queues) * scenario.hours


def run_simulation(
    args: SimulateOptions | Mapping[str, Any] | argparse.Namespace,
    progress: ProgressCallback | None = None,
) -> SimulationResult:
    """What ``manage.py simulate`` does, minus printing."""
    opts = args if isinstance(args, SimulateOptions) else options_from_mapping(args)
    return simulate(build_scenario(opts), progress=progress)


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


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m routing.simulation`` (same options as ``manage.py simulate``)."""
    parser = argparse.ArgumentParser(prog="python -m routing.simulation")
    add_arguments(parser)
    ns = parser.parse_args(argv)
    try:
        result = run_simulation(ns)
    except ValueError as exc:
        parser.error(str(exc))
    print(format_report(result))
    if ns.json:
        print(json.dumps(result.to_dict(), sort_keys=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
