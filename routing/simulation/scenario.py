"""What a run simulates: a synthetic scenario, or a recorded period (pure: no Django).

* :class:`Scenario` (``manage.py simulate``): queues with Poisson arrivals, handle-time and
  patience distributions, groups of identical agents always logged in. JSON format:
  ``scenarios/*.json``.
* :class:`ReplayInput` (the what-if, ``supervision.whatif`` reads it from the database): the
  contacts of a recorded period as they arrived, with what they needed and how long they held
  an agent, the agents with their logged-in periods, the queues' routing settings.

Both run on the one engine, :mod:`routing.simulation.engine`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from interactions.channels import Channel
from routing.policy import (
    DEFAULT_CAPACITY,
    DEFAULT_EXCLUSIVE_CHANNELS,
    EscalationStep,
    PolicyConfig,
    validate_steps,
)

__all__ = [
    "HANDLE_DISTS",
    "AgentGroupSpec",
    "QueueSpec",
    "ReplayAgent",
    "ReplayContact",
    "ReplayInput",
    "ReplayQueue",
    "Scenario",
    "capacity_of_group",
    "single_skill_scenario",
]

HANDLE_DISTS: Final = ("exp", "lognormal")

# ------------------------------------------------------------------ synthetic scenarios


@dataclass(frozen=True, slots=True)
class QueueSpec:
    """One queue: its traffic and what its contacts need."""

    queue_id: int
    name: str
    arrivals_per_hour: float
    aht_s: float
    channel: str = Channel.VOICE.value
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
    channels: frozenset[str] = frozenset({Channel.VOICE.value})
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
            if q.channel not in g.channels or capacity_of_group(g).get(q.channel, 0) != 1:
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
        channel=str(d.get("channel", Channel.VOICE.value)),
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
        channels=frozenset(d.get("channels", [Channel.VOICE.value])),
        capacity={str(k): int(v) for k, v in d.get("capacity", {}).items()},
        team_id=d.get("team_id"),
    )


def capacity_of_group(g: AgentGroupSpec) -> dict[str, int]:
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


# ------------------------------------------------------------------ recorded periods


@dataclass(frozen=True, slots=True)
class ReplayContact:
    """One recorded contact. Times are seconds from the start of the replayed period."""

    contact_id: int
    queue_id: int
    channel: str
    arrival_s: float
    required_skills: Mapping[str, int] = field(default_factory=dict)
    language: str | None = None
    base_priority: int = 0
    sla_target_s: float = 60.0  # the answer target it was given
    recorded_wait_s: float | None = None  # answered: its wait; abandoned: None
    handle_s: float | None = None  # answered and closed: first answer -> closure
    accept_delay_s: float | None = None  # answered: offer -> answer
    patience_s: float | None = None  # abandoned: how long the citizen waited
    hold_s: float | None = None
    """How long it held the agent's capacity after the answer (answer -> wrap-up or closure:
    a contact in wrap-up no longer counts in the agent's load); None = ``handle_s``."""
    after_work_s: float = 0.0
    """After-call work that kept the agent from any new offer once the capacity was freed (a
    call's wrap-up: until the agent closed it or the wrap-up timer ended)."""
    pending: bool = False
    """Still waiting when the period was read: neither answered nor abandoned (reports leave
    it out; so does the replay if it is still waiting at the end)."""
    excluded_agent_ids: frozenset[int] = frozenset()
    """Agents who declined it or let its offer ring out: never offered it again (as in
    production), whenever that happened in the replay."""


@dataclass(frozen=True, slots=True)
class ReplayAgent:
    agent_id: int
    skills: Mapping[str, int]
    languages: frozenset[str]
    team_id: int | None
    channels: frozenset[str]
    capacity: Mapping[str, int]
    exclusive_channels: frozenset[str] = DEFAULT_EXCLUSIVE_CHANNELS
    shifts: tuple[tuple[float, float], ...] = ()  # [login, logout) intervals, in seconds


@dataclass(frozen=True, slots=True)
class ReplayQueue:
    queue_id: int
    required_skills: Mapping[str, int] = field(default_factory=dict)
    base_priority: int | None = None  # None: each contact keeps its recorded priority
    sla_target_s: float | None = None  # None: each contact keeps its recorded target
    team_id: int | None = None
    escalation: tuple[EscalationStep, ...] = ()


@dataclass(frozen=True, slots=True)
class ReplayInput:
    contacts: tuple[ReplayContact, ...]
    agents: tuple[ReplayAgent, ...]
    queues: Mapping[int, ReplayQueue]
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    seed: int = 1
