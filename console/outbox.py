"""The agent event outbox: agent-facing events persisted with the write that caused them.

``kernel.events`` calls :func:`record_agent_events` (registered in ``ConsoleConfig``)
inside the publishing transaction. Every event that names an interaction gets that
interaction's summary as of this transaction (``payload["interaction"]``), so a console
applies an event without asking the server anything, and an event replayed late still sets
the interaction to the state it had then (the newest event of each thing wins: console/state.py).
On PostgreSQL the rows are written with their summaries in one statement (issue 13: two
statements for every publish were about 5 of a contact's 53).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from django.conf import settings
from django.db import connection
from django.db.models import Max, Model, Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from psycopg.types.json import Jsonb

from configuration.models import Queue
from contacts.models import Contact, ContactIdentity, IdentityKind
from interactions.lifecycle import Status
from interactions.models import Interaction, Message
from kernel.pg import execute_binary
from routing.selectors import TRANSFER_RULES, latest_transfers

from .models import AgentEvent

# Events that describe one message: they carry the message, not a status (see state.py).
MESSAGE_EVENTS = frozenset({"message.created"})
STATUS_EVENT = "interaction.status"


_SUMMARY_SQL: dict[str, str] = {}


def _summary_parts() -> tuple[list[str], str]:
    """The columns (13, read by :func:`_summary`) and the ``FROM`` clause of an interaction's
    summary, shared by :func:`_summary_sql` and :func:`_record_sql`. One bound value: the chat
    identity kind (an unnamed citizen is shown by an identity that is not a visitor's token)."""
    qn = connection.ops.quote_name
    i, c, q = Interaction._meta, Contact._meta, Queue._meta
    m, ci = Message._meta, ContactIdentity._meta

    def col(meta: Any, name: str, alias: str) -> str:
        return f"{alias}.{qn(meta.get_field(name).column)}"

    contact_id = col(i, "contact", "i")
    display_name = col(c, "display_name", "c")
    columns = [
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
    source = (
        f" FROM {qn(i.db_table)} i"
        f" LEFT OUTER JOIN {qn(c.db_table)} c ON c.{qn(c.pk.column)} = {contact_id}"
        f" LEFT OUTER JOIN {qn(q.db_table)} q ON q.{qn(q.pk.column)} = {col(i, 'queue', 'i')}"
    )
    return columns, source


def _summary_sql(vendor: str) -> str:
    """The one statement of :func:`interaction_summaries`, written once per process (the
    ORM rebuilt and recompiled its two queries at every agent event): each interaction with
    its citizen's name, queue's name, last message id, and for an unnamed citizen their oldest
    identity that is not a chat visitor's token."""
    found = _SUMMARY_SQL.get(vendor)
    if found is not None:
        return found
    columns, source = _summary_parts()
    found = (
        "SELECT "
        + ", ".join(columns)
        + source
        + f" WHERE i.{connection.ops.quote_name(Interaction._meta.pk.column)} "
        + ("= ANY(%s)" if vendor == "postgresql" else "IN ({ids})")
    )
    _SUMMARY_SQL[vendor] = found
    return found


def _aware(value: Any) -> datetime | None:
    """A datetime column read by a raw statement (SQLite gives naive UTC: text, or a naive
    datetime when its connection converts the column's declared type)."""
    if value is None:
        return None
    parsed = value if isinstance(value, datetime) else parse_datetime(str(value))
    if parsed is not None and timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, UTC)
    return parsed


def _summary(r: Sequence[Any], transfer: dict[str, Any] | None) -> dict[str, Any]:
    """An interaction's summary from the 13 columns of :func:`_summary_parts` (``assigned_at``,
    ``r[10]``, only finds its transfer: it is not shown). :func:`_record_sql` builds the same
    object in SQL for the row it stores; keep the two in step."""
    return {
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
        "transfer": transfer,
    }


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
    return {r[0]: _summary(r, transfers.get(r[0])) for r in rows}


def _summarised(interaction_id: Any, event: str) -> int | None:
    """The interaction whose summary an event carries, if any (a message event carries none)."""
    if event in MESSAGE_EVENTS or not isinstance(interaction_id, int):
        return None
    return interaction_id


def _status_to(event: str, payload: dict[str, Any]) -> str | None:
    """The status a status change made: its event's summary shows it (the changes published
    together read one summary, as of the last of them)."""
    to = payload.get("to")
    return to if event == STATUS_EVENT and isinstance(to, str) else None


def _enriched(
    payload: dict[str, Any], summary: dict[str, Any] | None, to: str | None
) -> dict[str, Any]:
    """The payload sent and kept: the event's own, with its interaction's summary if any."""
    enriched = dict(payload)
    if summary is not None:
        enriched["interaction"] = summary if to is None else {**summary, "status": to}
    return enriched


def record_agent_events(
    entries: list[tuple[int, str, dict[str, Any]]],
) -> list[tuple[int, dict[str, Any], str]]:
    """Persist ``(agent id, event, payload)`` entries; return ``(id, payload, at)`` for each."""
    if not entries:
        return []
    if connection.vendor == "postgresql":
        return _record_in_one_statement(entries)
    return _record_portable(entries)


def _record_portable(
    entries: list[tuple[int, str, dict[str, Any]]],
) -> list[tuple[int, dict[str, Any], str]]:
    """Any database (the embedded SQLite default): the summaries read, then the rows written.
    On PostgreSQL :func:`_record_in_one_statement` must give what this gives (tested)."""
    now = timezone.now()
    wanted = [_summarised(p.get("interaction_id"), e) for _, e, p in entries]
    summaries = interaction_summaries(i for i in wanted if i is not None)
    payloads = [
        _enriched(payload, None if i is None else summaries.get(i), _status_to(event, payload))
        for (_, event, payload), i in zip(entries, wanted, strict=True)
    ]
    created = AgentEvent.objects.bulk_create(
        AgentEvent(agent_id=a, event=e, payload=p, created_at=now)
        for (a, e, _), p in zip(entries, payloads, strict=True)
    )
    at = now.isoformat()
    return [(row.pk, payload, at) for row, payload in zip(created, payloads, strict=True)]


_RECORD_SQL: list[str] = []

# The keys of :func:`_summary` built in SQL from the columns of :func:`_summary_parts` (named
# ``s.c0`` to ``s.c12``), ``status`` being the status change's own (``t.st``) when it has one.
_SUMMARY_JSON = (
    "jsonb_build_object('id', s.c0, 'channel', s.c1, 'status', COALESCE(t.st, s.c2), "
    "'subject', s.c3, 'language', s.c4, 'agent_id', s.c5, 'contact_id', s.c6, "
    "'citizen', COALESCE(NULLIF(s.c7, ''), NULLIF(s.c12, ''), ''), 'queue_id', s.c8, "
    "'queue', COALESCE(s.c9, ''), 'last_message_id', COALESCE(s.c11, 0), "
    "'transfer', 'null'::jsonb)"
)


def _record_sql() -> str:
    """The one statement of :func:`_record_in_one_statement` (PostgreSQL), written once per
    process. ``t``: the entries in order (``iid``, the interaction whose summary the entry
    carries; ``st``, the status a status change made); ``s``: the summaries of their
    interactions (bound again as one array of distinct ids: the planner takes a semi-join on
    ``t`` costs more planning), each with whether it is offered after a transfer (the rows
    :func:`routing.selectors.latest_transfers` would find); ``ins``: the rows written, each
    payload with its summary. It returns, for each entry in order, its row's id and its
    summary's columns: the ids ascend in input order (the rows are inserted in that order and
    take their ids from the sequence as they are), so the n-th smallest id is the n-th entry's.
    """
    if _RECORD_SQL:
        return _RECORD_SQL[0]
    qn = connection.ops.quote_name
    i = Interaction._meta
    # routing's RoutingDecision, reached through its relation (console reads routing's models
    # through routing.selectors otherwise)
    d = cast("type[Model]", Interaction._meta.get_field("routing_decisions").related_model)._meta

    def col(meta: Any, name: str, alias: str) -> str:
        return f"{alias}.{qn(meta.get_field(name).column)}"

    columns, source = _summary_parts()
    columns = [c.replace("%s", "%b") for c in columns]
    named = ", ".join(f"{c} AS c{n}" for n, c in enumerate(columns))
    picked = ", ".join(f"s.c{n}" for n in range(len(columns)))
    transferred = (
        f"CASE WHEN {col(i, 'status', 'i')} = %b THEN EXISTS (SELECT 1 FROM "  # noqa: S608
        f"{qn(d.db_table)} d WHERE {col(d, 'interaction', 'd')} = {col(i, 'id', 'i')} "
        f"AND {col(d, 'rule', 'd')} = ANY(%b::varchar[]) AND ({col(i, 'assigned_at', 'i')} "
        f"IS NULL OR {col(d, 'at', 'd')} >= {col(i, 'assigned_at', 'i')})) ELSE FALSE END"
    )
    sql = (
        "WITH t AS (SELECT * FROM unnest(%b::bigint[], %b::varchar[], %b::jsonb[], "  # noqa: S608 - model metadata only; every value is bound
        "%b::bigint[], %b::varchar[]) WITH ORDINALITY AS t(a, e, p, iid, st, n)), "
        f"s AS (SELECT {named}, {transferred} AS transferred{source} "
        f"WHERE {col(i, 'id', 'i')} = ANY(%b::bigint[])), "
        f"ins AS (INSERT INTO {qn(AgentEvent._meta.db_table)} "
        "(agent_id, event, payload, created_at) "
        "SELECT t.a, t.e, CASE WHEN s.c0 IS NULL THEN t.p "
        f"ELSE t.p || jsonb_build_object('interaction', {_SUMMARY_JSON}) END, %b "
        "FROM t LEFT OUTER JOIN s ON s.c0 = t.iid ORDER BY t.n RETURNING id), "
        "r AS (SELECT id, row_number() OVER (ORDER BY id) AS n FROM ins) "
        f"SELECT r.id, {picked}, s.transferred FROM r JOIN t ON t.n = r.n "
        "LEFT OUTER JOIN s ON s.c0 = t.iid ORDER BY r.n"
    )
    _RECORD_SQL.append(sql)
    return sql


def _record_in_one_statement(
    entries: list[tuple[int, str, dict[str, Any]]],
) -> list[tuple[int, dict[str, Any], str]]:
    """PostgreSQL: the rows written with their summaries in one statement (:func:`_record_sql`),
    the entries bound as arrays in binary (a routing pass publishes hundreds of offers at once).
    An interaction offered after a transfer costs the transfer's reads
    (:func:`routing.selectors.latest_transfers`) and one update of its rows' ``transfer``.

    Against the summary read then the insert: one round trip and a third of the Python work
    fewer, but the server plans the larger statement in about 0.45 ms against 0.25 for the two
    (the connections prepare nothing), so on a local server a publish took slightly longer."""
    now = timezone.now()
    wanted = [_summarised(p.get("interaction_id"), e) for _, e, p in entries]
    status_to = [_status_to(e, p) for _, e, p in entries]
    with execute_binary(
        _record_sql(),
        [
            [a for a, _, _ in entries],
            [e for _, e, _ in entries],
            [Jsonb(p) for _, _, p in entries],
            wanted,
            status_to,
            IdentityKind.CHAT.value,
            Status.OFFERED.value,
            list(TRANSFER_RULES),
            sorted({i for i in wanted if i is not None}),
            now,
        ],
    ) as cursor:
        rows = cursor.fetchall()
    # Who transferred an offered interaction, with their note: shown on the offer.
    transfers = latest_transfers({r[1]: r[11] for r in rows if r[14]})
    if transfers:
        _set_transfers([(r[0], transfers[r[1]]) for r in rows if r[1] in transfers])
    at = now.isoformat()
    return [
        (
            r[0],
            _enriched(
                payload,
                None if r[1] is None else _summary(r[1:14], transfers.get(r[1])),
                to,
            ),
            at,
        )
        for r, (_, _, payload), to in zip(rows, entries, status_to, strict=True)
    ]


def _set_transfers(found: list[tuple[int, dict[str, Any]]]) -> None:
    """Set ``interaction.transfer`` in the payloads of these rows (just written)."""
    table = connection.ops.quote_name(AgentEvent._meta.db_table)
    with execute_binary(
        f"UPDATE {table} SET payload = jsonb_set(payload, '{{interaction,transfer}}', u.tr) "  # noqa: S608
        "FROM unnest(%b::bigint[], %b::jsonb[]) AS u(id, tr) "
        f"WHERE {table}.id = u.id",
        [[event_id for event_id, _ in found], [Jsonb(t) for _, t in found]],
    ):
        pass


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
