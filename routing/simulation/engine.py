"""The one discrete-event engine of ``manage.py simulate`` and of the what-if replay.

It routes with the production code: :class:`routing.matching.AgentIndex` picks the agent when a
contact arrives or reaches an escalation step, :class:`routing.matching.WaitingIndex` picks the
contact when an agent frees up or logs in, escalation and overflow come from
:mod:`routing.policy`. :class:`Engine` is that routing in virtual time (events, requirements,
escalation, overflow, presence, after-call work); the world around it comes from one of two
sources:

* :class:`Simulator` (a :class:`~routing.simulation.scenario.Scenario`): Poisson arrivals,
  exponential or lognormal handle times, exponential patience, agents always logged in;
  figures over the contacts arriving after a warm-up (:class:`SimulationResult`).
* :class:`Replay` (a :class:`~routing.simulation.scenario.ReplayInput`): a recorded period as it
  happened. Each contact arrives when it did, holds the agent as long as it did (answer to
  wrap-up; a call's after-call work then keeps the agent from new offers as it did), the agent
  takes as long to accept as they did, the citizen hangs up when they did, agents log in and
  out (breaks included) when they did. What the recording cannot say is estimated,
  reproducibly (a seeded generator), per queue and channel:

  - patience of answered contacts: they waited at least their recorded wait; beyond it
    patience is exponential (memoryless) with the mean estimated from the recording (waits of
    everybody / number of hang-ups: the maximum-likelihood estimate with censored
    observations); no hang-up in that queue and channel: infinite patience;
  - handling of contacts nobody answered (they may be answered in the replay): one of the
    recorded handlings of that queue and channel, drawn at random;
  - the time an agent takes to accept an offer: recorded for answered contacts, else the mean.

Pure: no Django.
"""

from __future__ import annotations

import heapq
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Final, NamedTuple

from interactions.channels import Channel
from routing.matching import AgentIndex, WaitingIndex
from routing.policy import (
    OVERFLOW,
    AgentSnapshot,
    EscalationStep,
    InteractionSnapshot,
    PolicyConfig,
    Requirements,
    proficiency,
    requirements_at_step,
    step_index,
)

from .report import QueueResult, ReplayOutcome, SimulationResult, erlang_prediction, ratio
from .scenario import QueueSpec, ReplayContact, ReplayInput, Scenario, capacity_of_group

__all__ = [
    "Engine",
    "ProgressCallback",
    "Replay",
    "Simulator",
    "mean_patience",
    "replay",
    "simulate",
]

ProgressCallback = Callable[[float, float], None]
"""Called as ``progress(virtual_now_s, virtual_end_s)`` every few thousand events."""

_ARRIVAL: Final = 0
_END: Final = 1
_ABANDON: Final = 2
_ESCALATE: Final = 3
_LOGIN: Final = 4
_LOGOUT: Final = 5
_AFTER_WORK: Final = 6


class QueueRouting(NamedTuple):
    """What a contact takes from a queue it overflows into."""

    required_skills: Mapping[str, int]
    base_priority: int | None  # None: the contact keeps its own
    team_id: int | None


# =========================================================================== the engine


class Engine:
    """Routing in virtual time. Subclasses bring the contacts, their handling and patience, and
    what is measured (the hooks ``_start``, ``_wait_started``, ``_released``, ``_abandoned``,
    ``_overflowed`` and ``_on_arrival``)."""

    measure_proficiency = False

    def __init__(
        self,
        agents: list[AgentSnapshot],
        queues: Mapping[int, QueueRouting],
        steps: dict[int, tuple[EscalationStep, ...]],
        policy: PolicyConfig,
        channels: Sequence[str],
        *,
        cache_requirements: bool,
    ) -> None:
        self.config = policy
        self.routing = dict(queues)
        self.steps = steps
        self.agents = AgentIndex(agents, policy)
        self.waiting = WaitingIndex(policy, steps)
        self.events: list[tuple[float, int, int, int, int, int]] = []
        self._seq = 0
        self._channels: list[str] = sorted(set(channels))
        self._channel_code = {ch: i for i, ch in enumerate(self._channels)}
        self._rules: Counter[str] = Counter()
        # Contacts of one queue share their requirements in a synthetic scenario: cache them
        # per (queue, language, step). Recorded contacts each carry their own.
        self._req_cache: dict[tuple[int, str | None, int], Requirements] | None = (
            {} if cache_requirements else None
        )
        self._on_shift: dict[int, bool] = {}
        self._blocked_until: dict[int, float] = {}  # agent -> end of after-call work

    # ---------------------------------------------------------------- hooks

    def _start(
        self, ix: InteractionSnapshot, agent_id: int, now: float, prof: float | None
    ) -> None:
        raise NotImplementedError

    def _on_arrival(self, now: float, a: int) -> None:
        raise NotImplementedError

    def _wait_started(self, ix: InteractionSnapshot, now: float) -> None:
        """The contact starts waiting (not after an overflow): schedule its hang-up."""

    def _released(self, agent_id: int, contact_id: int, now: float) -> None:
        """The agent's capacity for one contact was freed (before refilling it)."""

    def _abandoned(self, contact_id: int, now: float) -> None:
        """The citizen hung up while waiting."""

    def _overflowed(self, contact_id: int) -> None:
        """The contact moved to another queue."""

    # ---------------------------------------------------------------- helpers

    def _push(self, t: float, kind: int, a: int, b: int = 0, c: int = 0) -> None:
        self._seq += 1
        heapq.heappush(self.events, (t, self._seq, kind, a, b, c))

    def _requirements(self, ix: InteractionSnapshot, now: float) -> Requirements:
        """Effective requirements (the same as ``policy.effective_requirements``)."""
        steps = self.steps.get(ix.queue_id, ())
        idx = step_index(steps, now - ix.escalation_clock_start) if steps else -1
        cache = self._req_cache
        if cache is None:
            return requirements_at_step(
                ix.channel, ix.required_skills, ix.language, ix.team_id, steps, idx
            )
        key = (ix.queue_id, ix.language, idx)
        req = cache.get(key)
        if req is None:
            req = cache[key] = requirements_at_step(
                ix.channel, ix.required_skills, ix.language, ix.team_id, steps, idx
            )
        return req

    def _schedule_escalations(self, ix: InteractionSnapshot) -> None:
        start = ix.escalation_clock_start
        for k, step in enumerate(self.steps.get(ix.queue_id, ())):
            self._push(start + step.after_seconds, _ESCALATE, ix.interaction_id, k, ix.queue_id)

    # ---------------------------------------------------------------- routing

    def _route_new(self, ix: InteractionSnapshot, now: float) -> None:
        """A contact arrives in a queue (or overflows into one): an agent now, or it waits."""
        d = self.agents.decide_with_requirements(
            ix, self._requirements(ix, now), now, explain=False
        )
        if d.agent_id is not None:
            self._rules[d.rule] += 1
            self._start(ix, d.agent_id, now, d.proficiency)
            return
        self.waiting.add(ix)
        if ix.queue_entered_at is None:
            self._wait_started(ix, now)
        self._schedule_escalations(ix)

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
            prof = proficiency(snap, ix.required_skills) if self.measure_proficiency else None
            self._start(ix, agent_id, now, prof)

    def _on_escalate(self, now: float, iid: int, step: int, queue_id: int) -> None:
        ix = self.waiting.get(iid)
        if ix is None or ix.queue_id != queue_id:
            return
        steps = self.steps.get(queue_id, ())
        if step >= len(steps) or ix.escalation_clock_start + steps[step].after_seconds != now:
            return  # stale: the contact changed queue since this was scheduled
        d = self.agents.decide_with_requirements(
            ix, self._requirements(ix, now), now, explain=False
        )
        if d.agent_id is not None:
            self.waiting.remove(iid)
            self._rules[d.rule] += 1
            self._start(ix, d.agent_id, now, d.proficiency)
            return
        target_id = d.overflow_queue_id if d.action == OVERFLOW else None
        target = self.routing.get(target_id) if target_id is not None else None
        if target is None or target_id is None:
            return
        self.waiting.remove(iid)
        self._overflowed(iid)
        priority = ix.base_priority if target.base_priority is None else target.base_priority
        moved = replace(
            ix,
            queue_id=target_id,
            required_skills=target.required_skills,
            base_priority=priority,
            team_id=target.team_id,
            queue_entered_at=now,
        )
        self._route_new(moved, now)

    # ---------------------------------------------------------------- events

    def _on_end(self, now: float, agent_id: int, code: int, contact_id: int) -> None:
        self.agents.release(agent_id, self._channels[code], now)
        self._released(agent_id, contact_id, now)
        self._fill_agent(agent_id, now)

    def _on_abandon(self, now: float, iid: int) -> None:
        if self.waiting.remove(iid) is None:
            return
        self._abandoned(iid, now)

    def _on_login(self, now: float, agent_id: int) -> None:
        self._on_shift[agent_id] = True
        if agent_id not in self._blocked_until:
            self.agents.set_present(agent_id, True, now)
            self._fill_agent(agent_id, now)

    def _on_logout(self, now: float, agent_id: int) -> None:
        self._on_shift[agent_id] = False
        self.agents.set_present(agent_id, False, now)

    def _block(self, agent_id: int, now: float, seconds: float) -> None:
        """After-call work: no new offer for ``seconds`` (the agent keeps what they hold)."""
        until = max(now + seconds, self._blocked_until.get(agent_id, now))
        self._blocked_until[agent_id] = until
        self.agents.set_present(agent_id, False, now)
        self._push(until, _AFTER_WORK, agent_id)

    def _on_after_work(self, now: float, agent_id: int) -> None:
        if self._blocked_until.get(agent_id, now) > now:
            return  # a later after-call work runs on
        self._blocked_until.pop(agent_id, None)
        if self._on_shift.get(agent_id, False):
            self.agents.set_present(agent_id, True, now)
            self._fill_agent(agent_id, now)

    def _run_events(
        self,
        stop_at: float | None = None,
        progress: ProgressCallback | None = None,
        every: int = 8192,
    ) -> tuple[int, float]:
        """Process events in time order until none is left (or, past ``stop_at``, until no
        contact waits). Returns (events processed, time of the last one)."""
        events = self.events
        n = 0
        now = 0.0
        end = math.inf if stop_at is None else stop_at
        while events:
            now, _, kind, a, b, c = heapq.heappop(events)
            if now >= end and not self.waiting:
                break
            n += 1
            if kind == _END:
                self._on_end(now, a, b, c)
            elif kind == _ARRIVAL:
                self._on_arrival(now, a)
            elif kind == _ABANDON:
                self._on_abandon(now, a)
            elif kind == _ESCALATE:
                self._on_escalate(now, a, b, c)
            elif kind == _LOGIN:
                self._on_login(now, a)
            elif kind == _LOGOUT:
                self._on_logout(now, a)
            else:
                self._on_after_work(now, a)
            if progress is not None and n % every == 0:
                progress(min(now, end), end)
        return n, now


# =========================================================================== simulation


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


class Simulator(Engine):
    """One run of a :class:`Scenario`. Use :meth:`run` once.

    Measured over contacts *arriving* in ``[warm-up, end)``; arrivals stop at the end and the
    run continues until every measured contact is answered or has hung up, so nothing is
    censored (definitions: docs/routing.md, section 7)."""

    measure_proficiency = True

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
        self.queues: dict[int, QueueSpec] = {q.queue_id: q for q in scenario.queues}
        super().__init__(
            self._make_agents(),
            {
                q.queue_id: QueueRouting(q.required_skills, q.base_priority, q.team_id)
                for q in scenario.queues
            },
            {q.queue_id: q.escalation for q in scenario.queues},
            scenario.policy,
            [q.channel for q in scenario.queues],
            cache_requirements=True,
        )
        self.end = scenario.hours * 3600.0
        self.warm = min(scenario.warmup_s, self.end * 0.5)
        self._next_id = 0
        # waiting contact -> (origin queue id, arrival time, measured?)
        self._meta: dict[int, tuple[int, float, bool]] = {}
        self._stats: dict[int, _QueueStats] = {q: _QueueStats() for q in self.queues}
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
            cap = capacity_of_group(g)
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

    # ---------------------------------------------------------------- draws and measures

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

    def _sl_of(self, queue_id: int) -> float:
        q = self.queues[queue_id]
        return q.sl_seconds if q.sl_seconds is not None else self.scenario.sl_seconds

    # ---------------------------------------------------------------- hooks

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

    def _wait_started(self, ix: InteractionSnapshot, now: float) -> None:
        patience = self.queues[self._meta[ix.interaction_id][0]].patience_s
        if patience:
            self._push(now + self.rng.expovariate(1.0 / patience), _ABANDON, ix.interaction_id)

    def _released(self, agent_id: int, contact_id: int, now: float) -> None:
        if self.agents.total_load(agent_id) == 0:
            self._advance(now)
            self._busy -= 1

    def _abandoned(self, contact_id: int, now: float) -> None:
        origin, arrived, measured = self._meta.pop(contact_id)
        if measured:
            st = self._stats[origin]
            st.abandoned += 1
            if now - arrived <= self._sl_of(origin):
                st.abandoned_within += 1

    def _overflowed(self, contact_id: int) -> None:
        origin, _arrived, measured = self._meta[contact_id]
        if measured:
            self._stats[origin].overflowed += 1

    # ---------------------------------------------------------------- run

    def run(self) -> SimulationResult:
        t0 = time.perf_counter()
        for q in self.scenario.queues:
            if q.arrivals_per_hour > 0:
                self._push(self.rng.expovariate(q.arrivals_per_hour / 3600.0), _ARRIVAL, q.queue_id)
        n, now = self._run_events(self.end, self.progress, self.progress_every)
        self._advance(max(now, self.end))
        if self.progress is not None:
            self.progress(self.end, self.end)
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
                    service_level=ratio(st.answered_within, offered),
                    asa_s=ratio(st.wait_sum, st.answered),
                    abandon_rate=ratio(st.abandoned, offered),
                    mean_proficiency=ratio(st.prof_sum, st.prof_n),
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
            service_level=ratio(tot.answered_within, offered),
            service_level_excl_short_abandons=ratio(
                tot.answered_within, offered - tot.abandoned_within
            ),
            asa_s=ratio(tot.wait_sum, tot.answered),
            abandon_rate=ratio(tot.abandoned, offered),
            occupancy=occupancy,
            mean_proficiency=ratio(tot.prof_sum, tot.prof_n),
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


def simulate(scenario: Scenario, progress: ProgressCallback | None = None) -> SimulationResult:
    """Run ``scenario`` once and return its figures."""
    return Simulator(scenario, progress=progress).run()


# =========================================================================== replay


def mean_patience(contacts: Sequence[ReplayContact]) -> float | None:
    """Maximum-likelihood mean of exponential patience, answered waits being censored."""
    abandons = [c.patience_s for c in contacts if c.patience_s is not None]
    if not abandons:
        return None
    exposure = sum(abandons) + sum(c.recorded_wait_s or 0.0 for c in contacts)
    return max(1.0, exposure / len(abandons))


@dataclass(frozen=True, slots=True)
class _Handling:
    handle_s: float  # answer -> closure (the report's handling time)
    hold_s: float  # answer -> capacity freed
    after_work_s: float  # then no new offer for this long


@dataclass
class _Estimates:
    patience_mean: float | None
    handlings: list[_Handling]
    accept_mean: float


def _handling(c: ReplayContact) -> _Handling | None:
    if c.handle_s is None:
        return None
    hold = c.handle_s if c.hold_s is None else c.hold_s
    return _Handling(c.handle_s, hold, c.after_work_s)


def _estimates(contacts: Sequence[ReplayContact]) -> _Estimates:
    handlings = [h for h in map(_handling, contacts) if h is not None]
    handlings.sort(key=lambda h: (h.handle_s, h.hold_s, h.after_work_s))
    accepts = [c.accept_delay_s for c in contacts if c.accept_delay_s is not None]
    return _Estimates(
        patience_mean=mean_patience(contacts),
        handlings=handlings or [_Handling(300.0, 300.0, 0.0)],
        accept_mean=sum(accepts) / len(accepts) if accepts else 0.0,
    )


class Replay(Engine):
    """One replay of a :class:`ReplayInput`. Use :meth:`run` once."""

    def __init__(self, inp: ReplayInput) -> None:
        self.inp = inp
        self.rng = random.Random(inp.seed)  # noqa: S311 - a model, not crypto
        self.queues = dict(inp.queues)
        super().__init__(
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
            {
                q.queue_id: QueueRouting(dict(q.required_skills), q.base_priority, q.team_id)
                for q in self.queues.values()
            },
            {q.queue_id: q.escalation for q in self.queues.values()},
            inp.policy,
            [c.channel for c in inp.contacts] + [Channel.VOICE.value],
            cache_requirements=False,
        )
        self.contacts = {c.contact_id: c for c in inp.contacts}
        by_kind: dict[tuple[int, str], list[ReplayContact]] = {}
        for c in inp.contacts:
            by_kind.setdefault((c.queue_id, c.channel), []).append(c)
        self.estimates = {k: _estimates(cs) for k, cs in by_kind.items()}
        self.outcomes: dict[int, ReplayOutcome] = {}
        self._gives_up: dict[int, float] = {}  # contact -> when its citizen hangs up
        self._after_work: dict[int, float] = {}  # contact being handled -> its after-call work

    # ---------------------------------------------------------------- draws

    def _patience(self, c: ReplayContact) -> float | None:
        if c.patience_s is not None:
            return c.patience_s
        mean = self.estimates[c.queue_id, c.channel].patience_mean
        if mean is None:
            return None
        return (c.recorded_wait_s or 0.0) + self.rng.expovariate(1.0 / mean)

    def _handling_of(self, c: ReplayContact) -> _Handling:
        own = _handling(c)
        if own is not None:
            return own
        return self.rng.choice(self.estimates[c.queue_id, c.channel].handlings)

    def _accept_delay(self, c: ReplayContact) -> float:
        if c.accept_delay_s is not None:
            return c.accept_delay_s
        return self.estimates[c.queue_id, c.channel].accept_mean

    # ---------------------------------------------------------------- hooks

    def _start(
        self, ix: InteractionSnapshot, agent_id: int, now: float, prof: float | None
    ) -> None:
        c = self.contacts[ix.interaction_id]
        self.agents.assign(agent_id, ix.channel, now)
        code = self._channel_code[ix.channel]
        answered = now + self._accept_delay(c)
        gives_up = self._gives_up.get(c.contact_id)
        if gives_up is not None and gives_up < answered:
            # The citizen hangs up while the offer rings at the agent (offered -> abandoned).
            self._push(gives_up, _END, agent_id, code, ix.interaction_id)
            self.outcomes[c.contact_id] = replace(self.outcomes[c.contact_id], abandoned_s=gives_up)
            return
        h = self._handling_of(c)
        if h.after_work_s > 0:
            self._after_work[c.contact_id] = h.after_work_s
        self._push(answered + h.hold_s, _END, agent_id, code, ix.interaction_id)
        self.outcomes[c.contact_id] = replace(
            self.outcomes[c.contact_id],
            answered_s=answered,
            closed_s=answered + h.handle_s,
            agent_id=agent_id,
        )

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
            excluded_agent_ids=c.excluded_agent_ids,
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
        self._route_new(ix, now)

    def _wait_started(self, ix: InteractionSnapshot, now: float) -> None:
        gives_up = self._gives_up.get(ix.interaction_id)
        if gives_up is not None:
            self._push(gives_up, _ABANDON, ix.interaction_id)

    def _released(self, agent_id: int, contact_id: int, now: float) -> None:
        after = self._after_work.pop(contact_id, 0.0)
        if after > 0:
            self._block(agent_id, now, after)

    def _abandoned(self, contact_id: int, now: float) -> None:
        self.outcomes[contact_id] = replace(self.outcomes[contact_id], abandoned_s=now)

    # ---------------------------------------------------------------- run

    def run(self) -> list[ReplayOutcome]:
        for c in self.inp.contacts:
            self._push(c.arrival_s, _ARRIVAL, c.contact_id)
        for agent in self.inp.agents:
            for login, logout in agent.shifts:
                self._push(login, _LOGIN, agent.agent_id)
                self._push(logout, _LOGOUT, agent.agent_id)
        _n, last = self._run_events()
        # Still waiting when everything is over (nobody could ever take them): missed, unless
        # they were still waiting when the period was read (pending in the report too).
        for ix in list(self.waiting):
            if not self.contacts[ix.interaction_id].pending:
                self.outcomes[ix.interaction_id] = replace(
                    self.outcomes[ix.interaction_id], abandoned_s=max(last, ix.enqueued_at)
                )
        return sorted(self.outcomes.values(), key=lambda o: (o.arrival_s, o.contact_id))


def replay(inp: ReplayInput) -> list[ReplayOutcome]:
    return Replay(inp).run()
