"""The agent event outbox: agent-facing events persisted with the write that caused them.

``kernel.events`` calls :func:`record_agent_events` (registered in ``ConsoleConfig``)
inside the publishing transaction. Every event that names an interaction gets that
interaction's summary as of this transaction (``payload["interaction"]``), so a console
applies an event without asking the server anything, and an event replayed late still sets
the interaction to the state it had then (the newest event of each thing wins: console/state.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Max, Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from psycopg.types.json import Jsonb

from configuration.models import Queue
from contacts.models import Contact, ContactIdentity, IdentityKind
from interactions.lifecycle import Status
from interactions.models import Interaction, Message
from kernel.pg import execute_binary
from routing.selectors import latest_transfers

from .models import AgentEvent

# Events that describe one message: they carry the message, not a status (see state.py).
MESSAGE_EVENTS = frozenset({"message.created"})
STATUS_EVENT = "interaction.status"


_SUMMARY_SQL: dict[str, str] = {}


def _summary_sql(vendor: str) -> str:
    """The one statement of :func:`interaction_summaries`, written once per process (the
    ORM rebuilt and recompiled its two queries at every agent event): each interaction with
    its citizen's name, queue's name, last message id, and for an unnamed citizen their oldest
    identity that is not a chat visitor's token."""
    found = _SUMMARY_SQL.get(vendor)
    if found is not None:
        return found
    qn = connection.ops.quote_name
    i, c, q = Interaction._meta, Contact._meta, Queue._meta
    m, ci = Message._meta, ContactIdentity._meta

    def col(meta: Any, name: str, alias: str) -> str:
        return f"{alias}.{qn(meta.get_field(name).column)}"

    contact_id = col(i, "contact", "i")
    display_name = col(c, "display_name", "c")
    found = (
        "SELECT "  # noqa: S608 - model metadata only; every value is bound
        + ", ".join(
            [
                col(i, "id", "i"),
                col(i, "channel", "i"),
                col(i, "status", "i"),
                col(i, "subject", "i"),
                col(i, "language", "i"),
                col(i, "assigned_agent", "i"),
                contact_id,
                display_name,
                col(i, "queue", "i"),
                col(q, "name", "q"),
                col(i, "assigned_at", "i"),
                f"(SELECT MAX({col(m, 'id', 'm')}) FROM {qn(m.db_table)} m "  # noqa: S608
                f"WHERE {col(m, 'interaction', 'm')} = {col(i, 'id', 'i')})",
                f"CASE WHEN {contact_id} IS NOT NULL AND COALESCE({display_name}, '') = '' "  # noqa: S608
                f"THEN (SELECT {col(ci, 'value', 'ci')} FROM {qn(ci.db_table)} ci "
                f"WHERE {col(ci, 'contact', 'ci')} = {contact_id} "
                f"AND NOT ({col(ci, 'kind', 'ci')} = %s) "
                f"ORDER BY {col(ci, 'id', 'ci')} LIMIT 1) END",
            ]
        )
        + f" FROM {qn(i.db_table)} i"
        f" LEFT OUTER JOIN {qn(c.db_table)} c ON c.{qn(c.pk.column)} = {contact_id}"
        f" LEFT OUTER JOIN {qn(q.db_table)} q ON q.{qn(q.pk.column)} = {col(i, 'queue', 'i')}"
        f" WHERE {col(i, 'id', 'i')} " + ("= ANY(%s)" if vendor == "postgresql" else "IN ({ids})")
    )
    _SUMMARY_SQL[vendor] = found
    return found


def _aware(value: Any) -> datetime | None:
    """A datetime column read by a raw statement (SQLite gives text, naive UTC)."""
    if value is None or isinstance(value, datetime):
        return value
    parsed = parse_datetime(str(value))
    if parsed is not None and timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, UTC)
    return parsed


def interaction_summaries(ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """What a console shows of each interaction (one statement, plus one for offered ones:
    ``transfer``, who transferred it and their note, or None)."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    sql = _summary_sql(connection.vendor)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(sql, [IdentityKind.CHAT.value, wanted])
        else:
            sql = sql.replace("{ids}", ", ".join(["%s"] * len(wanted)))
            cursor.execute(sql, [IdentityKind.CHAT.value, *wanted])
        rows = cursor.fetchall()
    # Who transferred an offered interaction, with their note: shown on the offer.
    transfers = latest_transfers({r[0]: _aware(r[10]) for r in rows if r[2] == Status.OFFERED})
    return {
        r[0]: {
            "id": r[0],
            "channel": r[1],
            "status": r[2],
            "subject": r[3],
            "language": r[4],
            "agent_id": r[5],
            "contact_id": r[6],
            "citizen": r[7] or r[12] or "",
            "queue_id": r[8],
            "queue": r[9] or "",
            "last_message_id": r[11] or 0,
            "transfer": transfers.get(r[0]),
        }
        for r in rows
    }


def record_agent_events(
    entries: list[tuple[int, str, dict[str, Any]]],
) -> list[tuple[int, dict[str, Any], str]]:
    """Persist ``(agent id, event, payload)`` entries; return ``(id, payload, at)`` for each."""
    now = timezone.now()
    summaries = interaction_summaries(
        p["interaction_id"]
        for _, event, p in entries
        if event not in MESSAGE_EVENTS and isinstance(p.get("interaction_id"), int)
    )
    payloads = []
    for _agent_id, event, payload in entries:
        enriched = dict(payload)
        summary = summaries.get(payload.get("interaction_id"))  # type: ignore[arg-type]
        if summary is not None and event not in MESSAGE_EVENTS:
            if event == STATUS_EVENT and isinstance(payload.get("to"), str):
                # the status this change made (the changes published together, one summary)
                summary = {**summary, "status": payload["to"]}
            enriched["interaction"] = summary
        payloads.append(enriched)
    at = now.isoformat()
    if connection.vendor == "postgresql":
        ids = _insert_unnest([a for a, _, _ in entries], [e for _, e, _ in entries], payloads, now)
    else:
        created = AgentEvent.objects.bulk_create(
            AgentEvent(agent_id=a, event=e, payload=p, created_at=now)
            for (a, e, _), p in zip(entries, payloads, strict=True)
        )
        ids = [row.pk for row in created]
    return [(event_id, payload, at) for event_id, payload in zip(ids, payloads, strict=True)]


def _insert_unnest(
    agent_ids: list[int], events: list[str], payloads: list[dict[str, Any]], now: datetime
) -> list[int]:
    """One ``INSERT … SELECT FROM unnest(…)`` for the whole batch (a routing pass publishes
    hundreds of offers at once; the ORM's per-row statement costs several times more). The
    rows are inserted in input order, so their ids, taken from the sequence as they are
    inserted, ascend in that order."""
    table = connection.ops.quote_name(AgentEvent._meta.db_table)
    with execute_binary(
        f"INSERT INTO {table} (agent_id, event, payload, created_at) "  # noqa: S608
        "SELECT a, e, p, %b FROM unnest(%b::bigint[], %b::varchar[], %b::jsonb[]) "
        "WITH ORDINALITY AS t(a, e, p, n) ORDER BY n RETURNING id",
        [now, agent_ids, events, [Jsonb(p) for p in payloads]],
    ) as cursor:
        return sorted(row[0] for row in cursor.fetchall())


def serialise(event: AgentEvent) -> dict[str, Any]:
    """The message a console receives for ``event`` (live or replayed)."""
    return {
        "id": event.pk,
        "event": event.event,
        "payload": event.payload,
        "at": event.created_at.isoformat(),
    }


def last_event_id(agent_id: int) -> int:
    return AgentEvent.objects.filter(agent_id=agent_id).aggregate(last=Max("id"))["last"] or 0


# At most this many ids per agent are read by one round of the console chores: a console this far
# behind is not caught up event by event (it is told to resume: replay or snapshot).
RECENT_IDS_LIMIT = 200


def event_ids_after(floors: dict[int, int]) -> dict[int, list[int]]:
    """The outbox ids of each agent above its floor (``{agent id: floor}``), ascending, in one
    query: at most ``RECENT_IDS_LIMIT + 1`` per agent.

    On PostgreSQL one lateral index range scan per agent on ``agent_event_replay_idx``
    (``agent_id, id``), all bound as two arrays: the cost grows with the number of agents asked
    and the events above their floors, never with how many events they keep. The console chores
    ask it once a round for every console of a server process (``console/live.py``), each floor
    being the id up to which that console is known to have everything."""
    if not floors:
        return {}
    agents = sorted(floors)
    found: dict[int, list[int]] = {}
    if connection.vendor == "postgresql":
        table = connection.ops.quote_name(AgentEvent._meta.db_table)
        sql = (
            "SELECT f.a, e.id FROM unnest(%b::bigint[], %b::bigint[]) AS f(a, floor) "  # noqa: S608
            f"CROSS JOIN LATERAL (SELECT id FROM {table} WHERE agent_id = f.a "
            "AND id > f.floor ORDER BY id LIMIT %b) AS e ORDER BY f.a, e.id"
        )  # the table name is ours (quoted); every value is bound
        with execute_binary(
            sql,
            [agents, [floors[a] for a in agents], RECENT_IDS_LIMIT + 1],
        ) as cursor:
            for agent_id, event_id in cursor.fetchall():
                found.setdefault(agent_id, []).append(event_id)
        return found
    for agent_id in agents:  # the embedded SQLite default: a few consoles
        ids = list(
            AgentEvent.objects.filter(agent_id=agent_id, pk__gt=floors[agent_id])
            .order_by("id")
            .values_list("id", flat=True)[: RECENT_IDS_LIMIT + 1]
        )
        if ids:
            found[agent_id] = ids
    return found


def events_by_ids(ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """The serialised events with these ids (those still kept), by id."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    return {row.pk: serialise(row) for row in AgentEvent.objects.filter(pk__in=wanted)}


REPLAY_LIMIT = 500


def events_after(
    agent_id: int, last_id: int, *, now: datetime | None = None
) -> list[dict[str, Any]] | None:
    """The events a console that applied ``last_id`` must (re)apply, or ``None`` when it needs a
    fresh snapshot instead (events pruned, too many missed, or an id we never gave).

    Rows committed out of id order (two transactions for one agent at once) are covered by an
    overlap: events of the last ``CONSOLE_REPLAY_OVERLAP_SECONDS`` are sent again even below
    ``last_id``; the console ignores the ids it already applied.
    """
    now = now or timezone.now()
    if last_id <= 0:
        return None
    mine = AgentEvent.objects.filter(agent_id=agent_id)
    # Pruning removes the oldest rows: if the last applied one is still here, so is everything
    # after it. If it is gone (pruned, or never ours), only a snapshot is safe.
    if not mine.filter(pk=last_id).exists():
        return None
    overlap = now - timedelta(seconds=settings.CONSOLE_REPLAY_OVERLAP_SECONDS)
    rows = list(
        mine.filter(Q(pk__gt=last_id) | Q(created_at__gte=overlap)).order_by("id")[
            : REPLAY_LIMIT + 1
        ]
    )
    if len(rows) > REPLAY_LIMIT:
        return None
    return [serialise(row) for row in rows]


def do_prune_agent_events(*, now: datetime | None = None) -> int:
    """Delete outbox rows older than ``CONSOLE_EVENT_RETENTION_SECONDS`` (a periodic task)."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.CONSOLE_EVENT_RETENTION_SECONDS)
    deleted, _ = AgentEvent.objects.filter(created_at__lt=cutoff).delete()
    return deleted
