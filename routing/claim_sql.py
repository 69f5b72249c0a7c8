"""PostgreSQL fast path for writing a claimed chunk: one statement per table.

The ORM's ``bulk_create`` / ``bulk_update`` build one placeholder per value (and a ``CASE``
per row for updates); for a chunk of 500 claims that is thousands of parameters to convert on
every statement. Here each column travels as one array and ``unnest`` turns them back into
rows, so a chunk costs four short statements. The SQLite (embedded) path stays on the ORM.
Table and column names come from the models' metadata, never from input.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import connection
from psycopg.types.json import Jsonb

from interactions.models import Interaction, InteractionTransition
from kernel.pg import execute_binary

from .models import Offer, RoutingDecision


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
