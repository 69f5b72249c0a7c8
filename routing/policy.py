"""Pure routing policy: who may take what, who is best, and why.

No Django here (nor anywhere in ``routing.matching``, ``routing.erlang``,
``routing.simulation``, the what-if replay): selectors in the Django layer turn rows into the frozen
snapshots below, call this module (or :mod:`routing.matching`, which implements the
same rules with indexes), and write the returned :class:`Decision` to the log.

Time is ``float`` seconds (a Unix timestamp in production, virtual seconds in the
simulator). Selectors convert aware datetimes with ``dt.timestamp()``.

The functions in this module are the *reference* implementation: simple linear scans
that are easy to read and test. :class:`routing.matching.AgentIndex` and
:class:`routing.matching.WaitingIndex` must return exactly the same choices; the test
suite cross-checks them with Hypothesis.
"""

from __future__ import annotations

import bisect
import itertools
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from interactions.channels import Channel

__all__ = [
    "DEFAULT_CAPACITY",
    "DEFAULT_EXCLUSIVE_CHANNELS",
    "ESCALATION_EPSILON_S",
    "MAX_LEVEL",
    "RULE_NAMES",
    "AgentSnapshot",
    "CandidateScore",
    "Decision",
    "EscalationStep",
    "InteractionChoice",
    "InteractionSnapshot",
    "PolicyConfig",
    "Reason",
    "Requirements",
    "agent_rank_key",
    "availability_reason",
    "capacity_reason",
    "current_step",
    "decide_agent",
    "decide_interaction",
    "effective_priority",
    "effective_requirements",
    "explain_candidate",
    "ineligibility_reason",
    "interaction_order_key",
    "presence_reason",
    "proficiency",
    "proficiency_sum",
    "requirement_reason",
    "requirements_at_step",
    "sla_boost",
    "step_index",
    "validate_steps",
]

MAX_LEVEL: Final = 5
"""Skill levels go from 1 (beginner) to 5 (expert)."""

DEFAULT_EXCLUSIVE_CHANNELS: Final = frozenset({Channel.VOICE.value})
"""An agent on a call takes nothing else, and is offered no call while busy elsewhere."""

DEFAULT_CAPACITY: Final[Mapping[str, int]] = {
    Channel.VOICE.value: 1,
    Channel.CHAT.value: 3,
    Channel.EMAIL.value: 5,
    Channel.SMS.value: 5,
}
"""Default maximum concurrent interactions per channel."""

ESCALATION_EPSILON_S: Final = 1e-3
"""A step is reached when ``waited + 1 ms >= after_seconds`` (absorbs float rounding)."""


class Reason:
    """Why an agent is not eligible, in the order the checks are made.

    The first failing check is the one reported, so the counts in a decision log say
    "structural" problems (nobody has the skill) before "busy" ones (everyone is on a
    call). Skill reasons carry the skill code: ``missing_skill:rsa``.
    """

    EXCLUDED: Final = "excluded"  # declined, missed or transferred this interaction away
    ABSENT: Final = "absent"  # not logged in / console heartbeat lost
    UNAVAILABLE: Final = "unavailable_on_channel"  # not in an available state on the channel
    NOT_IN_TEAM: Final = "not_in_team"
    MISSING_SKILL: Final = "missing_skill"  # + ":<code>"
    LEVEL_TOO_LOW: Final = "level_too_low"  # + ":<code>"
    LANGUAGE: Final = "language"
    NO_CAPACITY: Final = "no_capacity"  # load on the channel already at capacity
    EXCLUSIVE_BUSY: Final = "exclusive_busy"  # voice exclusivity


RULE_NAMES: Final = ("proficiency", "preferred_agent", "longest_idle", "least_loaded", "agent_id")
"""Agent ranking criteria, in order. The decision's ``rule`` names the first criterion on
which the winner beat the runner-up (or ``only_candidate`` / ``no_eligible_agent``)."""


# --------------------------------------------------------------------------- data


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    """Weights of the interaction ranking, and decision-log size.

    effective priority = base_priority * base_priority_weight
                         + waited_seconds * ageing_rate
                         + SLA boost

    With the defaults one base-priority point is worth 100 s of waiting: a normal
    contact that has waited 2 minutes overtakes a fresh "priority 1" one. The SLA
    boost climbs linearly from 0 to ``sla_max_boost`` over the last ``sla_window_s``
    seconds before ``sla_due_at`` and stays at the maximum once overdue, so contacts
    about to miss their answer target get a push (150 = 1.5 priority points).
    """

    base_priority_weight: float = 100.0
    ageing_rate: float = 1.0
    sla_window_s: float = 60.0
    sla_max_boost: float = 150.0
    decision_log_top: int = 10
    """How many eligible candidates (best first) a decision keeps for the log."""

    def __post_init__(self) -> None:
        if self.ageing_rate < 0:
            raise ValueError("ageing_rate must be >= 0")
        if self.sla_window_s < 0 or self.sla_max_boost < 0:
            raise ValueError("SLA window and boost must be >= 0")
        if self.decision_log_top < 1:
            raise ValueError("decision_log_top must be >= 1")


DEFAULT_CONFIG: Final = PolicyConfig()


@dataclass(frozen=True, slots=True)
class AgentSnapshot:
    """What routing needs to know about one agent, at one instant."""

    agent_id: int
    skills: Mapping[str, int] = field(default_factory=dict)
    """Skill code -> level 1..5."""
    languages: frozenset[str] = frozenset()
    team_id: int | None = None
    present: bool = True
    """Logged in with a live console heartbeat."""
    available_channels: frozenset[str] = frozenset()
    """Channels on which the agent is in an available state right now."""
    capacity: Mapping[str, int] = field(default_factory=dict)
    """Channel -> maximum concurrent interactions (missing = 0)."""
    load: Mapping[str, int] = field(default_factory=dict)
    """Channel -> interactions currently assigned or offered."""
    exclusive_channels: frozenset[str] = DEFAULT_EXCLUSIVE_CHANNELS
    idle_since: float = 0.0
    """Time of the agent's last routing event (got or finished work, became available).
    Smaller = idle longer. :class:`routing.matching.AgentIndex` updates it on assign and
    release, which spreads work round-robin among equally competent agents."""

    def total_load(self) -> int:
        return sum(self.load.values())

    def load_ratio(self) -> float:
        """Total load / total capacity (1.0 when the agent has no capacity at all)."""
        cap = sum(self.capacity.values())
        return self.total_load() / cap if cap > 0 else 1.0


@dataclass(frozen=True, slots=True)
class InteractionSnapshot:
    """A waiting interaction (call, chat, email, SMS) as routing sees it."""

    interaction_id: int
    channel: str
    queue_id: int
    enqueued_at: float
    """When the citizen started waiting (drives ageing and FIFO order)."""
    required_skills: Mapping[str, int] = field(default_factory=dict)
    """Skill code -> minimum level."""
    language: str | None = None
    """Language the citizen needs; None or "" = any agent."""
    base_priority: int = 0
    sla_due_at: float | None = None
    """When the answer target is missed (enqueued_at + queue target)."""
    excluded_agent_ids: frozenset[int] = frozenset()
    """Agents who declined or missed it (never offered again), or transferred it away (until
    someone else has taken it: selectors.transferrer_exclusions)."""
    preferred_agent_id: int | None = None
    """E.g. the last agent who served this citizen recently (computed by the selector)."""
    team_id: int | None = None
    """Restrict to members of this team (None = any team)."""
    queue_entered_at: float | None = None
    """When it entered its *current* queue: the escalation clock. None = enqueued_at.
    After an overflow the new queue's steps count from the move, ageing does not."""

    @property
    def escalation_clock_start(self) -> float:
        return self.enqueued_at if self.queue_entered_at is None else self.queue_entered_at


@dataclass(frozen=True, slots=True)
class EscalationStep:
    """Relaxation applied once an interaction has waited ``after_seconds`` in its queue.

    Steps are **cumulative**: at a given wait every step reached so far applies, in
    order, so requirements only ever get looser while the contact waits.
    """

    after_seconds: float
    min_level_cap: int | None = None
    """Each required level becomes min(level, cap)."""
    drop_skills: frozenset[str] = frozenset()
    """Skills no longer required."""
    any_agent_of_team: int | None = None
    """Skill requirements are replaced by membership of this team."""
    overflow_queue_id: int | None = None
    """The interaction should move to this queue (the DB layer performs the move)."""


@dataclass(frozen=True, slots=True)
class Requirements:
    """Effective requirements of an interaction at a given wait."""

    channel: str
    skills: Mapping[str, int]
    language: str | None
    team_id: int | None
    step_index: int = -1
    """Index of the last escalation step reached (-1: none)."""
    overflow_queue_id: int | None = None
    """Set when a reached step asks to move the interaction to another queue."""

    def to_log_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "skills": {c: self.skills[c] for c in sorted(competences(self.skills))},
            "language": self.language,
            "team_id": self.team_id,
            "step_index": self.step_index,
            "overflow_queue_id": self.overflow_queue_id,
        }


@dataclass(frozen=True, slots=True)
class CandidateScore:
    """One agent as seen by a decision: ranking components, or why it was excluded."""

    agent_id: int
    proficiency: float
    """Mean level over the interaction's (original) required skills, 0 if none."""
    preferred: bool
    idle_s: float
    load_ratio: float
    eligible: bool = True
    reason: str | None = None

    def to_log_dict(self) -> dict[str, Any]:
        return {
            "agent_id": self.agent_id,
            "proficiency": round(self.proficiency, 3),
            "preferred": self.preferred,
            "idle_s": round(self.idle_s, 3),
            "load_ratio": round(self.load_ratio, 3),
            "eligible": self.eligible,
            "reason": self.reason,
        }


ASSIGN: Final = "assign"
WAIT: Final = "wait"
OVERFLOW: Final = "overflow"


@dataclass(frozen=True, slots=True)
class Decision:
    """Outcome of "which agent for this interaction", with everything the log needs."""

    interaction_id: int
    agent_id: int | None
    action: str
    """``assign``, ``wait`` (nobody eligible) or ``overflow`` (nobody eligible and the
    reached escalation step moves the interaction to ``overflow_queue_id``)."""
    rule: str
    """Ranking criterion that decided (see :data:`RULE_NAMES`), ``only_candidate``
    or ``no_eligible_agent``."""
    at: float
    requirements: Requirements
    proficiency: float | None = None
    """Proficiency of the chosen agent."""
    eligible_count: int = 0
    candidates: tuple[CandidateScore, ...] = ()
    """Best eligible agents, best first (at most ``PolicyConfig.decision_log_top``)."""
    ineligible_counts: Mapping[str, int] = field(default_factory=dict)
    """Reason -> number of agents excluded for it (empty when not explained)."""
    effective_priority: float | None = None
    """Of the interaction at decision time (None on the index's ``explain=False`` path)."""

    @property
    def overflow_queue_id(self) -> int | None:
        return self.requirements.overflow_queue_id if self.action == OVERFLOW else None

    def to_log_dict(self) -> dict[str, Any]:
        """JSON-serialisable form for the decision log."""
        return {
            "interaction_id": self.interaction_id,
            "agent_id": self.agent_id,
            "action": self.action,
            "rule": self.rule,
            "at": self.at,
            "requirements": self.requirements.to_log_dict(),
            "proficiency": self.proficiency,
            "eligible_count": self.eligible_count,
            "candidates": [c.to_log_dict() for c in self.candidates],
            "ineligible_counts": dict(sorted(self.ineligible_counts.items())),
            "effective_priority": self.effective_priority,
        }


@dataclass(frozen=True, slots=True)
class InteractionChoice:
    """Outcome of "which waiting interaction for this agent"."""

    interaction: InteractionSnapshot
    effective_priority: float
    requirements: Requirements
    rule: str
    """``fifo`` when the chosen interaction is the oldest the agent could take, or
    ``effective_priority`` when priority (base, SLA nearness) let it overtake an older
    one."""


# --------------------------------------------------------------------------- escalation


def validate_steps(steps: Iterable[EscalationStep]) -> tuple[EscalationStep, ...]:
    """Return the steps as a tuple, checking they are sorted by ``after_seconds``."""
    out = tuple(steps)
    for prev, nxt in itertools.pairwise(out):
        if nxt.after_seconds < prev.after_seconds:
            raise ValueError("escalation steps must be sorted by after_seconds")
    for s in out:
        if s.after_seconds < 0:
            raise ValueError("after_seconds must be >= 0")
        if s.min_level_cap is not None and s.min_level_cap < 1:
            raise ValueError("min_level_cap must be >= 1")
    return out


def step_index(steps: Sequence[EscalationStep], waited_s: float) -> int:
    """Index of the last step reached after waiting ``waited_s`` (-1 if none).

    ``steps`` must be sorted by ``after_seconds`` (see :func:`validate_steps`).
    """
    if not steps:
        return -1
    w = waited_s + ESCALATION_EPSILON_S
    if len(steps) <= 8:
        i = -1
        for k, s in enumerate(steps):
            if s.after_seconds <= w:
                i = k
            else:
                break
        return i
    return bisect.bisect_right([s.after_seconds for s in steps], w) - 1


def current_step(steps: Sequence[EscalationStep], waited_s: float) -> EscalationStep | None:
    """The last escalation step reached after waiting ``waited_s``, if any."""
    i = step_index(steps, waited_s)
    return steps[i] if i >= 0 else None


def requirements_at_step(
    channel: str,
    skills: Mapping[str, int],
    language: str | None,
    team_id: int | None,
    steps: Sequence[EscalationStep],
    index: int,
) -> Requirements:
    """Requirements once steps ``0..index`` have applied (cumulatively, in order)."""
    eff: dict[str, int] = {code: max(1, lvl) for code, lvl in skills.items()}
    team = team_id
    overflow: int | None = None
    for s in steps[: index + 1]:
        if s.any_agent_of_team is not None:
            eff = {}
            team = s.any_agent_of_team
        if s.drop_skills:
            for code in s.drop_skills:
                eff.pop(code, None)
        if s.min_level_cap is not None:
            cap = max(1, s.min_level_cap)
            eff = {code: min(lvl, cap) for code, lvl in eff.items()}
        if s.overflow_queue_id is not None:
            overflow = s.overflow_queue_id
    return Requirements(
        channel=channel,
        skills=eff,
        language=language or None,
        team_id=team,
        step_index=index,
        overflow_queue_id=overflow,
    )


def effective_requirements(
    interaction: InteractionSnapshot, steps: Sequence[EscalationStep], now: float
) -> Requirements:
    """Requirements of ``interaction`` at ``now``, escalation steps of its queue applied."""
    waited = now - interaction.escalation_clock_start
    return requirements_at_step(
        interaction.channel,
        interaction.required_skills,
        interaction.language,
        interaction.team_id,
        steps,
        step_index(steps, waited),
    )


# --------------------------------------------------------------------------- eligibility


def presence_reason(agent: AgentSnapshot, channel: str) -> str | None:
    """``absent`` / ``unavailable_on_channel`` / None."""
    if not agent.present:
        return Reason.ABSENT
    if channel not in agent.available_channels:
        return Reason.UNAVAILABLE
    return None


def requirement_reason(agent: AgentSnapshot, req: Requirements) -> str | None:
    """Team, skills (sorted by code) and language checks; None if all pass."""
    if req.team_id is not None and agent.team_id != req.team_id:
        return Reason.NOT_IN_TEAM
    for code in sorted(req.skills):
        level = agent.skills.get(code)
        if level is None or level < 1:
            return f"{Reason.MISSING_SKILL}:{code}"
        if level < req.skills[code]:
            return f"{Reason.LEVEL_TOO_LOW}:{code}"
    if req.language and req.language not in agent.languages:
        return Reason.LANGUAGE
    return None


def capacity_reason(agent: AgentSnapshot, channel: str) -> str | None:
    """Capacity then exclusivity checks; None if the agent can take one more."""
    if agent.load.get(channel, 0) >= agent.capacity.get(channel, 0):
        return Reason.NO_CAPACITY
    if any(agent.load.get(c, 0) > 0 for c in agent.exclusive_channels):
        return Reason.EXCLUSIVE_BUSY
    if channel in agent.exclusive_channels and agent.total_load() > 0:
        return Reason.EXCLUSIVE_BUSY
    return None


def availability_reason(agent: AgentSnapshot, channel: str) -> str | None:
    """Presence then capacity: whether the agent may take one more contact on ``channel``,
    whatever the contact requires (checks 2-3 and 8-9 of docs/routing.md); None if it may.

    The rule every write that gives an agent work checks under the agent's presence lock, on
    a snapshot read under that lock (``routing.selectors.locked_agent_snapshot``): the
    router's claim, a transfer to a named colleague, a supervisor's reassignment."""
    return presence_reason(agent, channel) or capacity_reason(agent, channel)


def ineligibility_reason(
    agent: AgentSnapshot, interaction: InteractionSnapshot, req: Requirements
) -> str | None:
    """Why ``agent`` may not take ``interaction`` under ``req``; None if it may."""
    if agent.agent_id in interaction.excluded_agent_ids:
        return Reason.EXCLUDED
    return (
        presence_reason(agent, req.channel)
        or requirement_reason(agent, req)
        or capacity_reason(agent, req.channel)
    )


# --------------------------------------------------------------------------- agent ranking


GATE_PREFIX: Final = "@"
"""A required "skill" whose code starts with this is a gate, not a competence: it must be held
(like any skill) but counts in no proficiency and no log. The selectors use one to keep each
organisation's agents and interactions apart (``@organisation:<id>``)."""


def competences(skills: Iterable[str]) -> list[str]:
    """The skill codes that measure competence (gates left out)."""
    return [code for code in skills if not code.startswith(GATE_PREFIX)]


def proficiency_sum(agent: AgentSnapshot, skills: Iterable[str]) -> int:
    """Sum of the agent's levels on ``skills`` (a missing skill counts 0; gates count 0)."""
    return sum(agent.skills.get(code, 0) for code in competences(skills))


def proficiency(agent: AgentSnapshot, skills: Mapping[str, int] | Iterable[str]) -> float:
    """Mean of the agent's levels on the required skills (0.0 if none are required).

    Ranking compares the *sum* (exact integers); because every candidate is scored on
    the same list of skills, sum and mean give the same order. The mean is what logs
    and reports show, as it reads on the familiar 1-5 scale.
    """
    codes = competences(skills)
    return proficiency_sum(agent, codes) / len(codes) if codes else 0.0


AgentKey = tuple[int, int, tuple[float, float, int]]


def agent_rank_key(agent: AgentSnapshot, interaction: InteractionSnapshot) -> AgentKey:
    """Sort key, smallest = best: (-proficiency sum, not preferred, (idle_since,
    load ratio, agent_id)).

    Proficiency is measured on the interaction's *original* required skills, even
    when an escalation step relaxed them: relaxation widens who may answer, it does
    not stop us preferring the most competent of them.
    """
    return (
        -proficiency_sum(agent, interaction.required_skills),
        0 if agent.agent_id == interaction.preferred_agent_id else 1,
        (agent.idle_since, agent.load_ratio(), agent.agent_id),
    )


def deciding_rule(best: AgentKey, runner_up: AgentKey | None) -> str:
    """Name of the first ranking criterion on which ``best`` beats ``runner_up``."""
    if runner_up is None:
        return "only_candidate"
    if best[0] != runner_up[0]:
        return RULE_NAMES[0]
    if best[1] != runner_up[1]:
        return RULE_NAMES[1]
    for i in range(3):
        if best[2][i] != runner_up[2][i]:
            return RULE_NAMES[2 + i]
    return RULE_NAMES[-1]  # pragma: no cover - agent ids are unique


def candidate_from_key(key: AgentKey, n_skills: int, now: float) -> CandidateScore:
    idle_since, load_ratio, agent_id = key[2]
    return CandidateScore(
        agent_id=agent_id,
        proficiency=(-key[0] / n_skills) if n_skills else 0.0,
        preferred=key[1] == 0,
        idle_s=now - idle_since,
        load_ratio=load_ratio,
    )


def explain_candidate(
    agent: AgentSnapshot,
    interaction: InteractionSnapshot,
    now: float,
    steps: Sequence[EscalationStep] = (),
) -> CandidateScore:
    """Score of one agent for one interaction, with the reason if not eligible
    ("why didn't Martine get this call?")."""
    req = effective_requirements(interaction, steps, now)
    reason = ineligibility_reason(agent, interaction, req)
    return CandidateScore(
        agent_id=agent.agent_id,
        proficiency=proficiency(agent, interaction.required_skills),
        preferred=agent.agent_id == interaction.preferred_agent_id,
        idle_s=now - agent.idle_since,
        load_ratio=agent.load_ratio(),
        eligible=reason is None,
        reason=reason,
    )


def no_agent_decision(
    interaction: InteractionSnapshot,
    req: Requirements,
    now: float,
    ineligible: Mapping[str, int],
    priority: float | None,
) -> Decision:
    overflow = req.overflow_queue_id is not None and req.overflow_queue_id != interaction.queue_id
    return Decision(
        interaction_id=interaction.interaction_id,
        agent_id=None,
        action=OVERFLOW if overflow else WAIT,
        rule="no_eligible_agent",
        at=now,
        requirements=req,
        ineligible_counts=ineligible,
        effective_priority=priority,
    )


def decide_agent(
    interaction: InteractionSnapshot,
    agents: Iterable[AgentSnapshot],
    now: float,
    config: PolicyConfig = DEFAULT_CONFIG,
    steps: Sequence[EscalationStep] = (),
) -> Decision:
    """Best eligible agent for ``interaction`` (reference implementation, O(agents)).

    Overflow steps: the current queue's eligible agents (with the step's relaxations)
    are tried first; only if none is free is the decision ``overflow``.
    """
    req = effective_requirements(interaction, steps, now)
    keys: list[AgentKey] = []
    ineligible: Counter[str] = Counter()
    for agent in agents:
        reason = ineligibility_reason(agent, interaction, req)
        if reason is None:
            keys.append(agent_rank_key(agent, interaction))
        else:
            ineligible[reason] += 1
    prio = effective_priority(interaction, now, config)
    if not keys:
        return no_agent_decision(interaction, req, now, dict(ineligible), prio)
    keys.sort()
    n_skills = len(competences(interaction.required_skills))
    best = keys[0]
    return Decision(
        interaction_id=interaction.interaction_id,
        agent_id=best[2][2],
        action=ASSIGN,
        rule=deciding_rule(best, keys[1] if len(keys) > 1 else None),
        at=now,
        requirements=req,
        proficiency=(-best[0] / n_skills) if n_skills else 0.0,
        eligible_count=len(keys),
        candidates=tuple(
            candidate_from_key(k, n_skills, now) for k in keys[: config.decision_log_top]
        ),
        ineligible_counts=dict(ineligible),
        effective_priority=prio,
    )


# --------------------------------------------------------------------------- interaction ranking


def sla_boost(sla_due_at: float | None, now: float, config: PolicyConfig = DEFAULT_CONFIG) -> float:
    """0 until ``sla_window_s`` before the due time, then linear up to
    ``sla_max_boost`` at the due time, and constant afterwards."""
    if sla_due_at is None or config.sla_max_boost == 0:
        return 0.0
    remaining = sla_due_at - now
    if remaining <= 0:
        return config.sla_max_boost
    if remaining >= config.sla_window_s:
        return 0.0
    return config.sla_max_boost * (1.0 - remaining / config.sla_window_s)


def effective_priority(
    interaction: InteractionSnapshot, now: float, config: PolicyConfig = DEFAULT_CONFIG
) -> float:
    """Base priority + ageing + SLA nearness (see :class:`PolicyConfig`). Higher first."""
    return (
        interaction.base_priority * config.base_priority_weight
        + (now - interaction.enqueued_at) * config.ageing_rate
        + sla_boost(interaction.sla_due_at, now, config)
    )


def interaction_order_key(
    interaction: InteractionSnapshot, now: float, config: PolicyConfig = DEFAULT_CONFIG
) -> tuple[float, float, int]:
    """Sort key, smallest = served first: highest priority, then FIFO, then id."""
    return (
        -effective_priority(interaction, now, config),
        interaction.enqueued_at,
        interaction.interaction_id,
    )


def decide_interaction(
    agent: AgentSnapshot,
    interactions: Iterable[InteractionSnapshot],
    now: float,
    config: PolicyConfig = DEFAULT_CONFIG,
    escalations: Mapping[int, Sequence[EscalationStep]] | None = None,
) -> InteractionChoice | None:
    """Best waiting interaction for an agent who frees up (reference, O(backlog))."""
    esc = escalations or {}
    best: tuple[tuple[float, float, int], InteractionSnapshot, Requirements] | None = None
    oldest: float | None = None
    for ix in interactions:
        req = effective_requirements(ix, esc.get(ix.queue_id, ()), now)
        if ineligibility_reason(agent, ix, req) is not None:
            continue
        key = interaction_order_key(ix, now, config)
        if oldest is None or key[1] < oldest:
            oldest = key[1]
        if best is None or key < best[0]:
            best = (key, ix, req)
    if best is None:
        return None
    key, ix, req = best
    return InteractionChoice(
        interaction=ix,
        effective_priority=-key[0],
        requirements=req,
        rule="effective_priority" if oldest is not None and oldest < key[1] else "fifo",
    )
