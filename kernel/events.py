"""Publishing real-time events after the write that caused them has committed.

Domain code says what happened with :func:`publish`; delivery goes through the Channels layer to
groups (one per agent console, one per organisation for its supervisors). Nothing is sent for
a transaction that rolls back, and a lost publish loses nothing: the database holds the state,
and consoles resynchronise from it when they (re)connect. A publish that fails (e.g. on a
connection Redis closed when it restarted) is retried once on a fresh connection. The event
catalogue is in docs/architecture.md.

Events for an agent group (``agent.<id>``) also go through the *agent outbox* when an app
registers one (the console does, ``console.outbox``): they are written to the database in the
caller's transaction, and the live message carries the row's id, so a console that reconnects
asks for what it missed by id. Ephemeral events (typing indicators) are not kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)

# Publishers address supervisors with this name; it is never a group itself: each event goes to
# the supervisors of the organisation it concerns (:func:`supervisors_group`), found from its
# payload by :func:`supervisor_groups_of`. An organisation's wallboards never hear of another's.
SUPERVISORS_GROUP = "supervisors"


def agent_group(agent_id: int) -> str:
    return f"agent.{agent_id}"


def supervisors_group(organisation_id: int) -> str:
    """The group of one organisation's supervision sockets (wallboards)."""
    return f"supervisors.org.{organisation_id}"


# Interaction and agent -> organisation (neither ever changes organisation): a bounded cache
# so the hot paths (every transition, every state change) rarely pay the query.
_ORG_CACHE_MAX = 20_000
_interaction_orgs: dict[int, int] = {}
_agent_orgs: dict[int, int] = {}


def _organisations_of(model_label: str, ids: set[int], cache: dict[int, int]) -> None:
    missing = [i for i in ids if i not in cache]
    if not missing:
        return
    from django.apps import apps

    model = apps.get_model(model_label)
    if len(cache) + len(missing) > _ORG_CACHE_MAX:
        cache.clear()
    cache.update(model._default_manager.filter(pk__in=missing).values_list("pk", "organisation_id"))


def remember_interaction_organisation(interaction_id: int, organisation_id: int | None) -> None:
    """Note an interaction's organisation read by its caller anyway (a status change has the
    row at hand), so that publishing its events asks nothing."""
    if organisation_id is not None and interaction_id not in _interaction_orgs:
        if len(_interaction_orgs) >= _ORG_CACHE_MAX:
            _interaction_orgs.clear()
        _interaction_orgs[interaction_id] = organisation_id


def interaction_organisations(interaction_ids: set[int]) -> dict[int, int]:
    """Interaction -> its organisation (cached: an interaction never changes organisation)."""
    _organisations_of("interactions.Interaction", interaction_ids, _interaction_orgs)
    return {i: _interaction_orgs[i] for i in interaction_ids if i in _interaction_orgs}


def _ids(payload: dict[str, Any], *keys: str) -> set[int]:
    found: set[int] = set()
    for key in keys:
        value = payload.get(key)
        values = value if isinstance(value, list | tuple) else [value]
        found.update(v for v in values if isinstance(v, int) and not isinstance(v, bool))
    return found


def supervisor_groups_of(events: list[Event]) -> list[Event]:
    """Replace :data:`SUPERVISORS_GROUP` by the groups of the organisations each event is about:
    its payload's ``organisation_id``, else those of its ``interaction_id`` and ``agent_id`` /
    ``agent_ids``. An event naming none of them reaches no supervisor (never all of them)."""
    concerned = [e for e in events if SUPERVISORS_GROUP in e[2]]
    if not concerned:
        return events
    interaction_ids: set[int] = set()
    agent_ids: set[int] = set()
    for _event, payload, _groups in concerned:
        if not _ids(payload, "organisation_id"):
            interaction_ids |= _ids(payload, "interaction_id")
            agent_ids |= _ids(payload, "agent_id", "agent_ids")
    _organisations_of("interactions.Interaction", interaction_ids, _interaction_orgs)
    _organisations_of("agents.AgentProfile", agent_ids, _agent_orgs)
    out: list[Event] = []
    for event, payload, groups in events:
        if SUPERVISORS_GROUP not in groups:
            out.append((event, payload, groups))
            continue
        orgs = _ids(payload, "organisation_id") or {
            *(
                _interaction_orgs[i]
                for i in _ids(payload, "interaction_id")
                if i in _interaction_orgs
            ),
            *(_agent_orgs[a] for a in _ids(payload, "agent_id", "agent_ids") if a in _agent_orgs),
        }
        resolved = [g for g in groups if g != SUPERVISORS_GROUP]
        resolved += [supervisors_group(org) for org in sorted(orgs)]
        if resolved:
            out.append((event, payload, resolved))
    return out


Event = tuple[str, dict[str, Any], list[str]]  # (event name, payload, groups)

_AGENT_GROUP = re.compile(r"^agent\.(\d+)$")

# Events a reconnecting console does not need replayed (they describe a passing moment).
EPHEMERAL_EVENTS = frozenset({"chat.typing"})

# (agent id, event, payload) in; (event id, payload to send, ISO time) out, in the same order.
AgentOutbox = Callable[
    [list[tuple[int, str, dict[str, Any]]]], list[tuple[int, dict[str, Any], str]]
]
_agent_outbox: AgentOutbox | None = None


def set_agent_outbox(outbox: AgentOutbox | None) -> None:
    """Register the function that persists agent-facing events (``console.outbox``)."""
    global _agent_outbox
    _agent_outbox = outbox


def agent_id_of(group: str) -> int | None:
    match = _AGENT_GROUP.match(group)
    return int(match.group(1)) if match else None


Delivery = tuple[str, dict[str, Any]]  # (group, channel layer message)


async def _drop_connections(layer: Any) -> None:
    """Close this event loop's Redis connections of ``layer``, so the next command opens a
    fresh one. After a Redis restart every pooled connection is dead, and only a command on it
    finds out: without this, the first event each long-lived process published was lost."""
    loop_layers = getattr(layer, "_layers", None)  # channels_redis.core: one per event loop
    if not isinstance(loop_layers, dict):
        return  # pubsub / in-memory: a failed connection is already out of the pool
    own = loop_layers.get(asyncio.get_running_loop())
    if own is None or type(own).__name__ != "RedisLoopLayer":
        return
    try:
        await own.flush()  # closes and forgets this loop's connections only
    except Exception:
        logger.warning("could not close the channel layer's connections", exc_info=True)


async def _send_all(deliveries: list[Delivery]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    for group, message in deliveries:
        try:
            await layer.group_send(group, message)
            continue
        except Exception:
            logger.warning(
                "could not publish %s to %s; retrying on a fresh connection",
                message.get("event"),
                group,
                exc_info=True,
            )
        await _drop_connections(layer)
        try:
            await layer.group_send(group, message)
        except Exception:  # a publish must never break the write that caused it
            logger.exception("could not publish %s to %s", message.get("event"), group)


# Redis channel layers keep their connections per event loop. ``async_to_sync`` from a plain
# thread (a Celery worker, a management command) makes a new loop, so a new connection, for
# every publish: about 6 ms each, measured. Such publishes go through one long-lived loop per
# process instead (about 0.3 ms). The in-memory layer (embedded default) must stay on the
# server's own loop, so it keeps ``async_to_sync``.
_publisher: tuple[asyncio.AbstractEventLoop, int] | None = None
_publisher_lock = threading.Lock()
PUBLISH_TIMEOUT_SECONDS = 10.0


def _publisher_loop() -> asyncio.AbstractEventLoop:
    global _publisher
    with _publisher_lock:
        if _publisher is None or _publisher[1] != os.getpid():  # new, or a forked child
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="events-publisher", daemon=True).start()
            _publisher = (loop, os.getpid())
        return _publisher[0]


def _deliver(deliveries: list[Delivery]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    # a channels_redis layer, or a subclass of one (kernel.channel_layer)
    if not any(cls.__module__.startswith("channels_redis") for cls in type(layer).__mro__):
        async_to_sync(_send_all)(deliveries)
        return
    future = asyncio.run_coroutine_threadsafe(_send_all(deliveries), _publisher_loop())
    try:
        future.result(timeout=PUBLISH_TIMEOUT_SECONDS)
    except Exception:  # a publish must never break the write that caused it
        logger.exception("could not publish %d event(s)", len(deliveries))


def _deliveries(events: list[Event], persist: bool) -> list[Delivery]:
    deliveries: list[Delivery] = []
    to_record: list[tuple[int, str, dict[str, Any]]] = []
    slots: list[int] = []  # index in deliveries of each recorded agent message
    for event, payload, groups in events:
        message = {"type": "cc.event", "event": event, "payload": payload}
        for group in groups:
            agent_id = agent_id_of(group)
            if (
                agent_id is not None
                and persist
                and _agent_outbox is not None
                and event not in EPHEMERAL_EVENTS
            ):
                to_record.append((agent_id, event, payload))
                slots.append(len(deliveries))
            deliveries.append((group, message))
    if to_record and _agent_outbox is not None:
        recorded = _agent_outbox(to_record)
        for slot, (event_id, sent_payload, at) in zip(slots, recorded, strict=True):
            group, message = deliveries[slot]
            deliveries[slot] = (
                group,
                {**message, "id": event_id, "payload": sent_payload, "at": at},
            )
    return deliveries


# The events held by :func:`published_together` on a connection: (events, persist, marker) in
# the order they were published; the marker is an on-commit callback that doing nothing but
# says, by still being registered, that the savepoint the events were published in (if any)
# did not roll back.
_HELD = "_kernel_events_held"


class _Marker:
    __slots__ = ()

    def __call__(self) -> None:
        pass


@contextlib.contextmanager
def published_together() -> Iterator[None]:
    """Hold what is published in this block (by its code and by the receivers it calls) and
    publish it at its end in one :func:`publish_many`, in the order it was published: one
    outbox write (one summary read of the interactions) and one delivery instead of one each.

    Use it directly inside a transaction block that rolls back as a whole when an exception
    leaves it: the held events are then dropped with the rest. Events published in a savepoint
    that rolled back are dropped, as they would have been. Outside a transaction, or inside
    another such block, it changes nothing."""
    conn = transaction.get_connection()
    if not conn.in_atomic_block or getattr(conn, _HELD, None) is not None:
        yield
        return
    held: list[tuple[list[Event], bool, _Marker]] = []
    setattr(conn, _HELD, held)
    try:
        yield
    finally:
        setattr(conn, _HELD, None)
    if not held:
        return
    alive = {id(entry[1]) for entry in conn.run_on_commit}
    runs: list[tuple[list[Event], bool]] = []
    for events, persist, marker in held:
        if id(marker) not in alive:
            continue  # published in a savepoint that rolled back
        if runs and runs[-1][1] == persist:
            runs[-1][0].extend(events)
        else:
            runs.append((list(events), persist))
    for events, persist in runs:
        publish_many(events, persist=persist)


def publish_many(events: list[Event], *, persist: bool = True) -> None:
    """Send several events once the current transaction commits (one hop to the layer).

    Agent-facing events are written to the outbox now, in the caller's transaction (so they
    roll back with it), unless ``persist`` is false (or at the end of the caller's
    :func:`published_together` block).
    """
    held = getattr(transaction.get_connection(), _HELD, None)
    if held is not None:
        marker = _Marker()
        transaction.on_commit(marker)
        held.append((events, persist, marker))
        return
    events = supervisor_groups_of(events)
    if events:
        deliveries = _deliveries(events, persist)
        transaction.on_commit(lambda: _deliver(deliveries), robust=True)


def publish(
    event: str, payload: dict[str, Any], *, groups: list[str], persist: bool = True
) -> None:
    """Send ``event`` to ``groups`` once the current transaction commits."""
    publish_many([(event, payload, groups)], persist=persist)
