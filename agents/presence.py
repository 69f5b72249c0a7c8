"""Agent presence: states, per-channel availability and the console heartbeat.

The one write path of an agent's presence row (docs/architecture.md, "Where writes live"):
every change of state goes through a function below, which writes the new state, one
history row (:class:`~agents.models.AgentStateChange`) and one ``agent.state`` event
(:func:`agent_state_event`) in the transaction of the change, and nothing when nothing
changed. The paths:

- the agent (console, ``PATCH /api/v1/presence/me/``), a supervisor, a logout or a disabled
  account: :func:`do_set_agent_state`;
- an offer left to ring out or a phone that did not answer: :func:`do_pause_missed`;
- after a call: :func:`do_start_wrap_up`, then :func:`do_end_wrap_up` (the call closed) or
  :func:`do_end_wrap_ups` (its timer, the sweep);
- a console that vanished: :func:`do_mark_connection_lost` (``routing.offers``
  ``do_release_lost_consoles`` holds the row's lock).

A change after which the agent may take new work sends ``agents.signals.agent_available`` in its
transaction (routing connects a receiver that asks for a pass once it commits).

Other presence writes: the channels taken (:func:`do_set_channels`), heartbeats
(:func:`do_heartbeat`, :func:`do_heartbeats`), the "longest idle" clock
(:func:`do_touch_idle`, or :func:`touching_idle` with a caller's statement) and the row
itself (:func:`ensure_presence`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from kernel import event_catalogue
from kernel.errors import SingleCodeError
from kernel.events import SUPERVISORS_GROUP, agent_group, publish, publish_many
from kernel.pg import execute_binary

from .models import (
    ALL_CHANNELS,
    AgentPresence,
    AgentProfile,
    AgentState,
    AgentStateChange,
    OfflineReason,
    PauseReason,
)
from .signals import agent_available

Event = tuple[str, dict[str, Any], list[str]]
Change = tuple[int, str, str, datetime]  # agent id, state, reason, since


class PresenceError(SingleCodeError, ValueError):
    """A presence change that makes no sense (the message says why; 400)."""

    default_code = "invalid_presence"


def agent_state_event(agent_id: int, state: str, reason: str, since: datetime) -> Event:
    """The ``agent.state`` event (the one builder): to the agent's consoles and supervisors."""
    name, payload = event_catalogue.agent_state(
        agent_id=agent_id, state=state, reason=reason, since=since.isoformat()
    )
    return (name, payload, [agent_group(agent_id), SUPERVISORS_GROUP])


def _record(changes: Sequence[Change]) -> None:
    """The history rows and ``agent.state`` events of changes just written (same transaction)."""
    if not changes:
        return
    AgentStateChange.objects.bulk_create(
        AgentStateChange(agent_id=agent_id, state=state, reason=reason, at=since)
        for agent_id, state, reason, since in changes
    )
    publish_many([agent_state_event(*change) for change in changes])


def _announce_available(agent_ids: Sequence[int]) -> None:
    """These agents may take new work: ``agent_available``, in the transaction of the change
    (routing asks for a pass once it commits)."""
    agent_available.send(sender=AgentPresence, agent_ids=list(agent_ids))


def ensure_presence(agent: AgentProfile, now: datetime | None = None) -> None:
    """The agent's presence row exists (offline until they say otherwise)."""
    now = now or timezone.now()
    AgentPresence.objects.get_or_create(
        agent=agent, defaults={"state_since": now, "idle_since": now}
    )


def _locked(agent: AgentProfile) -> AgentPresence:
    ensure_presence(agent)
    return AgentPresence.objects.select_for_update().get(agent=agent)


def _change(
    presence: AgentPresence, state: str, reason: str, now: datetime, also: Sequence[str] = ()
) -> bool:
    """Put the locked ``presence`` in ``state`` (a wrap-up timer ends), write its history row
    and event; False, and no state written, when it already was in that state for that reason.
    ``also``: fields the caller set on ``presence``, saved in the same statement."""
    reason = reason if state in (AgentState.PAUSED, AgentState.OFFLINE) else ""
    if (presence.state, presence.pause_reason) == (state, reason):
        if also:
            presence.save(update_fields=list(also))
        return False
    presence.state = state
    presence.pause_reason = reason
    presence.state_since = now
    presence.wrap_up_until = None
    update = ["state", "pause_reason", "state_since", "wrap_up_until", *also]
    if state == AgentState.AVAILABLE:
        presence.idle_since = now
        update.append("idle_since")
    presence.save(update_fields=update)
    _record([(presence.agent_id, state, reason, now)])
    return True


def do_set_agent_state(
    *, agent: AgentProfile, state: str, reason: str = "", now: datetime | None = None
) -> AgentPresence:
    """Change the agent's state: the agent (console, API), a supervisor, a logout.

    Going available counts as proof of life (the console sends it) and asks for a routing pass.
    """
    now = now or timezone.now()
    if state not in AgentState.values:
        raise PresenceError(f"unknown state {state!r}")
    if state == AgentState.PAUSED and reason not in PauseReason.values:
        raise PresenceError(
            f"a pause needs a reason among: {', '.join(PauseReason.values)} (got {reason!r})"
        )
    if state == AgentState.WRAP_UP:
        raise PresenceError("wrap-up starts by itself after a call")
    with transaction.atomic():
        presence = _locked(agent)
        also: list[str] = []
        if state == AgentState.AVAILABLE:
            presence.last_heartbeat_at = now
            also.append("last_heartbeat_at")
        # A pause keeps its reason; an offline set by someone has none (only the system's
        # "connection lost" has one).
        _change(presence, state, reason if state == AgentState.PAUSED else "", now, also)
        if state == AgentState.AVAILABLE:
            _announce_available([agent.pk])
    return presence


def do_pause_missed(*, agent_id: int, now: datetime, if_available: bool = False) -> bool:
    """Pause the agent "missed": an offer rang out (``routing.offers.do_expire_offers``) or
    their phone did not answer (``if_available``: only an available agent).

    An offline agent stays offline: a pause would count them as logged in again. Waits for
    the presence lock (rule 1: the offer's and the interaction's are held). Returns whether
    the state changed.
    """
    presence = AgentPresence.objects.select_for_update().filter(agent_id=agent_id).first()
    if presence is None or presence.state == AgentState.OFFLINE:
        return False
    if if_available and presence.state != AgentState.AVAILABLE:
        return False
    return _change(presence, AgentState.PAUSED, PauseReason.MISSED, now)


def do_mark_connection_lost(*, presence: AgentPresence, now: datetime) -> bool:
    """The agent's console vanished: offline with the reason "connection lost".

    ``presence`` is locked by the caller (``routing.offers.do_release_lost_consoles``, which
    never waits for it). Returns whether the state changed.
    """
    return _change(presence, AgentState.OFFLINE, OfflineReason.CONNECTION_LOST, now)


def do_start_wrap_up(*, agent_id: int, now: datetime, until: datetime) -> bool:
    """After a call the available agent is in wrap-up until ``until`` (no offers meanwhile).

    Runs in the transaction that moves the call to wrap-up (its interaction is locked, then
    the presence row: rule 1). Returns whether it started (not when the agent was not
    available, e.g. paused while on the call).
    """
    started = AgentPresence.objects.filter(agent_id=agent_id, state=AgentState.AVAILABLE).update(
        state=AgentState.WRAP_UP, pause_reason="", state_since=now, wrap_up_until=until
    )
    if started:
        _record([(agent_id, AgentState.WRAP_UP, "", now)])
    return bool(started)


def do_end_wrap_up(*, agent_id: int, now: datetime) -> bool:
    """The call in wrap-up was closed: its agent, still in wrap-up, is available again."""
    ended = AgentPresence.objects.filter(agent_id=agent_id, state=AgentState.WRAP_UP).update(
        state=AgentState.AVAILABLE, state_since=now, wrap_up_until=None, idle_since=now
    )
    if ended:
        _record([(agent_id, AgentState.AVAILABLE, "", now)])
        _announce_available([agent_id])
    return bool(ended)


def do_end_wrap_ups(*, now: datetime | None = None, agent_ids: Iterable[int] | None = None) -> int:
    """Agents whose after-call work timer ran out become available again.

    The sweep ends every timer due; the timer task of one agent (``routing.end_wrap_up``,
    scheduled at its end) passes ``agent_ids``. Idempotent: an agent whose wrap-up already
    ended (closed call, sweep) or was extended is left alone.
    """
    now = now or timezone.now()
    rows = AgentPresence.objects.filter(state=AgentState.WRAP_UP, wrap_up_until__lte=now)
    if agent_ids is not None:
        rows = rows.filter(agent_id__in=list(agent_ids))
    with transaction.atomic():
        ended = list(
            rows.order_by("agent_id")
            .select_for_update(skip_locked=True)
            .values_list("agent_id", flat=True)
        )
        if not ended:
            return 0
        AgentPresence.objects.filter(agent_id__in=ended, state=AgentState.WRAP_UP).update(
            state=AgentState.AVAILABLE, state_since=now, wrap_up_until=None, idle_since=now
        )
        _record([(agent_id, AgentState.AVAILABLE, "", now) for agent_id in ended])
        _announce_available(ended)
    return len(ended)


def do_set_channels(*, agent: AgentProfile, channels: Iterable[str]) -> AgentPresence:
    """Choose the channels the agent takes work on (e.g. no calls this afternoon)."""
    wanted = list(dict.fromkeys(channels))
    unknown = set(wanted) - set(ALL_CHANNELS)
    if unknown:
        raise PresenceError(f"unknown channels: {', '.join(sorted(unknown))}")
    with transaction.atomic():
        presence = _locked(agent)
        added = set(wanted) - set(presence.channels_enabled or [])
        presence.channels_enabled = wanted
        presence.save(update_fields=["channels_enabled"])
        publish(
            *event_catalogue.agent_channels(agent_id=agent.pk, channels=wanted),
            groups=[agent_group(agent.pk), SUPERVISORS_GROUP],
        )
        if added and presence.state == AgentState.AVAILABLE:
            _announce_available([agent.pk])
    return presence


_TOUCH_IDLE_SQL: list[str] = []
# Per thread: the (agent id, moment) whose idle clock the caller's statement already wrote
# (:func:`touching_idle`), which :func:`do_touch_idle` then leaves alone.
_written_by_caller = threading.local()


def _touch_idle_write(agent_id: int, now: datetime) -> tuple[str, list[Any]]:
    """The "longest idle" write of one agent: its SQL, written once, and its parameters."""
    if not _TOUCH_IDLE_SQL:
        qn, meta = connection.ops.quote_name, AgentPresence._meta
        idle, agent = (str(meta.get_field(n).column) for n in ("idle_since", "agent"))  # type: ignore[union-attr]
        _TOUCH_IDLE_SQL.append(
            f"UPDATE {qn(meta.db_table)} SET {qn(idle)} = %s WHERE {qn(agent)} = %s"  # noqa: S608
        )
    return _TOUCH_IDLE_SQL[0], [connection.ops.adapt_datetimefield_value(now), agent_id]


def do_touch_idle(*, agent_ids: Iterable[int], now: datetime) -> None:
    """These agents got or finished work: "longest idle" counts from ``now`` (one statement,
    written once for one agent). An agent whose clock the caller writes with its own statement
    at ``now`` (:func:`touching_idle`: the console's closing and wrap-up) is left out."""
    done = getattr(_written_by_caller, "pairs", ())
    ids = [i for i in agent_ids if (i, now) not in done]
    if not ids:
        return
    if len(ids) != 1:
        AgentPresence.objects.filter(agent_id__in=ids).update(idle_since=now)
        return
    sql, params = _touch_idle_write(ids[0], now)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


@contextmanager
def touching_idle(*, agent_id: int, now: datetime) -> Iterator[tuple[str, list[Any]]]:
    """The agent's "longest idle" write at ``now`` as a statement for the caller to write with
    one of its own (a status change's ``with_write``: one round trip instead of two, e.g. the
    closing of an interaction, whose status change makes routing's receiver touch the clock).
    Inside the block, :func:`do_touch_idle` leaves that agent at that moment alone: the
    caller's statement wrote it (or the block's transaction rolls back with it)."""
    pairs: set[tuple[int, datetime]] = getattr(_written_by_caller, "pairs", None) or set()
    _written_by_caller.pairs = pairs
    pair = (agent_id, now)
    added = pair not in pairs
    pairs.add(pair)
    try:
        yield _touch_idle_write(agent_id, now)
    finally:
        if added:
            pairs.discard(pair)


def do_heartbeat(*, agent_id: int, now: datetime | None = None) -> bool:
    """The console is alive. Returns False if the agent has no presence row."""
    now = now or timezone.now()
    return bool(AgentPresence.objects.filter(agent_id=agent_id).update(last_heartbeat_at=now))


def do_heartbeats(*, agent_ids: Iterable[int], now: datetime | None = None) -> int:
    """Many consoles are alive: one write for all (the console server batches heartbeats)."""
    now = now or timezone.now()
    ids = sorted(set(agent_ids))
    if not ids:
        return 0
    if connection.vendor == "postgresql":  # one array parameter, not one per console
        table = connection.ops.quote_name(AgentPresence._meta.db_table)
        with execute_binary(
            f"UPDATE {table} SET last_heartbeat_at = %b "  # noqa: S608 - name from metadata
            "WHERE agent_id = ANY(%b::bigint[])",
            [now, ids],
        ) as cursor:
            return cursor.rowcount
    return AgentPresence.objects.filter(agent_id__in=ids).update(last_heartbeat_at=now)
