"""Indexes and batch matching: the routing rules of :mod:`routing.policy`, made fast.

* :class:`AgentIndex` answers "best eligible agent for this interaction" with set
  intersections (per-skill "level >= L" sets, per-channel "ready" sets, language and
  team sets) instead of scanning every agent in Python, and stays updatable when an
  agent's load, presence or availability changes.
* :class:`WaitingIndex` answers "best waiting interaction for this agent" in
  O(number of requirement groups), independent of the backlog size.
* :func:`plan_batch` greedily pairs many interactions with agents
  in one go (what the DB layer claims in one transaction).

Both indexes return exactly what the reference functions
:func:`routing.policy.decide_agent` and :func:`routing.policy.decide_interaction`
return; the tests cross-check them. No Django import here.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from routing.policy import (
    ASSIGN,
    DEFAULT_CONFIG,
    ESCALATION_EPSILON_S,
    MAX_LEVEL,
    OVERFLOW,
    AgentKey,
    AgentSnapshot,
    Decision,
    EscalationStep,
    InteractionChoice,
    InteractionSnapshot,
    PolicyConfig,
    Reason,
    Requirements,
    availability_reason,
    candidate_from_key,
    competences,
    deciding_rule,
    effective_priority,
    effective_requirements,
    interaction_order_key,
    no_agent_decision,
    presence_reason,
    requirement_reason,
    requirements_at_step,
    step_index,
    validate_steps,
)

__all__ = [
    "AgentIndex",
    "BatchPlan",
    "Match",
    "WaitingIndex",
    "plan_batch",
]

_EMPTY: Final[frozenset[int]] = frozenset()


# =========================================================================== agents


class _Agent:
    """Mutable per-agent state kept by :class:`AgentIndex`."""

    __slots__ = (
        "agent_id",
        "available",
        "capacity",
        "exclusive",
        "idle_since",
        "languages",
        "load",
        "present",
        "skills",
        "team_id",
        "total_capacity",
        "total_load",
    )

    def __init__(self, s: AgentSnapshot) -> None:
        for code, level in s.skills.items():
            if not 1 <= level <= MAX_LEVEL:
                raise ValueError(f"agent {s.agent_id}: level of {code!r} must be 1..{MAX_LEVEL}")
        self.agent_id = s.agent_id
        self.skills: dict[str, int] = dict(s.skills)
        self.languages = frozenset(s.languages)
        self.team_id = s.team_id
        self.present = s.present
        self.available = frozenset(s.available_channels)
        self.capacity: dict[str, int] = dict(s.capacity)
        self.load: dict[str, int] = {c: n for c, n in s.load.items() if n}
        self.exclusive = frozenset(s.exclusive_channels)
        self.idle_since = s.idle_since
        self.total_load = sum(self.load.values())
        self.total_capacity = sum(self.capacity.values())

    def load_ratio(self) -> float:
        return self.total_load / self.total_capacity if self.total_capacity > 0 else 1.0

    def snapshot(self) -> AgentSnapshot:
        return AgentSnapshot(
            agent_id=self.agent_id,
            skills=dict(self.skills),
            languages=self.languages,
            team_id=self.team_id,
            present=self.present,
            available_channels=self.available,
            capacity=dict(self.capacity),
            load=dict(self.load),
            exclusive_channels=self.exclusive,
            idle_since=self.idle_since,
        )


class AgentIndex:
    """Agents indexed for fast eligibility and ranking.

    Static sets (change only on :meth:`upsert`): per skill and level ``L`` the agents
    with level >= L, per language, per team. Dynamic sets (updated by :meth:`assign`,
    :meth:`release`, :meth:`set_present`): per channel,
    agents available / under capacity / not blocked by exclusivity, and their
    intersection with presence, "ready". A decision intersects the ready set of the
    channel with the requirement sets, smallest first, then ranks the survivors
    (:func:`routing.policy.agent_rank_key`). With ``explain=True`` the sets are instead
    intersected in the fixed check order of :class:`routing.policy.Reason` so the
    number of agents dropped at each step is the exact "ineligible by reason" count.
    """

    def __init__(
        self, agents: Iterable[AgentSnapshot] = (), config: PolicyConfig = DEFAULT_CONFIG
    ) -> None:
        self.config = config
        self._agents: dict[int, _Agent] = {}
        self._all: set[int] = set()
        self._present: set[int] = set()
        self._channels: set[str] = set()
        self._avail: dict[str, set[int]] = {}
        self._capok: dict[str, set[int]] = {}
        self._exclok: dict[str, set[int]] = {}
        self._ready: dict[str, set[int]] = {}
        self._level: dict[str, dict[int, int]] = {}
        self._ge: dict[str, list[set[int]]] = {}
        self._lang: dict[str, set[int]] = {}
        self._team: dict[int, set[int]] = {}
        self._tail: dict[int, tuple[float, float, int]] = {}
        self._static_cache: dict[
            tuple[str, tuple[tuple[str, int], ...], str | None, int | None],
            tuple[set[int] | frozenset[int], dict[str, int]],
        ] = {}
        for a in agents:
            self.upsert(a)

    # ---------------------------------------------------------------- maintenance

    def __len__(self) -> int:
        return len(self._agents)

    def __contains__(self, agent_id: object) -> bool:
        return agent_id in self._agents

    def snapshot(self, agent_id: int) -> AgentSnapshot:
        """Current state of one agent (loads and idle_since included)."""
        return self._agents[agent_id].snapshot()

    def upsert(self, agent: AgentSnapshot) -> None:
        """Add an agent or replace everything known about it."""
        if agent.agent_id in self._agents:
            self.remove(agent.agent_id)
        self._static_cache.clear()
        a = _Agent(agent)
        aid = a.agent_id
        self._agents[aid] = a
        self._all.add(aid)
        for code, level in a.skills.items():
            self._level.setdefault(code, {})[aid] = level
            ge = self._ge.get(code)
            if ge is None:
                ge = self._ge[code] = [set() for _ in range(MAX_LEVEL + 1)]
            for lv in range(1, level + 1):
                ge[lv].add(aid)
        for lang in a.languages:
            self._lang.setdefault(lang, set()).add(aid)
        if a.team_id is not None:
            self._team.setdefault(a.team_id, set()).add(aid)
        for ch in (a.available | a.capacity.keys() | a.load.keys()) - self._channels:
            self._add_channel(ch)
        self._refresh(a)

    def remove(self, agent_id: int) -> None:
        """Forget an agent (logged out for good, deleted...)."""
        a = self._agents.pop(agent_id, None)
        if a is None:
            return
        self._static_cache.clear()
        self._all.discard(agent_id)
        self._present.discard(agent_id)
        for code, level in a.skills.items():
            del self._level[code][agent_id]
            ge = self._ge[code]
            for lv in range(1, level + 1):
                ge[lv].discard(agent_id)
        for lang in a.languages:
            self._lang[lang].discard(agent_id)
        if a.team_id is not None:
            self._team[a.team_id].discard(agent_id)
        for ch in self._channels:
            self._avail[ch].discard(agent_id)
            self._capok[ch].discard(agent_id)
            self._exclok[ch].discard(agent_id)
            self._ready[ch].discard(agent_id)
        self._tail.pop(agent_id, None)

    def _add_channel(self, ch: str) -> None:
        self._static_cache.clear()
        self._channels.add(ch)
        self._avail[ch] = set()
        self._capok[ch] = set()
        self._exclok[ch] = set()
        self._ready[ch] = set()
        for a in self._agents.values():
            self._refresh(a)

    def _refresh(self, a: _Agent) -> None:
        """Recompute the dynamic memberships of one agent (O(channels))."""
        aid = a.agent_id
        if a.present:
            self._present.add(aid)
        else:
            self._present.discard(aid)
        load = a.load
        busy_exclusive = any(load.get(c, 0) > 0 for c in a.exclusive)
        has_work = a.total_load > 0
        for ch in self._channels:
            av = ch in a.available
            cap = load.get(ch, 0) < a.capacity.get(ch, 0)
            ex = not busy_exclusive and not (has_work and ch in a.exclusive)
            (self._avail[ch].add if av else self._avail[ch].discard)(aid)
            (self._capok[ch].add if cap else self._capok[ch].discard)(aid)
            (self._exclok[ch].add if ex else self._exclok[ch].discard)(aid)
            if a.present and av and cap and ex:
                self._ready[ch].add(aid)
            else:
                self._ready[ch].discard(aid)
        self._tail[aid] = (a.idle_since, a.load_ratio(), aid)

    def _refresh_load(self, a: _Agent) -> None:
        """:meth:`_refresh` when only the load changed (the hot path)."""
        aid = a.agent_id
        load = a.load
        exclusive = a.exclusive
        busy_exclusive = False
        if load:
            for c in exclusive:
                if c in load:
                    busy_exclusive = True
                    break
        has_work = a.total_load > 0
        present = a.present
        available = a.available
        capacity = a.capacity
        for ch in self._channels:
            cap = load.get(ch, 0) < capacity.get(ch, 0)
            ex = not busy_exclusive and not (has_work and ch in exclusive)
            if cap:
                self._capok[ch].add(aid)
            else:
                self._capok[ch].discard(aid)
            if ex:
                self._exclok[ch].add(aid)
            else:
                self._exclok[ch].discard(aid)
            if cap and ex and present and ch in available:
                self._ready[ch].add(aid)
            else:
                self._ready[ch].discard(aid)
        self._tail[aid] = (a.idle_since, a.load_ratio(), aid)

    def assign(self, agent_id: int, channel: str, now: float | None = None) -> None:
        """One more interaction on ``channel`` (offered or accepted).

        ``now`` (if given) becomes the agent's ``idle_since``: the next equally
        competent candidate is preferred for the next contact (round robin)."""
        a = self._agents[agent_id]
        if channel not in self._channels:
            self._add_channel(channel)
        a.load[channel] = a.load.get(channel, 0) + 1
        a.total_load += 1
        if now is not None:
            a.idle_since = now
        self._refresh_load(a)

    def release(self, agent_id: int, channel: str, now: float | None = None) -> None:
        """One interaction on ``channel`` ended (or an offer was declined/expired)."""
        a = self._agents[agent_id]
        n = a.load.get(channel, 0)
        if n > 0:
            if n == 1:
                del a.load[channel]
            else:
                a.load[channel] = n - 1
            a.total_load -= 1
        if now is not None:
            a.idle_since = now
        self._refresh_load(a)

    def set_present(self, agent_id: int, present: bool, now: float | None = None) -> None:
        a = self._agents[agent_id]
        if a.present != present:
            self._static_cache.clear()
        a.present = present
        if now is not None and present:
            a.idle_since = now
        self._refresh(a)

    def total_load(self, agent_id: int) -> int:
        return self._agents[agent_id].total_load

    def ready_channels(self, agent_id: int) -> list[str]:
        """Channels on which the agent can take one more interaction now."""
        return [ch for ch, ids in self._ready.items() if agent_id in ids]

    # ---------------------------------------------------------------- decisions

    def _ge_set(self, code: str, level: int) -> set[int] | frozenset[int]:
        ge = self._ge.get(code)
        if ge is None or level > MAX_LEVEL:
            return _EMPTY
        return ge[max(1, level)]

    def eligible_ids(
        self, interaction: InteractionSnapshot, req: Requirements
    ) -> set[int] | frozenset[int]:
        """Agents eligible for ``interaction`` under ``req`` (do not mutate the result)."""
        ready = self._ready.get(req.channel)
        if not ready:
            return _EMPTY
        sets: list[set[int] | frozenset[int]] = [ready]
        for code, level in req.skills.items():
            s = self._ge_set(code, level)
            if not s:
                return _EMPTY
            sets.append(s)
        if req.language:
            s = self._lang.get(req.language, _EMPTY)
            if not s:
                return _EMPTY
            sets.append(s)
        if req.team_id is not None:
            s = self._team.get(req.team_id, _EMPTY)
            if not s:
                return _EMPTY
            sets.append(s)
        excluded = interaction.excluded_agent_ids
        if len(sets) == 1:
            return ready - excluded if excluded else ready
        sets.sort(key=len)
        out = sets[0].intersection(*sets[1:])
        if excluded:
            out -= excluded
        return out

    def _static_pass(self, req: Requirements) -> tuple[set[int] | frozenset[int], dict[str, int]]:
        """Agents passing the checks that do not depend on load (presence, availability,
        team, skills, language), with drop counts per reason; cached per requirement
        signature until presence, availability or the agent set changes."""
        sig = (req.channel, tuple(sorted(req.skills.items())), req.language, req.team_id)
        hit = self._static_cache.get(sig)
        if hit is not None:
            return hit
        ch_sig = (req.channel, (), None, None)
        base = self._static_cache.get(ch_sig)
        if base is None:
            present = self._all & self._present
            avail = present & self._avail.get(req.channel, _EMPTY)
            base_counts: dict[str, int] = {}
            if len(present) != len(self._all):
                base_counts[Reason.ABSENT] = len(self._all) - len(present)
            if len(avail) != len(present):
                base_counts[Reason.UNAVAILABLE] = len(present) - len(avail)
            base = self._static_cache[ch_sig] = (avail, base_counts)
        s, counts = base[0], dict(base[1])

        def keep(other: set[int] | frozenset[int], reason: str) -> None:
            nonlocal s
            kept = s & other
            dropped = len(s) - len(kept)
            if dropped:
                counts[reason] = counts.get(reason, 0) + dropped
            s = kept

        if req.team_id is not None:
            keep(self._team.get(req.team_id, _EMPTY), Reason.NOT_IN_TEAM)
        for code in sorted(req.skills):
            keep(self._ge_set(code, 1), f"{Reason.MISSING_SKILL}:{code}")
            level = req.skills[code]
            if level > 1:
                keep(self._ge_set(code, level), f"{Reason.LEVEL_TOO_LOW}:{code}")
        if req.language:
            keep(self._lang.get(req.language, _EMPTY), Reason.LANGUAGE)
        if len(self._static_cache) >= 4096:
            self._static_cache.clear()
        self._static_cache[sig] = (s, counts)
        return s, counts

    def _explained_ids(
        self, interaction: InteractionSnapshot, req: Requirements
    ) -> tuple[set[int] | frozenset[int], dict[str, int]]:
        """Same set as :meth:`eligible_ids`, plus exact counts by first failing reason
        (the order of :class:`routing.policy.Reason`)."""
        static, static_counts = self._static_pass(req)
        counts = dict(static_counts)
        s: set[int] | frozenset[int] = static
        excluded = interaction.excluded_agent_ids & self._all
        if excluded:
            # Excluded is checked first: move those agents from their static reason.
            counts[Reason.EXCLUDED] = len(excluded)
            s = static - excluded
            for aid in excluded:
                if aid in static:
                    continue
                snap = self._agents[aid].snapshot()
                reason = presence_reason(snap, req.channel) or requirement_reason(snap, req)
                if reason is not None:
                    counts[reason] -= 1
                    if not counts[reason]:
                        del counts[reason]
        for other, reason in (
            (self._capok.get(req.channel, _EMPTY), Reason.NO_CAPACITY),
            (self._exclok.get(req.channel, _EMPTY), Reason.EXCLUSIVE_BUSY),
        ):
            kept = s & other
            if len(kept) != len(s):
                counts[reason] = counts.get(reason, 0) + len(s) - len(kept)
            s = kept
        return s, counts

    def _keys(
        self, ids: set[int] | frozenset[int], interaction: InteractionSnapshot
    ) -> list[AgentKey]:
        tail = self._tail
        pref = interaction.preferred_agent_id
        codes = competences(interaction.required_skills)
        if not codes:
            return [(0, 0 if a == pref else 1, tail[a]) for a in ids]
        if len(codes) == 1:
            lv = self._level.get(codes[0], {})
            return [(-lv.get(a, 0), 0 if a == pref else 1, tail[a]) for a in ids]
        lvs = [self._level.get(c, {}) for c in codes]
        return [(-sum(d.get(a, 0) for d in lvs), 0 if a == pref else 1, tail[a]) for a in ids]

    def best_agent(
        self,
        interaction: InteractionSnapshot,
        now: float,
        steps: Sequence[EscalationStep] = (),
        *,
        explain: bool = True,
    ) -> Decision:
        """Best eligible agent for ``interaction``; same result as
        :func:`routing.policy.decide_agent` over the indexed agents.

        ``explain=False`` skips the per-reason counts and the candidate list (the
        simulator's hot path); the choice and its rule are the same.
        """
        req = effective_requirements(interaction, steps, now)
        return self.decide_with_requirements(interaction, req, now, explain=explain)

    def decide_with_requirements(
        self,
        interaction: InteractionSnapshot,
        req: Requirements,
        now: float,
        *,
        explain: bool = True,
    ) -> Decision:
        if explain:
            ids, counts = self._explained_ids(interaction, req)
        else:
            ids, counts = self.eligible_ids(interaction, req), {}
        prio = effective_priority(interaction, now, self.config) if explain else None
        if not ids:
            return no_agent_decision(interaction, req, now, counts, prio)
        n_skills = len(competences(interaction.required_skills))
        keys = self._keys(ids, interaction)
        top_n = self.config.decision_log_top
        if explain:
            top = heapq.nsmallest(top_n, keys) if len(keys) > 4 * top_n else sorted(keys)[:top_n]
            best = top[0]
            runner = top[1] if len(top) > 1 else None
            candidates = tuple(candidate_from_key(k, n_skills, now) for k in top)
        else:
            best = min(keys)
            runner = None
            if len(keys) > 1:
                i = keys.index(best)
                keys[i] = keys[-1]
                keys.pop()
                runner = min(keys)
            candidates = ()
        return Decision(
            interaction_id=interaction.interaction_id,
            agent_id=best[2][2],
            action=ASSIGN,
            rule=deciding_rule(best, runner),
            at=now,
            requirements=req,
            proficiency=(-best[0] / n_skills) if n_skills else 0.0,
            eligible_count=len(ids),
            candidates=candidates,
            ineligible_counts=counts,
            effective_priority=prio,
        )


# =========================================================================== waiting


class _Entry:
    __slots__ = ("bucket", "ix", "sub", "token")

    def __init__(self, ix: InteractionSnapshot, sub: _Sub, token: int) -> None:
        self.ix = ix
        self.sub = sub
        self.bucket = 0
        self.token = token


class _Group:
    """Waiting interactions sharing channel, queue, skills, language and team."""

    __slots__ = ("channel", "count", "key", "reqs", "steps", "subs")

    def __init__(self, key: _GroupKey, steps: tuple[EscalationStep, ...]) -> None:
        channel, _queue_id, skills, language, team_id = key
        self.key = key
        self.channel = channel
        self.steps = steps
        # reqs[b]: requirements of bucket b = step index b - 1 (bucket 0: no step yet)
        self.reqs = tuple(
            requirements_at_step(channel, dict(skills), language, team_id, steps, i)
            for i in range(-1, len(steps))
        )
        self.subs: dict[tuple[int, float | None], _Sub] = {}
        self.count = 0


class _Sub:
    """Interactions of one group with the same base priority and SLA offset.

    Their effective priorities differ only through ``enqueued_at`` (ageing and SLA
    nearness both grow with waiting), so the oldest is always the most urgent: one
    min-heap on ``(enqueued_at, id)`` per escalation bucket keeps them in priority
    order forever, without re-sorting as time passes.
    """

    __slots__ = ("count", "group", "heaps", "key", "live")

    def __init__(self, group: _Group, key: tuple[int, float | None]) -> None:
        self.group = group
        self.key = key
        n = len(group.reqs)
        self.heaps: list[list[tuple[float, int, int]]] = [[] for _ in range(n)]
        self.live = [0] * n
        self.count = 0


_GroupKey = tuple[str, int, tuple[tuple[str, int], ...], str | None, int | None]


class WaitingIndex:
    """Waiting interactions grouped by requirement signature, for agents who free up.

    Group = (channel, queue, required skills, language, team). Inside a group,
    sub-groups by (base priority, SLA offset = sla_due_at - enqueued_at) are
    FIFO-ordered, which is also effective-priority order; inside a sub-group, one heap
    per escalation step reached ("bucket") so each bucket has a single set of effective
    requirements. Interactions move to the next bucket lazily when their step time
    passes (a global timer heap; each interaction moves at most once per step).

    :meth:`best_for_agent` checks the agent once per (group, bucket) and compares the
    heads only: O(groups x sub-groups x steps), independent of the backlog (plus
    O(log n) heap work, and skipping the few heads the agent has declined).
    """

    def __init__(
        self,
        config: PolicyConfig = DEFAULT_CONFIG,
        escalations: Mapping[int, Sequence[EscalationStep]] | None = None,
    ) -> None:
        self.config = config
        self._escalations: dict[int, tuple[EscalationStep, ...]] = {
            q: validate_steps(s) for q, s in (escalations or {}).items()
        }
        self._items: dict[int, _Entry] = {}
        self._groups: dict[_GroupKey, _Group] = {}
        self._by_channel: dict[str, dict[_GroupKey, _Group]] = {}
        self._timers: list[tuple[float, int, int]] = []
        self._token = 0

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, interaction_id: object) -> bool:
        return interaction_id in self._items

    def __iter__(self) -> Iterator[InteractionSnapshot]:
        return (e.ix for e in self._items.values())

    def get(self, interaction_id: int) -> InteractionSnapshot | None:
        e = self._items.get(interaction_id)
        return e.ix if e is not None else None

    def steps_for(self, queue_id: int) -> tuple[EscalationStep, ...]:
        return self._escalations.get(queue_id, ())

    def add(self, interaction: InteractionSnapshot) -> None:
        """Start tracking a waiting interaction (ValueError if already there)."""
        iid = interaction.interaction_id
        if iid in self._items:
            raise ValueError(f"interaction {iid} is already waiting")
        key: _GroupKey = (
            interaction.channel,
            interaction.queue_id,
            tuple(sorted(interaction.required_skills.items())),
            interaction.language or None,
            interaction.team_id,
        )
        g = self._groups.get(key)
        if g is None:
            g = _Group(key, self.steps_for(interaction.queue_id))
            self._groups[key] = g
            self._by_channel.setdefault(interaction.channel, {})[key] = g
        due = interaction.sla_due_at
        sub_key = (
            interaction.base_priority,
            None if due is None else round(due - interaction.enqueued_at, 6),
        )
        sub = g.subs.get(sub_key)
        if sub is None:
            sub = g.subs[sub_key] = _Sub(g, sub_key)
        self._token += 1
        e = _Entry(interaction, sub, self._token)
        self._items[iid] = e
        heapq.heappush(sub.heaps[0], (interaction.enqueued_at, iid, e.token))
        sub.live[0] += 1
        sub.count += 1
        g.count += 1
        if g.steps:
            self._schedule(e, 0)

    def update(self, interaction: InteractionSnapshot) -> None:
        """Replace a waiting interaction (e.g. after a decline added an exclusion)."""
        self.remove(interaction.interaction_id)
        self.add(interaction)

    def remove(self, interaction_id: int) -> InteractionSnapshot | None:
        """Stop tracking (answered, abandoned, moved). Returns it, or None if unknown."""
        e = self._items.pop(interaction_id, None)
        if e is None:
            return None
        sub = e.sub
        g = sub.group
        sub.live[e.bucket] -= 1
        sub.count -= 1
        g.count -= 1
        if sub.count == 0:
            del g.subs[sub.key]
        else:
            heap = sub.heaps[e.bucket]
            if len(heap) > 2 * sub.live[e.bucket] + 32:
                self._compact(sub, e.bucket)
        if g.count == 0:
            del self._groups[g.key]
            del self._by_channel[g.channel][g.key]
        return e.ix

    def _valid(self, entry: tuple[float, int, int], bucket: int) -> _Entry | None:
        e = self._items.get(entry[1])
        if e is None or e.token != entry[2] or e.bucket != bucket:
            return None
        return e

    def _compact(self, sub: _Sub, bucket: int) -> None:
        heap = [x for x in sub.heaps[bucket] if self._valid(x, bucket) is not None]
        heapq.heapify(heap)
        sub.heaps[bucket] = heap

    def _schedule(self, e: _Entry, next_step: int) -> None:
        t = e.ix.escalation_clock_start + e.sub.group.steps[next_step].after_seconds
        heapq.heappush(self._timers, (t - ESCALATION_EPSILON_S, e.token, e.ix.interaction_id))

    def _promote(self, now: float) -> None:
        """Move interactions whose next escalation step is due into their new bucket."""
        timers = self._timers
        retry: list[tuple[float, int, int]] = []
        while timers and timers[0][0] <= now:
            timer = heapq.heappop(timers)
            e = self._items.get(timer[2])
            if e is None or e.token != timer[1]:
                continue
            sub = e.sub
            g = sub.group
            ix = e.ix
            new_b = step_index(g.steps, now - ix.escalation_clock_start) + 1
            old_b = e.bucket
            if new_b <= old_b:  # float rounding at the boundary: try again later
                retry.append(timer)
                continue
            sub.live[old_b] -= 1
            sub.live[new_b] += 1
            e.bucket = new_b
            heapq.heappush(sub.heaps[new_b], (ix.enqueued_at, ix.interaction_id, e.token))
            if new_b < len(g.steps):
                self._schedule(e, new_b)
        for timer in retry:
            heapq.heappush(timers, timer)

    def _head(self, sub: _Sub, bucket: int, agent_id: int) -> _Entry | None:
        """Oldest live entry of a bucket that ``agent_id`` has not declined."""
        heap = sub.heaps[bucket]
        skipped: list[tuple[float, int, int]] = []
        found: _Entry | None = None
        while heap:
            e = self._valid(heap[0], bucket)
            if e is None:
                heapq.heappop(heap)
            elif agent_id in e.ix.excluded_agent_ids:
                skipped.append(heapq.heappop(heap))
            else:
                found = e
                break
        for x in skipped:
            heapq.heappush(heap, x)
        return found

    def best_for_agent(self, agent: AgentSnapshot, now: float) -> InteractionChoice | None:
        """Best waiting interaction ``agent`` may take now; same result as
        :func:`routing.policy.decide_interaction` over the indexed interactions."""
        self._promote(now)
        config = self.config
        aid = agent.agent_id
        best: tuple[tuple[float, float, int], _Entry, Requirements] | None = None
        oldest: float | None = None
        for ch, groups in self._by_channel.items():
            if not groups or availability_reason(agent, ch):
                continue
            for g in groups.values():
                ok = [requirement_reason(agent, r) is None for r in g.reqs]
                if not any(ok):
                    continue
                for sub in g.subs.values():
                    for b, allowed in enumerate(ok):
                        if not allowed or not sub.live[b]:
                            continue
                        e = self._head(sub, b, aid)
                        if e is None:
                            continue
                        key = interaction_order_key(e.ix, now, config)
                        if oldest is None or key[1] < oldest:
                            oldest = key[1]
                        if best is None or key < best[0]:
                            best = (key, e, g.reqs[b])
        if best is None:
            return None
        key, e, req = best
        return InteractionChoice(
            interaction=e.ix,
            effective_priority=-key[0],
            requirements=req,
            rule="effective_priority" if oldest is not None and oldest < key[1] else "fifo",
        )


# =========================================================================== batch


@dataclass(frozen=True, slots=True)
class Match:
    """One interaction paired with one agent, with the decision to log."""

    interaction_id: int
    agent_id: int
    channel: str
    decision: Decision


@dataclass(frozen=True, slots=True)
class BatchPlan:
    matches: tuple[Match, ...]
    overflows: tuple[Decision, ...]
    """Nobody eligible and an escalation step says "move to another queue"."""
    unmatched_ids: tuple[int, ...]
    """Still waiting, in service order."""


def plan_batch(
    interactions: Iterable[InteractionSnapshot],
    agents: Iterable[AgentSnapshot] | AgentIndex,
    now: float,
    config: PolicyConfig = DEFAULT_CONFIG,
    escalations: Mapping[int, Sequence[EscalationStep]] | None = None,
    *,
    explain: bool = True,
) -> BatchPlan:
    """Greedy batch matching in effective-priority order.

    Interactions are taken highest effective priority first (FIFO within equals);
    each takes its best eligible agent, whose load is then updated in memory, so no
    agent exceeds its capacity and no interaction is assigned twice (duplicates in
    the input are ignored after the first). Deterministic for the same inputs.

    Work-conserving: when it returns, no interaction left waiting has an eligible
    agent with spare capacity (loads only grow during a batch, so an interaction
    that found nobody at its turn still finds nobody at the end).

    An :class:`AgentIndex` passed as ``agents`` is updated in place.
    """
    index = agents if isinstance(agents, AgentIndex) else AgentIndex(agents, config)
    esc = {q: validate_steps(s) for q, s in (escalations or {}).items()}
    unique: dict[int, InteractionSnapshot] = {}
    for ix in interactions:
        unique.setdefault(ix.interaction_id, ix)
    ordered = sorted(unique.values(), key=lambda ix: interaction_order_key(ix, now, config))
    matches: list[Match] = []
    overflows: list[Decision] = []
    unmatched: list[int] = []
    # Requirement signatures nobody can take any more in this batch: skip them cheaply.
    dead: set[tuple[str, tuple[tuple[str, int], ...], str | None, int | None]] = set()
    for ix in ordered:
        req = effective_requirements(ix, esc.get(ix.queue_id, ()), now)
        sig = (req.channel, tuple(sorted(req.skills.items())), req.language, req.team_id)
        if sig in dead and req.overflow_queue_id is None:
            unmatched.append(ix.interaction_id)
            continue
        if not index.eligible_ids(ix, req):
            if not ix.excluded_agent_ids:
                dead.add(sig)
            if req.overflow_queue_id is None or req.overflow_queue_id == ix.queue_id:
                unmatched.append(ix.interaction_id)
                continue
        d = index.decide_with_requirements(ix, req, now, explain=explain)
        if d.agent_id is not None:
            index.assign(d.agent_id, ix.channel, now)
            matches.append(Match(ix.interaction_id, d.agent_id, ix.channel, d))
            continue
        if not ix.excluded_agent_ids:
            dead.add(sig)
        if d.action == OVERFLOW:
            overflows.append(d)
        else:
            unmatched.append(ix.interaction_id)
    return BatchPlan(tuple(matches), tuple(overflows), tuple(unmatched))
