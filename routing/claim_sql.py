"""PostgreSQL fast path for writing a claimed chunk: one statement per table.

The ORM's ``bulk_create`` / ``bulk_update`` build one placeholder per value (and a ``CASE``
per row for updates); for a chunk of 500 claims that is thousands of parameters to convert on
every statement. Here each column travels as one array and ``unnest`` turns them back into
rows, so a chunk costs four short statements. The SQLite (embedded) path stays on the ORM.
Table and column names come from the models' metadata, never from input.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import connection
from psycopg.types.json import Jsonb

from agents.models import AgentPresence, AgentProfile
from interactions.channels import Channel
from interactions.models import Interaction, InteractionTransition
from kernel.pg import execute_binary

from .models import Offer, RoutingDecision

CHANNELS = tuple(str(c) for c in Channel)


def _table(model: Any) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def insert_offers(
    rows: Sequence[tuple[int, int, str, str, datetime, datetime, datetime | None]],
) -> dict[int, int]:
    """Insert offers (interaction, agent, channel, status, created, expires, responded);
    return interaction id -> offer id."""
    columns = list(zip(*rows, strict=True))
    sql = (
        f"INSERT INTO {_table(Offer)} "  # noqa: S608 - names from model metadata
        "(interaction_id, agent_id, channel, status, created_at, expires_at, responded_at) "
        "SELECT * FROM unnest(%b::bigint[], %b::bigint[], %b::varchar[], %b::varchar[], "
        "%b::timestamptz[], %b::timestamptz[], %b::timestamptz[]) "
        "RETURNING interaction_id, id"
    )
    with execute_binary(sql, [list(c) for c in columns]) as cursor:
        return dict(cursor.fetchall())


def insert_decisions(
    rows: Sequence[tuple[int, int, int, str, str, datetime, dict[str, Any]]],
) -> None:
    """Insert decision-log rows (interaction, offer, agent, action, rule, at, details)."""
    interaction, offer, agent, action, rule, at, details = zip(*rows, strict=True)
    sql = (
        f"INSERT INTO {_table(RoutingDecision)} "  # noqa: S608 - names from model metadata
        "(interaction_id, offer_id, agent_id, action, rule, at, details) "
        "SELECT * FROM unnest(%b::bigint[], %b::bigint[], %b::bigint[], %b::varchar[], "
        "%b::varchar[], %b::timestamptz[], %b::jsonb[])"
    )
    params = [
        list(interaction),
        list(offer),
        list(agent),
        list(action),
        list(rule),
        list(at),
        [Jsonb(d) for d in details],
    ]
    execute_binary(sql, params).close()


def insert_transitions(rows: Sequence[tuple[int, str, str, str, datetime]]) -> None:
    """Insert transition rows (interaction, from, to, reason, at)."""
    columns = list(zip(*rows, strict=True))
    sql = (
        f"INSERT INTO {_table(InteractionTransition)} "  # noqa: S608 - model metadata
        "(interaction_id, from_status, to_status, reason, at) "
        "SELECT * FROM unnest(%b::bigint[], %b::varchar[], %b::varchar[], %b::varchar[], "
        "%b::timestamptz[])"
    )
    execute_binary(sql, [list(c) for c in columns]).close()


def update_claimed(rows: Sequence[tuple[int, int, str, datetime, datetime | None]]) -> int:
    """Set (id, agent, status, offered_at, assigned_at) on interactions locked by the caller."""
    columns = list(zip(*rows, strict=True))
    table = _table(Interaction)
    sql = (
        f"UPDATE {table} AS i SET assigned_agent_id = v.agent, status = v.status, "  # noqa: S608
        "offered_at = v.offered, assigned_at = v.assigned "
        "FROM unnest(%b::bigint[], %b::bigint[], %b::varchar[], %b::timestamptz[], "
        "%b::timestamptz[]) AS v(id, agent, status, offered, assigned) WHERE i.id = v.id"
    )
    with execute_binary(sql, [list(c) for c in columns]) as cursor:
        return int(cursor.rowcount)


# The claim's locks (PostgreSQL): built once per process, read through Django's cursor.
_LOCK_SQL: dict[str, str] = {}


def _lock_agents_sql() -> str:
    capacities = ", ".join(f"a.capacity_{c}" for c in CHANNELS)
    # ``AgentPresence.objects.select_for_update(skip_locked=True, of=("self",)).filter(...)
    # .order_by("agent_id").values(*selectors.LOCKED_AGENT_FIELDS)``
    return (
        "SELECT p.agent_id, p.state, p.last_heartbeat_at, p.channels_enabled::text, "  # noqa: S608
        f"{capacities}, a.voice_exclusive "
        f"FROM {_table(AgentPresence)} p JOIN {_table(AgentProfile)} a ON a.id = p.agent_id "
        "WHERE p.agent_id = ANY(%s::bigint[]) AND p.state = %s AND p.last_heartbeat_at >= %s "
        "ORDER BY p.agent_id FOR UPDATE OF p SKIP LOCKED"
    )


def _lock_interactions_sql() -> str:
    table = _table(Interaction)
    # The queued interactions among the matched ones, locked (SKIP LOCKED, in id order), and
    # in the same statement the loads of the agents whose presence rows this transaction
    # already holds (its snapshot is taken after those locks: locking rule 3).
    return (
        f"WITH locked AS (SELECT id FROM {table} WHERE id = ANY(%s::bigint[]) AND status = %s "  # noqa: S608
        "ORDER BY id FOR UPDATE SKIP LOCKED) "
        "SELECT id, NULL, 0 FROM locked "
        "UNION ALL "
        f"SELECT assigned_agent_id, channel, count(*) FROM {table} "
        "WHERE assigned_agent_id = ANY(%s::bigint[]) AND status = ANY(%s) "
        "GROUP BY assigned_agent_id, channel"
    )


def lock_agents(agent_ids: list[int], state: str, cutoff: datetime) -> list[dict[str, Any]]:
    """The presence rows of these agents that are available with a live console, locked
    (SKIP LOCKED), with their profile's capacities: ``selectors.LOCKED_AGENT_FIELDS``."""
    sql = _LOCK_SQL.get("agents")
    if sql is None:
        sql = _LOCK_SQL["agents"] = _lock_agents_sql()
    with connection.cursor() as cursor:
        cursor.execute(sql, [agent_ids, state, cutoff])
        fetched = cursor.fetchall()
    keys = (
        "agent_id",
        "state",
        "last_heartbeat_at",
        "channels_enabled",
        *(f"agent__capacity_{c}" for c in CHANNELS),
        "agent__voice_exclusive",
    )
    rows = []
    for row in fetched:
        values = dict(zip(keys, row, strict=True))
        channels = values["channels_enabled"]
        values["channels_enabled"] = json.loads(channels) if channels else None
        rows.append(values)
    return rows


def lock_interactions_and_count_loads(
    interaction_ids: list[int], queued: str, agent_ids: list[int], load_statuses: Sequence[str]
) -> tuple[set[int], dict[int, dict[str, int]]]:
    """(the queued interactions among these, locked; agent -> channel -> load)."""
    sql = _LOCK_SQL.get("interactions")
    if sql is None:
        sql = _LOCK_SQL["interactions"] = _lock_interactions_sql()
    with connection.cursor() as cursor:
        cursor.execute(sql, [interaction_ids, queued, agent_ids, list(load_statuses)])
        fetched = cursor.fetchall()
    locked: set[int] = set()
    loads: dict[int, dict[str, int]] = {}
    for key, channel, count in fetched:
        if channel is None:
            locked.add(key)
        else:
            loads.setdefault(key, {})[channel] = count
    return locked, loads
