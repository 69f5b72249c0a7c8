"""The available agents, indexed once and kept up to date from pass to pass.

A routing pass needs every available agent in an :class:`routing.matching.AgentIndex`.
Building it from scratch each pass (reading 500 agents' skills, languages, capacities, loads,
then indexing them) cost most of a pass's CPU, although between two passes only a few agents
change (the one just offered a contact, the ones who closed one or changed state).

:class:`AgentPool` keeps the index in the process and asks the database each pass only for
what changed: one statement reads the available agents with, for each, a 64-bit digest
(``hash_record_extended``) of everything the routing snapshot is built from (presence,
profile, skills, the organisation, the load), and sends back the full row only for the agents
whose digest differs from the one the pool holds (the pool sends its digests along). An agent
whose skill, team, language, capacity, channels or load changed is re-read in that very pass:
nothing is ever stale, and a pass decides exactly as one that read every agent.

Agents the pool's own plan changed in memory (an offer counted in their load, their
``idle_since`` moved) are forgotten after the plan (:meth:`AgentPool.forget`), so the next pass
reads them again. Any error while the pool changes drops it whole (the next pass starts from
scratch). One pool per thread: passes in several threads never share one.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from django.db import connection

from agents.models import AgentPresence, AgentProfile, AgentSkill, AgentState
from configuration.models import Skill
from interactions.channels import Channel
from interactions.models import Interaction
from kernel.pg import execute_binary

from . import selectors
from .matching import AgentIndex
from .policy import MAX_LEVEL, AgentSnapshot, PolicyConfig

# The columns of a full row, in the statement's order (after agent_id and the digest).
_CHANNELS = tuple(str(c) for c in Channel)


def _pg_sql() -> str:
    presence = connection.ops.quote_name(AgentPresence._meta.db_table)
    profile = connection.ops.quote_name(AgentProfile._meta.db_table)
    agent_skill = connection.ops.quote_name(AgentSkill._meta.db_table)
    skill = connection.ops.quote_name(Skill._meta.db_table)
    interaction = connection.ops.quote_name(Interaction._meta.db_table)
    capacities = ", ".join(f"a.capacity_{c} AS cap_{c}" for c in _CHANNELS)
    capacity_out = ", ".join(f"d.cap_{c}" for c in _CHANNELS)
    # The skills and the loads of the available agents are aggregated once for all of them
    # (a subquery per agent and per array was 1,500 sub-plans for 500 agents, run twice:
    # once for the digest's record and once for its columns). Each array keeps its order:
    # skills by their row, loads by channel; an agent with none has an empty one.
    return f"""
        WITH p AS MATERIALIZED (
            SELECT agent_id, channels_enabled::text AS channels, idle_since FROM {presence}
            WHERE state = %b AND last_heartbeat_at >= %b
        ), sk AS (
            SELECT k.agent_id, array_agg(s.code ORDER BY k.id) AS codes,
                   array_agg(k.level ORDER BY k.id) AS levels
            FROM {agent_skill} k JOIN {skill} s ON s.id = k.skill_id
            WHERE k.agent_id IN (SELECT agent_id FROM p) GROUP BY k.agent_id
        ), ld AS (
            SELECT assigned_agent_id AS agent_id, array_agg(channel ORDER BY channel) AS loads
            FROM {interaction}
            WHERE status = ANY(%b::varchar[]) AND assigned_agent_id IN (SELECT agent_id FROM p)
            GROUP BY assigned_agent_id
        ), q AS (
            SELECT p.agent_id, p.channels, p.idle_since, a.team_id, a.organisation_id,
                   a.languages::text AS languages, {capacities}, a.voice_exclusive,
                   COALESCE(sk.codes, '{{}}') AS codes, COALESCE(sk.levels, '{{}}') AS levels,
                   COALESCE(ld.loads, '{{}}') AS loads
            FROM p JOIN {profile} a ON a.id = p.agent_id
            LEFT JOIN sk ON sk.agent_id = p.agent_id LEFT JOIN ld ON ld.agent_id = p.agent_id
        ), f AS MATERIALIZED (SELECT q.*, hash_record_extended(q, 0) AS fp FROM q)
        SELECT f.agent_id, f.fp, d.agent_id, d.channels, d.idle_since, d.team_id, d.organisation_id,
               d.languages, {capacity_out}, d.voice_exclusive, d.codes, d.levels, d.loads
        FROM f
        LEFT JOIN unnest(%b::bigint[], %b::bigint[]) AS k(id, fp) ON k.id = f.agent_id
        LEFT JOIN LATERAL (SELECT f.* WHERE k.fp IS DISTINCT FROM f.fp) d ON true
    """  # noqa: S608 - table names from the models, values as parameters


_SQL: dict[str, str] = {}


def _snapshot(agent_id: int, row: tuple[Any, ...]) -> tuple[AgentSnapshot, int]:
    """(snapshot, free slots) from a full row: channels, idle_since, team, organisation,
    languages, one capacity per channel, voice_exclusive, skill codes, levels, loads."""
    channels_text, idle_since, team_id, organisation_id, languages_text = row[:5]
    n = len(_CHANNELS)
    capacity = {c: int(v) for c, v in zip(_CHANNELS, row[5 : 5 + n], strict=True)}
    voice_exclusive, codes, levels, load_channels = row[5 + n :]
    skills = dict(zip(codes, levels, strict=True))
    skills[selectors.organisation_skill(organisation_id)] = MAX_LEVEL
    load: dict[str, int] = {}
    for channel in load_channels:
        load[channel] = load.get(channel, 0) + 1
    available = frozenset(
        (json.loads(channels_text) if isinstance(channels_text, str) else channels_text) or ()
    )
    languages = (
        json.loads(languages_text) if isinstance(languages_text, str) else languages_text
    ) or ()
    snapshot = AgentSnapshot(
        agent_id=agent_id,
        skills=skills,
        languages=frozenset(languages),
        team_id=team_id,
        present=True,
        available_channels=available,
        capacity=capacity,
        load=load,
        exclusive_channels=selectors.exclusive_channels(voice_exclusive),
        idle_since=idle_since.timestamp(),
    )
    free = sum(max(0, capacity.get(c, 0) - load.get(c, 0)) for c in available)
    return snapshot, free


class AgentPool:
    """An :class:`AgentIndex` of the available agents, refreshed by digest each pass."""

    def __init__(self) -> None:
        self.index = AgentIndex()
        self._digests: dict[int, int] = {}
        self._free: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._digests)

    @property
    def free_slots(self) -> int:
        """Free slots of the agents as read (before any plan): on their available channels,
        capacity less load."""
        return sum(self._free.values())

    def refresh(self, now: datetime, config: PolicyConfig) -> AgentIndex:
        """Bring the index up to the database's available agents (one statement)."""
        cutoff = selectors.heartbeat_cutoff(now)
        with self._guard():
            rows = self._rows(cutoff)
            seen: set[int] = set()
            index = self.index
            index.config = config
            for agent_id, digest, full in rows:
                seen.add(agent_id)
                if full is None:
                    continue  # unchanged since the pool read it
                snapshot, free = _snapshot(agent_id, full)
                index.upsert(snapshot)
                self._digests[agent_id] = digest
                self._free[agent_id] = free
            for agent_id in [a for a in self._digests if a not in seen]:
                index.remove(agent_id)
                del self._digests[agent_id]
                del self._free[agent_id]
            return index

    def forget(self, agent_ids: Iterable[int]) -> None:
        """These agents changed in memory (a plan counted work on them): read them again."""
        for agent_id in agent_ids:
            self._digests.pop(agent_id, None)
            self._free.pop(agent_id, None)
            self.index.remove(agent_id)

    def clear(self) -> None:
        self.index = AgentIndex()
        self._digests.clear()
        self._free.clear()

    @contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except BaseException:
            self.clear()
            raise

    @contextmanager
    def planning(self) -> Iterator[AgentIndex]:
        """The index, for a plan that changes it in memory: afterwards, every agent whose
        state the plan changed is read again by the next pass (on error: the whole pool)."""
        index = self.index
        before = {aid: index.total_load(aid) for aid in self._digests}
        with self._guard():
            yield index
        self.forget([aid for aid, load in before.items() if index.total_load(aid) != load])

    def _rows(self, cutoff: datetime) -> list[tuple[int, int, tuple[Any, ...] | None]]:
        """(agent, digest, full row or None when the pool holds that digest)."""
        if connection.vendor == "postgresql":
            sql = _SQL.get(connection.alias)
            if sql is None:
                sql = _SQL[connection.alias] = _pg_sql()
            ids = list(self._digests)
            # Bound on the server (one array per column). Planned each pass: Django's
            # connections prepare nothing (prepare_threshold None, for connection poolers).
            with execute_binary(
                sql,
                [
                    str(AgentState.AVAILABLE),
                    cutoff,
                    [str(s) for s in selectors.LOAD_STATUSES],
                    ids,
                    [self._digests[a] for a in ids],
                ],
            ) as cursor:
                return [
                    (row[0], row[1], None if row[2] is None else row[3:])
                    for row in cursor.fetchall()
                ]
        # Elsewhere (SQLite): the ORM's reads, digested here.
        out: list[tuple[int, int, tuple[Any, ...] | None]] = []
        for p, skills, load in _orm_rows(cutoff):
            full = (
                p["channels_enabled"],
                p["idle_since"],
                p["agent__team_id"],
                p["agent__organisation_id"],
                p["agent__languages"],
                *(p[f"agent__capacity_{c}"] for c in _CHANNELS),
                p["agent__voice_exclusive"],
                list(skills),
                list(skills.values()),
                [c for c, n in sorted(load.items()) for _ in range(n)],
            )
            digest = hash(repr(full))
            known = self._digests.get(p["agent_id"])
            out.append((p["agent_id"], digest, None if known == digest else full))
        return out


# The fields of an available agent the ORM path reads (SQLite), in the full row's order.
_ORM_FIELDS = (
    "agent_id",
    "channels_enabled",
    "idle_since",
    "agent__team_id",
    "agent__organisation_id",
    "agent__languages",
    *(f"agent__capacity_{c}" for c in _CHANNELS),
    "agent__voice_exclusive",
)


def _orm_rows(cutoff: datetime) -> list[tuple[dict[str, Any], dict[str, int], dict[str, int]]]:
    """(presence fields, skills, load) of each available agent, with the ORM (three reads):
    the embedded SQLite default."""
    presences = list(
        AgentPresence.objects.filter(
            state=AgentState.AVAILABLE, last_heartbeat_at__gte=cutoff
        ).values(*_ORM_FIELDS)
    )
    if not presences:
        return []
    ids = [p["agent_id"] for p in presences]
    skills: dict[int, dict[str, int]] = defaultdict(dict)
    for agent_id, code, level in AgentSkill.objects.filter(agent_id__in=ids).values_list(
        "agent_id", "skill__code", "level"
    ):
        skills[agent_id][code] = level
    loads = selectors.agent_loads(ids)
    return [(p, skills[p["agent_id"]], loads.get(p["agent_id"], {})) for p in presences]


def available_agents(now: datetime) -> list[AgentSnapshot]:
    """Snapshots of the agents who may get work now (available, console alive), read afresh
    by the pool's own statement: for benchmarks and checks outside a pass."""
    fresh = AgentPool()
    index = fresh.refresh(now, selectors.policy_config())
    return [index.snapshot(agent_id) for agent_id in fresh._digests]


_local = threading.local()


def pool() -> AgentPool:
    """This thread's pool."""
    found: AgentPool | None = getattr(_local, "pool", None)
    if found is None:
        found = _local.pool = AgentPool()
    return found
