"""The wallboard's daily counters, maintained event by event (never by scanning the day).

Each interaction status change (``interactions.signals.interaction_status_changed``, and the
router's claims for auto-accepted channels) is turned into a :class:`~supervision.reports.Figures`
delta, inside the transaction that made the change (so it reads that transaction's view), and
added to the (local day, queue, channel) row with one ``INSERT ... ON CONFLICT DO UPDATE`` once
the transaction commits. The row lock is held for that one statement only, so busy queues do
not serialise their writers.

The counters live in PostgreSQL (Redis can be lost without losing them). Should they drift (a
process killed between a commit and its counter update), :func:`rebuild_day` recomputes a day
from the interactions with the same definitions: ``manage.py rebuild_wallboard_stats``.
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from typing import Any

from django.db import connection, transaction

from interactions.lifecycle import Status, TransitionHistory
from interactions.models import Interaction, InteractionTransition

from .models import QueueDayStats
from .periods import PARIS, day_bounds, local_day
from .reports import (
    Figures,
    abandon_delta,
    answer_delta,
    arrival_delta,
    breakdown,
    close_delta,
    csat_delta,
    figures_of,
)
from .rollup import invalidate_after_commit
from .selectors import WAITING, interaction_facts, report_facts, sla_target_of

logger = logging.getLogger(__name__)

COUNTER_FIELDS = tuple(Figures.__dataclass_fields__)


def _key(interaction: Interaction) -> tuple[date, int, str] | None:
    if interaction.queued_at is None:
        return None  # never reached a queue: not in the figures
    return local_day(interaction.queued_at, PARIS), interaction.queue_id or 0, interaction.channel


def _target(interaction: Interaction) -> float:
    queue_target = None
    if interaction.sla_due_at is None and interaction.queue_id:
        queue_target = interaction.queue.sla_target_seconds  # type: ignore[union-attr]
    return sla_target_of(interaction.queued_at, interaction.sla_due_at, queue_target)


def _history(interaction_id: int) -> TransitionHistory:
    """The interaction's answers and closings as its transition rows say (one statement)."""
    rows = (
        InteractionTransition.objects.filter(
            interaction_id=interaction_id, to_status__in=(Status.ASSIGNED, Status.CLOSED)
        )
        .order_by("at", "id")
        .values_list("to_status", "at")
    )
    answered: list[datetime] = []
    closed: list[datetime] = []
    for to_status, at in rows:
        (answered if to_status == Status.ASSIGNED else closed).append(at)
    return TransitionHistory(tuple(answered), tuple(closed))


def delta_for(
    interaction: Interaction,
    from_status: str,
    to_status: str,
    now: datetime,
    history: TransitionHistory | None = None,
) -> Figures | None:
    """What one status change adds to the counters (None: nothing). Called inside the
    transaction that wrote the change, so its transition row is already visible: ``history``
    (when the change read it with its write) or one statement say when the interaction was
    answered and closed, this change included."""
    if interaction.queued_at is None:
        return None
    waited = (now - interaction.queued_at).total_seconds()
    if to_status == Status.QUEUED and from_status == Status.NEW:
        return arrival_delta()
    if to_status not in (Status.ASSIGNED, Status.ABANDONED, Status.CLOSED):
        return None
    if history is None:
        history = _history(interaction.pk)
    if to_status == Status.ASSIGNED:
        if len(history.answered) != 1:
            return None  # answered before (a transfer, a reopened thread)
        delta = answer_delta(wait_s=waited, sla_target_s=_target(interaction))
        if history.closed:
            # It had been closed unanswered, then came back: now it counts as answered.
            delta += Figures(closed_unanswered=-1)
        return delta
    if to_status == Status.ABANDONED:
        if history.answered:
            return None  # the citizen hung up after being answered (during a transfer)
        return abandon_delta(wait_s=waited)
    # closed
    if not history.answered:
        if len(history.closed) != 1:
            return None
        return close_delta(handle_s=None)
    answered = history.answered[0]
    if sum(1 for at in history.closed if at >= answered) != 1:
        return None  # closed again after a reopening: handled once
    return close_delta(handle_s=(now - answered).total_seconds())


def add(key: tuple[date, int, str], delta: Figures) -> None:
    """Add ``delta`` to one counters row (created on first use), in one statement."""
    add_many([(key, delta)])


def add_many(deltas: list[tuple[tuple[date, int, str], Figures]]) -> None:
    """Add each delta to its counters row (created on first use), in one statement: the deltas
    of one row summed, the rows in key order (two writers lock shared rows in the same order)."""
    totals: dict[tuple[date, int, str], Figures] = {}
    for key, delta in deltas:
        totals[key] = totals[key] + delta if key in totals else delta
    if not totals:
        return
    table = connection.ops.quote_name(QueueDayStats._meta.db_table)
    columns = ", ".join(COUNTER_FIELDS)
    row = "(" + ", ".join(["%s"] * (3 + len(COUNTER_FIELDS))) + ")"
    updates = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in COUNTER_FIELDS)
    sql = (
        f"INSERT INTO {table} (day, queue_key, channel, {columns}) "  # noqa: S608 - model metadata
        f"VALUES {', '.join([row] * len(totals))} "
        f"ON CONFLICT (day, queue_key, channel) DO UPDATE SET {updates}"
    )
    params: list[Any] = []
    for key in sorted(totals):
        params += [*key, *(getattr(totals[key], c) for c in COUNTER_FIELDS)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


class CounterUpdate:
    """One delta for one counters row, registered to run after the commit: called on its own
    it adds it in one statement; :meth:`run_together` adds those of many (the status changes
    of a whole ingestion batch, ``channels_inbound.ingest.after_commit_in_one_transaction``)
    in one statement. Counters must never break a write: a failure is logged (a rebuild
    repairs them)."""

    __slots__ = ("delta", "key")

    def __init__(self, key: tuple[date, int, str], delta: Figures) -> None:
        self.key = key
        self.delta = delta

    def __call__(self) -> None:
        self.run_together([self])

    @staticmethod
    def run_together(updates: list[CounterUpdate]) -> None:
        try:
            add_many([(u.key, u.delta) for u in updates])
        except Exception:  # counters must never break a write; a rebuild repairs them
            logger.exception(
                "wallboard counters not updated for %s", sorted({u.key for u in updates})
            )

    def __repr__(self) -> str:
        return f"CounterUpdate({self.key!r}, {self.delta!r})"


def _after_commit(key: tuple[date, int, str], delta: Figures) -> None:
    transaction.on_commit(CounterUpdate(key, delta))


def on_status_changed(
    *,
    interaction: Interaction,
    from_status: str,
    to_status: str,
    now: datetime,
    history: TransitionHistory | None = None,
    **_: Any,
) -> None:
    if to_status == Status.TRANSFERRED:
        # Remember where it is counted: a transfer to a queue moves it there (next call).
        setattr(interaction, COUNTED_QUEUE, interaction.queue_id or 0)
    elif from_status == Status.TRANSFERRED:
        _move_if_requeued(interaction)
    delta = delta_for(interaction, from_status, to_status, now, history)
    key = _key(interaction)
    if delta is not None and key is not None:
        _after_commit(key, delta)
    if not (from_status in WAITING and to_status in WAITING):
        # (an offer declined or run out: still waiting, still out of its day's roll-up)
        invalidate_after_commit(interaction.queued_at)


COUNTED_QUEUE = "_supervision_counted_queue"


def _move_if_requeued(interaction: Interaction) -> None:
    """A transfer put the interaction in another queue: what it counted so far in the queue it
    left moves to its new queue (a report counts an interaction in its current queue)."""
    before = getattr(interaction, COUNTED_QUEUE, None)
    key = _key(interaction)
    if before is None or key is None or before == key[1]:
        return
    facts = interaction_facts(interaction.pk)
    if facts is None:
        return
    so_far = figures_of(facts)
    day, _queue, channel = key
    _after_commit((day, before, channel), negated(so_far))
    _after_commit(key, so_far)
    setattr(interaction, COUNTED_QUEUE, key[1])


def on_requeued(
    *, interaction_id: int, from_queue_id: int | None, to_queue_id: int, **_: Any
) -> None:
    """An overflow moved a waiting interaction to another queue: what it counted so far (its
    arrival) moves with it, as a report counts an interaction in its current queue."""
    if (from_queue_id or 0) == to_queue_id:
        return
    interaction = Interaction.objects.filter(pk=interaction_id).first()
    if interaction is None:
        return
    key = _key(interaction)
    facts = interaction_facts(interaction_id) if key is not None else None
    if key is None or facts is None:
        return
    so_far = figures_of(facts)
    day, _queue, channel = key
    _after_commit((day, from_queue_id or 0, channel), negated(so_far))
    _after_commit(key, so_far)
    # (no roll-up to drop: a waiting contact is read live by reports, supervision.rollup)


def negated(figures: Figures) -> Figures:
    return Figures(**{name: -value for name, value in figures.as_dict().items()})


def on_claims(*, rows: list[tuple[int, int, str, bool]], now: datetime, **_: Any) -> None:
    """The router's claims: auto-accepted ones are answers (offers change no counter).

    An offer reads nothing: the router claims waiting contacts only, which past days'
    roll-ups leave out (``supervision.rollup``), so no roll-up goes stale. An auto-accepted
    claim settles its contact: its day's roll-up, if a past day's, is dropped from the row
    read here anyway."""
    auto = [interaction_id for interaction_id, _agent, _channel, accepted in rows if accepted]
    if not auto:
        return
    for interaction in Interaction.objects.filter(pk__in=auto).select_related("queue"):
        delta = delta_for(interaction, Status.OFFERED, Status.ASSIGNED, now)
        key = _key(interaction)
        if delta is not None and key is not None:
            _after_commit(key, delta)
        invalidate_after_commit(interaction.queued_at)


def on_satisfaction(*, interaction: Interaction, score: int) -> None:
    key = _key(interaction)
    if key is not None:
        _after_commit(key, csat_delta(score))
    invalidate_after_commit(interaction.queued_at)


@transaction.atomic
def rebuild_day(day: date) -> int:
    """Recompute one local day's counters from the interactions (returns the rows written)."""
    start, end = day_bounds(day, PARIS)
    facts = report_facts(start, end)
    per_key = breakdown(facts, lambda f: (f.queue_id or 0, f.channel))
    list(QueueDayStats.objects.select_for_update().filter(day=day))
    QueueDayStats.objects.filter(day=day).delete()
    QueueDayStats.objects.bulk_create(
        QueueDayStats(day=day, queue_key=queue_key, channel=channel, **fig.as_dict())
        for (queue_key, channel), fig in per_key.items()
    )
    return len(per_key)
