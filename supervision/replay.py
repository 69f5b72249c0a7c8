"""What-if replay: recorded contacts run again through the routing rules (pure: no Django).

The simulator (``routing.simulation``) draws Poisson arrivals and random handle times; a replay
instead takes a recorded period as it happened: each contact arrives when it did, keeps the
handle time it needed, and hangs up when the citizen did; agents log in and out when they did.
Only the routing configuration may change (agents' skills, queues' priority, answer targets,
escalation steps and overflow), and the question is what the service level and abandonment
would then have been.

It routes with the production code the simulator uses: :class:`routing.matching.AgentIndex`
picks the agent when a contact arrives or reaches an escalation step,
:class:`routing.matching.WaitingIndex` picks the contact when an agent frees up or logs in, and
escalation and overflow come from :mod:`routing.policy`.

What the recording cannot say is estimated, reproducibly (a seeded generator):

* patience of answered contacts: they waited at least their recorded wait; beyond it
  patience is taken as exponential (memoryless) with the queue's mean, estimated from the
  recording (waits of everybody / number of hang-ups, the maximum-likelihood estimate with
  censored observations); no hang-up in a queue: infinite patience;
* handle time of contacts nobody answered (they may be answered in the replay): drawn from the
  queue's recorded handle times;
* the time an agent takes to accept an offer: recorded for answered contacts, else the queue's
  mean.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Final

from routing.matching import AgentIndex, WaitingIndex
from routing.policy import (
    OVERFLOW,
    AgentSnapshot,
    EscalationStep,
    InteractionSnapshot,
    PolicyConfig,
    Requirements,
    requirements_at_step,
    step_index,
)

_ARRIVAL: Final = 0
_END: Final = 1
_ABANDON: Final = 2
_ESCALATE: Final = 3
_LOGIN: Final = 4
_LOGOUT: Final = 5


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


@dataclass(frozen=True, slots=True)
class ReplayAgent:
    agent_id: int
    skills: Mapping[str, int]
    languages: frozenset[str]
    team_id: int | None
    channels: frozenset[str]
    capacity: Mapping[str, int]
    exclusive_channels: frozenset[str] = frozenset({"voice"})
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


@dataclass(frozen=True, slots=True)
class ReplayOutcome:
    """What happened to one contact in the replay (seconds from the period's start)."""

    contact_id: int
    queue_id: int  # the queue it arrived in
    channel: str
    arrival_s: float
    sla_target_s: float
    answered_s: float | None = None
    closed_s: float | None = None
    abandoned_s: float | None = None
    agent_id: int | None = None


# --------------------------------------------------------------------------- estimates


def mean_patience(contacts: Sequence[ReplayContact]) -> float | None:
    """Maximum-likelihood mean of exponential patience, answered waits being censored."""
    abandons = [c.patience_s for c in contacts if c.patience_s is not None]
    if not abandons:
        return None
    exposure = sum(abandons) + sum(c.recorded_wait_s or 0.0 for c in contacts)
    return max(1.0, exposure / len(abandons))


@dataclass
class _QueueEstimates:
    patience_mean: float | None
    handles: list[float]
    accept_mean: float


def _estimates(contacts: Sequence[ReplayContact]) -> _QueueEstimates:
    handles = sorted(c.handle_s for c in contacts if c.handle_s is not None)
    accepts = [c.accept_delay_s for c in contacts if c.accept_delay_s is not None]
    return _QueueEstimates(
        patience_mean=mean_patience(contacts),
        handles=handles or [300.0],
        accept_mean=sum(accepts) / len(accepts) if accepts else 0.0,
    )


# --------------------------------------------------------------------------- engine


class Replay:
    """One replay of a :class:`ReplayInput`. Use :meth:`run` once."""

    def __init__(self, inp: ReplayInput) -> None:
        self.inp = inp
        self.rng = random.Random(inp.seed)  # noqa: S311 - a model, not crypto
        self.queues = dict(inp.queues)
        self.steps = {q.queue_id: q.escalation for q in self.queues.values()}
        self.agents = AgentIndex(
            [
                AgentSnapshot(
                    agent_id=a.agent_id,
                    skills=dict(a.skills),
                    languages=a.languages,
                    team_id=a.team_id,
                    present=False,
                    available_channels=a.channels,
                    capacity=dict(a.capacity),
                    exclusive_channels=a.exclusive_channels,
                    idle_since=0.0,
                )
                for a in inp.agents
            ],
            inp.policy,
        )
        self.waiting = WaitingIndex(inp.policy, self.steps)
        self.events: list[tuple[float, int, int, int, int, int]] = []
        self._seq = 0
        self.contacts = {c.contact_id: c for c in inp.contacts}
        by_queue: dict[int, list[ReplayContact]] = {}
        for c in inp.contacts:
            by_queue.setdefault(c.queue_id, []).append(c)
        self.estimates = {q: _estimates(cs) for q, cs in by_queue.items()}
        self._channels = sorted({c.channel for c in inp.contacts} | {"voice"})
        self._code = {ch: i for i, ch in enumerate(self._channels)}
        self.outcomes: dict[int, ReplayOutcome] = {}
        self._gives_up: dict[int, float] = {}  # contact -> when its citizen hangs up

    def _push(self, t: float, kind: int, a: int, b: int = 0, c: int = 0) -> None:
        self._seq += 1
        heapq.heappush(self.events, (t, self._seq, kind, a, b, c))

    # ---------------------------------------------------------------- draws

    def _patience(self, c: ReplayContact) -> float | None:
        if c.patience_s is not None:
            return c.patience_s
        mean = self.estimates[c.queue_id].patience_mean
        if mean is None:
            return None
        return (c.recorded_wait_s or 0.0) + self.rng.expovariate(1.0 / mean)

    def _handle(self, c: ReplayContact) -> float:
        if c.handle_s is not None:
            return c.handle_s
        return self.rng.choice(self.estimates[c.queue_id].handles)

    def _accept_delay(self, c: ReplayContact) -> float:
        if c.accept_delay_s is not None:
            return c.accept_delay_s
        return self.estimates[c.queue_id].accept_mean

    # ---------------------------------------------------------------- routing

    def _requirements(self, ix: InteractionSnapshot, now: float) -> Requirements:
        steps = self.steps.get(ix.queue_id, ())
        idx = step_index(steps, now - ix.escalation_clock_start) if steps else -1
        return requirements_at_step(
            ix.channel, ix.required_skills, ix.language, ix.team_id, steps, idx
        )

    def _start(self, ix: InteractionSnapshot, agent_id: int, now: float) -> None:
        c = self.contacts[ix.interaction_id]
        self.agents.assign(agent_id, ix.channel, now)
        answered = now + self._accept_delay(c)
        gives_up = self._gives_up.get(c.contact_id)
        if gives_up is not None and gives_up < answered:
            # The citizen hangs up while the offer rings at the agent (offered -> abandoned).
            self._push(gives_up, _END, agent_id, self._code[ix.channel], ix.interaction_id)
            self.outcomes[c.contact_id] = replace(self.outcomes[c.contact_id], abandoned_s=gives_up)
            return
        end = answered + self._handle(c)
        self._push(end, _END, agent_id, self._code[ix.channel], ix.interaction_id)
        self.outcomes[c.contact_id] = replace(
            self.outcomes[c.contact_id], answered_s=answered, closed_s=end, agent_id=agent_id
        )

    def _fill_agent(self, agent_id: int, now: float) -> None:
        while self.waiting and self.agents.ready_channels(agent_id):
            choice = self.waiting.best_for_agent(self.agents.snapshot(agent_id), now)
            if choice is None:
                return
            self.waiting.remove(choice.interaction.interaction_id)
            self._start(choice.interaction, agent_id, now)

    def _route_new(self, ix: InteractionSnapshot, now: float, first: bool) -> None:
        d = self.agents.decide_with_requirements(
            ix, self._requirements(ix, now), now, explain=False
        )
        if d.agent_id is not None:
            self._start(ix, d.agent_id, now)
            return
        self.waiting.add(ix)
        if first and ix.interaction_id in self._gives_up:
            self._push(self._gives_up[ix.interaction_id], _ABANDON, ix.interaction_id)
        start = ix.escalation_clock_start
        for k, step in enumerate(self.steps.get(ix.queue_id, ())):
            self._push(start + step.after_seconds, _ESCALATE, ix.interaction_id, k, ix.queue_id)

    # ---------------------------------------------------------------- events

    def _on_arrival(self, now: float, contact_id: int) -> None:
        c = self.contacts[contact_id]
        q = self.queues[c.queue_id]
        target = c.sla_target_s if q.sla_target_s is None else q.sla_target_s
        ix = InteractionSnapshot(
            interaction_id=c.contact_id,
            channel=c.channel,
            queue_id=c.queue_id,
            enqueued_at=now,
            required_skills=dict(c.required_skills),
            language=c.language or None,
            base_priority=c.base_priority if q.base_priority is None else q.base_priority,
            sla_due_at=now + target,
        )
        patience = self._patience(c)
        if patience is not None:
            self._gives_up[contact_id] = now + patience
        self.outcomes[contact_id] = ReplayOutcome(
            contact_id=contact_id,
            queue_id=c.queue_id,
            channel=c.channel,
            arrival_s=now,
            sla_target_s=target,
        )
        self._route_new(ix, now, first=True)

    def _on_end(self, now: float, agent_id: int, channel: str) -> None:
        self.agents.release(agent_id, channel, now)
        self._fill_agent(agent_id, now)

    def _on_abandon(self, now: float, contact_id: int) -> None:
        if self.waiting.remove(contact_id) is None:
            return
        self.outcomes[contact_id] = replace(self.outcomes[contact_id], abandoned_s=now)

    def _on_escalate(self, now: float, contact_id: int, step: int, queue_id: int) -> None:
        ix = self.waiting.get(contact_id)
        if ix is None or ix.queue_id != queue_id:
            return
        steps = self.steps.get(queue_id, ())
        if step >= len(steps) or not math.isclose(
            ix.escalation_clock_start + steps[step].after_seconds, now
        ):
            return
        d = self.agents.decide_with_requirements(
            ix, self._requirements(ix, now), now, explain=False
        )
        if d.agent_id is not None:
            self.waiting.remove(contact_id)
            self._start(ix, d.agent_id, now)
        elif d.action == OVERFLOW and d.overflow_queue_id in self.queues:
            target = self.queues[d.overflow_queue_id]
            self.waiting.remove(contact_id)
            moved = replace(
                ix,
                queue_id=target.queue_id,
                required_skills=dict(target.required_skills),
                base_priority=ix.base_priority
                if target.base_priority is None
                else target.base_priority,
                team_id=target.team_id,
                queue_entered_at=now,
            )
            self._route_new(moved, now, first=False)

    def _on_login(self, now: float, agent_id: int) -> None:
        self.agents.set_present(agent_id, True, now)
        self._fill_agent(agent_id, now)

    def _on_logout(self, now: float, agent_id: int) -> None:
        self.agents.set_present(agent_id, False, now)

    def run(self) -> list[ReplayOutcome]:
        for c in self.inp.contacts:
            self._push(c.arrival_s, _ARRIVAL, c.contact_id)
        for agent in self.inp.agents:
            for login, logout in agent.shifts:
                self._push(login, _LOGIN, agent.agent_id)
                self._push(logout, _LOGOUT, agent.agent_id)
        last = 0.0
        while self.events:
            now, _, kind, a, b, _c = heapq.heappop(self.events)
            if kind == _ARRIVAL:
                self._on_arrival(now, a)
            elif kind == _END:
                self._on_end(now, a, self._channels[b])
            elif kind == _ABANDON:
                self._on_abandon(now, a)
            elif kind == _ESCALATE:
                self._on_escalate(now, a, b, _c)
            elif kind == _LOGIN:
                self._on_login(now, a)
            else:
                self._on_logout(now, a)
            last = now
        # Still waiting when everything is over (nobody could ever take them): missed.
        for ix in list(self.waiting):
            self.outcomes[ix.interaction_id] = replace(
                self.outcomes[ix.interaction_id], abandoned_s=max(last, ix.enqueued_at)
            )
        return sorted(self.outcomes.values(), key=lambda o: (o.arrival_s, o.contact_id))


def replay(inp: ReplayInput) -> list[ReplayOutcome]:
    return Replay(inp).run()
