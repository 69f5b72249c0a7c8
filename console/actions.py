"""The console's writes: notes, wrap-up and closing. (Transfers are routing actions:
``routing.transfers.do_transfer_to_queue`` and ``do_offer_to_agent``.)"""

from __future__ import annotations

from datetime import datetime

from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from agents.models import AgentProfile
from agents.presence import touching_idle
from interactions.actions import PreparedRows, do_record_message, do_transition_interaction
from interactions.lifecycle import Status
from interactions.models import Interaction, Message, MessageDirection
from kernel.errors import ErrorKind, SingleCodeError
from kernel.events import published_together

from .models import InteractionWrapUp, WrapUpCode

MAX_NOTE_CHARS = 10_000


class ConsoleError(SingleCodeError, ValueError):
    """The agent asked for something the interaction's state does not allow (409)."""

    kind = ErrorKind.CONFLICT
    default_code = "not_allowed_now"


def _handled(pk: int, agent: int) -> QuerySet[Interaction]:
    return Interaction.objects.filter(
        pk=pk, assigned_agent_id=agent, status__in=(Status.ASSIGNED, Status.WRAP_UP)
    )


# Locked for closing and wrapping up (the console's hot path): compiled once. With its queue
# and the queue's survey settings (not locked), which the closing's receivers read (the
# survey to schedule, the waiting time's target): no statement of their own.
_HANDLED_LOCKED = PreparedRows(
    lambda pk, agent: (
        _handled(pk, agent)
        .select_related("queue__survey_settings")
        .select_for_update(of=("self",))
        .order_by("pk")[:1]
    ),
    "pk",
    "agent",
)


def handled_interaction(
    *, interaction_id: int, agent: AgentProfile, lock: bool = False
) -> Interaction:
    """The interaction, if ``agent`` is the one handling it (in progress or wrap-up)."""
    if lock:
        interaction = _HANDLED_LOCKED.first(pk=interaction_id, agent=agent.pk)
    else:
        interaction = _handled(interaction_id, agent.pk).first()
    if interaction is None:
        raise ConsoleError("this interaction is not yours, or no longer open")
    return interaction


def do_add_note(*, interaction_id: int, agent: AgentProfile, text: str) -> Message:
    """An internal note on the interaction (never sent to the citizen)."""
    text = text.strip()
    if not text:
        raise ConsoleError("an empty note")
    if len(text) > MAX_NOTE_CHARS:
        raise ConsoleError("note too long")
    interaction = handled_interaction(interaction_id=interaction_id, agent=agent)
    return do_record_message(
        interaction=interaction, direction=MessageDirection.NOTE, text=text, author=agent.user
    ).message


def do_start_wrap_up(
    *, interaction_id: int, agent: AgentProfile, now: datetime | None = None
) -> Interaction:
    """The conversation is over: in progress -> wrap-up (after-contact work)."""
    with transaction.atomic():
        interaction = handled_interaction(interaction_id=interaction_id, agent=agent, lock=True)
        if interaction.status == Status.WRAP_UP:
            return interaction
        now = now or timezone.now()
        # "longest idle" counts from now, written with the change (do_close_interaction)
        with touching_idle(agent_id=agent.pk, now=now) as idle:
            return do_transition_interaction(
                interaction=interaction,
                to=Status.WRAP_UP,
                reason="agent_wrap_up",
                actor=agent.user,
                now=now,
                savepoint=False,  # any failure leaves this block, which rolls back as a whole
                with_write=idle,
            )


def _wrap_up_sql() -> str:
    qn = connection.ops.quote_name
    meta = InteractionWrapUp._meta
    names = ("interaction", "code", "notes", "agent", "created_at")
    columns = [qn(str(meta.get_field(n).column)) for n in names]  # type: ignore[union-attr]
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns[1:])
    return (
        f"INSERT INTO {qn(meta.db_table)} ({', '.join(columns)}) "  # noqa: S608 - metadata
        f"VALUES (%s, %s, %s, %s, %s) ON CONFLICT ({columns[0]}) DO UPDATE SET {updates}"
    )


_WRAP_UP_SQL: list[str] = []


def _wrap_up_write(
    interaction_id: int, code: WrapUpCode | None, notes: str, agent_id: int, now: datetime
) -> tuple[str, list[object]]:
    """``InteractionWrapUp.objects.update_or_create(interaction=…, defaults={code, notes,
    agent, created_at})`` as one statement, written once (PostgreSQL and SQLite alike)."""
    if not _WRAP_UP_SQL:
        _WRAP_UP_SQL.append(_wrap_up_sql())
    return _WRAP_UP_SQL[0], [
        interaction_id,
        code.pk if code is not None else None,
        notes,
        agent_id,
        connection.ops.adapt_datetimefield_value(now),
    ]


def do_close_interaction(
    *,
    interaction_id: int,
    agent: AgentProfile,
    code: WrapUpCode | None,
    notes: str = "",
    now: datetime | None = None,
) -> Interaction:
    """Record the wrap-up (outcome code and notes) and close the interaction."""
    now = now or timezone.now()
    # Every failure leaves this block, which then rolls back as a whole: the status changes
    # need no savepoints of their own, and the events of both (and of their receivers) go out
    # together at its end, in order, each with the state it had then.
    with transaction.atomic(), published_together():
        interaction = handled_interaction(interaction_id=interaction_id, agent=agent, lock=True)
        if interaction.status == Status.ASSIGNED:
            # The agent's work ends here: "longest idle" counts from now (routing's receiver
            # of the change touches the clock), written with the change (one round trip).
            with touching_idle(agent_id=agent.pk, now=now) as idle:
                do_transition_interaction(
                    interaction=interaction,
                    to=Status.WRAP_UP,
                    reason="agent_wrap_up",
                    actor=agent.user,
                    now=now,
                    savepoint=False,
                    with_write=idle,
                )
        # Created, or replaced (a reopened interaction closed again), with the closing (one
        # statement on PostgreSQL): the interaction's lock, held since above, keeps any other
        # closing of it waiting.
        return do_transition_interaction(
            interaction=interaction,
            to=Status.CLOSED,
            reason="agent_closed",
            actor=agent.user,
            now=now,
            savepoint=False,
            with_write=_wrap_up_write(interaction.pk, code, notes.strip(), agent.pk, now),
        )
