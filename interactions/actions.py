"""The one write path for interactions and messages.

Every status change goes through :func:`do_transition_interaction`: a conditional update on the
current status (so two workers cannot both move the same interaction), a transition row with
its timestamp, and an event published after commit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from django.contrib.auth.models import User
from django.db import IntegrityError, connection, transaction
from django.db.models import Model, QuerySet
from django.db.models.query import get_related_populators  # type: ignore[attr-defined]
from django.utils import timezone

from contacts.models import Contact
from kernel import event_catalogue
from kernel.events import (
    SUPERVISORS_GROUP,
    Event,
    agent_group,
    publish,
    remember_interaction_organisation,
)
from organisations import authz
from organisations.models import OrganisationMismatch

from .lifecycle import (
    HISTORY_STATUSES,
    TIMESTAMP_FIELD,
    IllegalTransition,
    Status,
    TransitionHistory,
    check_transition,
)
from .models import Interaction, InteractionTransition, Message
from .signals import interaction_status_changed

MAX_TEXT_CHARS = 100_000

M = TypeVar("M", bound=Model)

# A prepared query: its SQL and parameters, the slots of the values, the converters, the model's
# (model, first column, end, attnames) and the populators of its select_related models.
_Shape = tuple[Any, int, int, list[str]]
_Compiled = tuple[str, list[Any], list[int | None], Any, _Shape, list[Any]]


class PreparedRows(Generic[M]):
    """A hot query of whole model rows, compiled by the ORM once per database vendor and then
    run with new values: the same statement and the same instances as the queryset
    ``build(**values)`` gives, without rebuilding and recompiling it at every call (most of
    what a one-row ``select_for_update().get()`` costs in CPU).

    ``build`` takes integer values only (ids); it is compiled with marker values that must
    reach the statement's parameters unchanged. A query locking its rows is compiled (and run)
    inside a transaction, as the ORM requires. ``select_related`` sets the related instances
    as the ORM does (with its populators)."""

    _MARK = -7_340_000_001

    def __init__(self, build: Callable[..., QuerySet[M]], *names: str) -> None:
        self.build = build
        self.names = names
        self.model: type[M] | None = None
        self.compiled: dict[str, _Compiled] = {}

    def _compile(self, vendor: str) -> _Compiled:
        marks = {name: self._MARK - n for n, name in enumerate(self.names)}
        queryset = self.build(**marks)
        self.model = queryset.model
        compiler = queryset.query.get_compiler(using=queryset.db)
        sql, params = compiler.as_sql()
        slots: list[int | None] = []
        for value in params:
            found = [n for n, mark in enumerate(marks.values()) if value == mark]
            slots.append(found[0] if found else None)
        if sorted(n for n in slots if n is not None) != list(range(len(self.names))):
            raise ValueError("a prepared query's values must reach its parameters unchanged")
        fields = [col for col, _sql, _alias in compiler.select[: compiler.col_count]]
        converters = compiler.get_converters(fields)
        info = compiler.klass_info

        positions = list(info["select_fields"])
        start, end = positions[0], positions[-1] + 1
        attnames = [compiler.select[i][0].target.attname for i in range(start, end)]
        # select_related: the ORM's own populators (stateless between rows and calls)
        populators = get_related_populators(info, compiler.select, queryset.db)
        # (nothing of this connection is kept: each call converts with its own)
        entry = (
            sql,
            list(params),
            slots,
            converters,
            (info["model"], start, end, attnames),
            populators,
        )
        self.compiled[vendor] = entry
        return entry

    def rows(self, **values: int) -> list[M]:
        entry = self.compiled.get(connection.vendor) or self._compile(connection.vendor)
        sql, params, slots, converters, (model, start, end, attnames), related = entry
        ordered = [values[name] for name in self.names]
        bound = [p if n is None else ordered[n] for p, n in zip(params, slots, strict=True)]
        with connection.cursor() as cursor:
            cursor.execute(sql, bound)
            fetched = cursor.fetchall()
        found: list[M] = []
        for raw in fetched:
            row = list(raw)
            for position, (functions, expression) in converters.items():
                value = row[position]
                for convert in functions:
                    value = convert(value, expression, connection)
                row[position] = value
            obj = model.from_db(connection.alias, attnames, row[start:end])
            for populator in related:
                populator.populate(row, obj)
            found.append(obj)
        return found

    def first(self, **values: int) -> M | None:
        found = self.rows(**values)
        return found[0] if found else None


class StaleTransition(IllegalTransition):
    """The interaction changed status under us (another worker or agent moved it first)."""


def do_create_interaction(
    *,
    channel: str,
    contact: Contact | None,
    queue: Any = None,
    subject: str = "",
    priority: int | None = None,
    required_skills: dict[str, int] | None = None,
    language: str | None = None,
    direction: str = "inbound",
    external_ref: str = "",
    enqueue: bool = True,
    now: datetime | None = None,
    organisation_id: int | None = None,
) -> Interaction:
    """Record a new interaction; with ``enqueue`` it goes straight to its queue.

    Its organisation is its queue's or citizen's; ``organisation_id`` names it when it has
    neither (a mismatch with them is refused by the model)."""
    now = now or timezone.now()
    skills = dict(queue.required_skills()) if queue is not None else {}
    skills.update(required_skills or {})
    with transaction.atomic():
        interaction = Interaction.objects.create(
            channel=channel,
            direction=direction,
            contact=contact,
            queue=queue,
            subject=subject[:255],
            priority=priority if priority is not None else (queue.priority if queue else 0),
            required_skills=skills,
            language=language or (queue.language if queue else "") or "fr",
            external_ref=external_ref,
            sla_due_at=now + timedelta(seconds=queue.sla_target_seconds) if queue else None,
            **({"organisation_id": organisation_id} if organisation_id is not None else {}),
        )
        publish(
            *event_catalogue.interaction_created(interaction_id=interaction.pk, channel=channel),
            groups=[SUPERVISORS_GROUP],
        )
        if enqueue:
            do_transition_interaction(
                interaction=interaction, to=Status.QUEUED, reason="arrived", now=now
            )
    return interaction


def _check_same_organisation(interaction: Interaction, extra: dict[str, Any] | None) -> None:
    """The update below bypasses the model's own check: a new queue or agent must be of the
    interaction's organisation."""
    for name in ("queue", "assigned_agent"):
        value = (extra or {}).get(name)
        if value is not None and value.organisation_id != interaction.organisation_id:
            raise OrganisationMismatch(
                f"interaction #{interaction.pk} cannot take a {name} of another organisation"
            )


def do_transition_interaction(
    *,
    interaction: Interaction,
    to: str,
    reason: str = "",
    actor: User | None = None,
    now: datetime | None = None,
    extra: dict[str, Any] | None = None,
    savepoint: bool = True,
    events: list[Event] | None = None,
    with_write: Statement | None = None,
) -> Interaction:
    """Move ``interaction`` from its current status to ``to``.

    Raises :class:`IllegalTransition` when the life cycle forbids it and
    :class:`StaleTransition` when the stored status is no longer the one we read.
    ``extra`` fields (e.g. ``assigned_agent``) are written in the same update.

    Inside a transaction the change runs in a savepoint, so a caller may catch its failure and
    go on; a caller that lets every failure out of its own transaction block (the whole block
    rolls back anyway) passes ``savepoint=False`` and saves the two statements. ``events``: a
    list the ``interaction.status`` event is appended to instead of being published, for a
    caller that publishes it with its own in one :func:`~kernel.events.publish_many` (in
    order, after nothing that changes what a console shows of the interaction).

    ``with_write``: a caller's own write of another table that goes with the change (one
    ``UPDATE`` or ``INSERT``, its SQL and parameters, on rows the caller holds), written in
    the change's statement on PostgreSQL (one round trip), just before it elsewhere; with the
    change, it rolls back if the change is stale (the caller's block rolls back as a whole).

    A change to one of :data:`~.lifecycle.HISTORY_STATUSES` without ``extra`` reads the
    interaction's :class:`~.lifecycle.TransitionHistory` in its own statement on PostgreSQL
    and passes it to the signal's receivers (``history``; None when it was not read).
    """
    current = interaction.status
    previous_agent_id = interaction.assigned_agent_id
    check_transition(current, to)
    _check_same_organisation(interaction, extra)
    now = now or timezone.now()
    fields: dict[str, Any] = {"status": to, **(extra or {})}
    stamp = TIMESTAMP_FIELD.get(to)
    if stamp and not (stamp == "queued_at" and interaction.queued_at):
        fields[stamp] = now
    if to == Status.QUEUED and current in (Status.NEW, Status.TRANSFERRED, Status.CLOSED):
        fields["queue_entered_at"] = now  # the escalation steps' clock starts again
    # Its organisation, known here, spares the publish below a query (it never changes).
    remember_interaction_organisation(interaction.pk, interaction.organisation_id)
    history: TransitionHistory | None = None
    with transaction.atomic(savepoint=savepoint):
        if extra:
            if with_write is not None:
                _execute(with_write)
            updated = Interaction.objects.filter(pk=interaction.pk, status=current).update(**fields)
            if updated != 1:
                raise StaleTransition(current, to)
            InteractionTransition.objects.create(
                interaction_id=interaction.pk,
                from_status=current,
                to_status=to,
                reason=reason[:64],
                actor=actor,
                at=now,
            )
        else:
            written, history = _write_transition(
                interaction.pk,
                current,
                fields,
                reason[:64],
                getattr(actor, "pk", None),
                now,
                with_write,
            )
            if not written:
                raise StaleTransition(current, to)
        for name, value in fields.items():
            setattr(interaction, name, value)
        interaction_status_changed.send(
            sender=Interaction,
            interaction=interaction,
            from_status=current,
            to_status=to,
            now=now,
            history=history,
        )
        # The agents it concerns (who had it, who has it now) see it in their consoles too.
        agents = {a for a in (previous_agent_id, interaction.assigned_agent_id) if a}
        name, payload = event_catalogue.interaction_status(
            interaction_id=interaction.pk, from_status=current, to_status=to, reason=reason
        )
        groups = [SUPERVISORS_GROUP, *(agent_group(a) for a in sorted(agents))]
        if events is not None:
            events.append((name, payload, groups))
        else:
            publish(name, payload, groups=groups)
    return interaction


# A write of another table that goes with a status change: its SQL (``%s`` placeholders) and
# parameters.
Statement = tuple[str, Sequence[Any]]


def _execute(statement: Statement) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement[0], list(statement[1]))


# The statement(s) of a status change without ``extra`` fields (the hot paths: accepting,
# wrapping up, closing), written once per set of updated columns (and caller's write, and
# history read): the ORM's update() and create() rebuild and recompile theirs on every call.
_TRANSITION_SQL: dict[tuple[str, tuple[str, ...], str, bool], tuple[str, ...]] = {}


def _column(meta: Any, name: str) -> str:
    column: str = meta.get_field(name).column
    return column


def _transition_sql(
    vendor: str, names: tuple[str, ...], with_sql: str, history: bool
) -> tuple[str, ...]:
    key = (vendor, names, with_sql, history)
    found = _TRANSITION_SQL.get(key)
    if found is not None:
        return found
    qn = connection.ops.quote_name
    meta, log = Interaction._meta, InteractionTransition._meta
    pk = qn(meta.pk.column)
    sets = ", ".join(f"{qn(_column(meta, n))} = %s" for n in names)
    update = (
        f"UPDATE {qn(meta.db_table)} SET {sets} "  # noqa: S608 - model metadata only
        f"WHERE {pk} = %s AND {qn(_column(meta, 'status'))} = %s"
    )
    columns = ", ".join(
        qn(_column(log, n))
        for n in ("interaction", "from_status", "to_status", "reason", "actor", "at")
    )
    if vendor == "postgresql":
        # One round trip: the row is logged only if the conditional update moved it; the
        # caller's write goes with it; the history is read from the statement's snapshot, i.e.
        # without the row it logs (the caller adds it).
        ahead = f"caller AS ({with_sql}), " if with_sql else ""
        insert = (
            f"INSERT INTO {qn(log.db_table)} ({columns}) "  # noqa: S608 - metadata
            f"SELECT {pk}, CAST(%s AS varchar), CAST(%s AS varchar), "
            "CAST(%s AS varchar), CAST(%s AS bigint), CAST(%s AS timestamptz) FROM moved"
        )
        if history:
            times = (
                f"ARRAY(SELECT {qn(_column(log, 'at'))} FROM {qn(log.db_table)} "  # noqa: S608
                f"WHERE {qn(_column(log, 'interaction'))} = %s "
                f"AND {qn(_column(log, 'to_status'))} = %s)"
            )
            found = (
                f"WITH {ahead}moved AS ({update} RETURNING {pk}), "  # noqa: S608 - metadata
                f"logged AS ({insert} RETURNING 1) "
                f"SELECT (SELECT COUNT(*) FROM logged), {times}, {times}",
            )
        else:
            found = (f"WITH {ahead}moved AS ({update} RETURNING {pk}) {insert}",)
    else:
        found = (
            update,
            f"INSERT INTO {qn(log.db_table)} ({columns}) "  # noqa: S608 - model metadata only
            "VALUES (%s, %s, %s, %s, %s, %s)",
        )
    _TRANSITION_SQL[key] = found
    return found


def _write_transition(
    pk: int,
    current: str,
    fields: dict[str, Any],
    reason: str,
    actor_id: int | None,
    now: datetime,
    with_write: Statement | None,
) -> tuple[bool, TransitionHistory | None]:
    """The conditional update and its transition row (and the caller's write); False when the
    status was no longer ``current`` (nothing written of the change). On PostgreSQL, a change
    to one of ``HISTORY_STATUSES`` reads the interaction's history in the same statement."""
    ops = connection.ops
    names = tuple(fields)
    to = fields["status"]
    values = [
        ops.adapt_datetimefield_value(v) if isinstance(v, datetime) else v for v in fields.values()
    ]
    at = ops.adapt_datetimefield_value(now)
    log = [to, reason, actor_id, at]
    postgresql = connection.vendor == "postgresql"
    read_history = postgresql and to in HISTORY_STATUSES
    with_sql, with_params = with_write if with_write is not None else ("", ())
    statements = _transition_sql(
        connection.vendor, names, with_sql if postgresql else "", read_history
    )
    with connection.cursor() as cursor:
        if postgresql:
            params = [*with_params, *values, pk, current, current, *log]
            if not read_history:
                cursor.execute(statements[0], params)
                return cursor.rowcount == 1, None
            cursor.execute(statements[0], [*params, pk, Status.ASSIGNED, pk, Status.CLOSED])
            written, answered, closed = cursor.fetchone()
            if written != 1:
                return False, None
            # (the snapshot read left out the row this statement logged)
            answered = [*answered, now] if to == Status.ASSIGNED else list(answered)
            closed = [*closed, now] if to == Status.CLOSED else list(closed)
            return True, TransitionHistory(tuple(sorted(answered)), tuple(sorted(closed)))
        if with_write is not None:
            cursor.execute(with_sql, list(with_params))
        cursor.execute(statements[0], [*values, pk, current])
        if cursor.rowcount != 1:
            return False, None
        cursor.execute(statements[1], [pk, current, *log])
    return True, None


def do_set_interaction_status(
    *, actor: Any, interaction: Interaction, to: str, reason: str = ""
) -> Interaction:
    """A person changes an interaction's status (the API's ``/transition/``): within their
    scope only (an agent on what they hold, a supervisor on their teams' work, an
    administrator in their organisation), checked here whatever interface asks. The router
    and the channels, acting as the system, call :func:`do_transition_interaction`."""
    authz.check_change(actor, interaction)
    user = actor if isinstance(actor, User) else None  # a service token is no user row
    return do_transition_interaction(interaction=interaction, to=to, reason=reason, actor=user)


@dataclass(frozen=True)
class RecordedMessage:
    message: Message
    created: bool


def do_record_message(
    *,
    interaction: Interaction,
    direction: str,
    text: str = "",
    html: str = "",
    provider_id: str | None = None,
    attachments: list[dict[str, Any]] | None = None,
    author: User | None = None,
    channel: str | None = None,
) -> RecordedMessage:
    """Store a message once. A provider id already stored on this channel returns the existing
    message with ``created=False`` (a retried or concurrent webhook delivery).

    ``channel`` is the interaction's unless given: a reply sent on another channel than the
    conversation's (an SMS on an e-mail conversation) is recorded with the channel it went on."""
    channel = channel or interaction.channel
    if len(text) > MAX_TEXT_CHARS:
        raise ValueError(f"message text longer than {MAX_TEXT_CHARS} characters")
    if provider_id:
        existing = Message.objects.filter(channel=channel, provider_id=provider_id)
        found = existing.first()
        if found is not None:
            return RecordedMessage(found, False)
    try:
        with transaction.atomic():
            message = Message.objects.create(
                interaction=interaction,
                channel=channel,
                direction=direction,
                text=text,
                html=html,
                provider_id=provider_id or None,
                attachments=attachments or [],
                author=author,
            )
            if interaction.assigned_agent_id:
                publish(
                    *event_catalogue.message_created(
                        interaction_id=interaction.pk, message_id=message.pk, direction=direction
                    ),
                    groups=[agent_group(interaction.assigned_agent_id)],
                )
    except IntegrityError:
        if not provider_id:
            raise
        found = Message.objects.filter(channel=interaction.channel, provider_id=provider_id).first()
        if found is None:  # pragma: no cover - the unique constraint fired, so it exists
            raise
        return RecordedMessage(found, False)
    return RecordedMessage(message, True)
