"""The consoles open in this server process, and the two chores done for all of them at once.

A console sends a heartbeat every ``CONSOLE_HEARTBEAT_SECONDS`` (15 s). Writing each one to
the database would cost one query per console every 15 s (5,000 consoles: 333 writes/s
through the one thread Channels gives database work); instead the consumer notes it here and
one task per process writes every noted agent in a single ``UPDATE`` each
``CONSOLE_HEARTBEAT_FLUSH_SECONDS``. Routing's window (``ROUTING_HEARTBEAT_WINDOW_SECONDS``,
45 s) is far longer than that delay.

The same task checks, every ``CONSOLE_SESSION_CHECK_SECONDS``, that each console's session
still exists, is not idle-expired and belongs to an active account, and closes the others; the
consoles are checked a share at a time, one share each round (two queries per round), so the
work is spread over the interval instead of stalling the process once a minute. Logout and
disabling an account close sockets at once through their groups; this check is the safety net
for everything else (a session that expired, was deleted by an administrator, or went idle).

With ``CONSOLE_GC_FREEZE``, objects that survive a full garbage collection are frozen
(``gc.freeze``), so later collections walk only what was created since: a process holding
thousands of consoles otherwise pauses for seconds on each full collection (measured,
docs/benchmarks.md). Frozen objects that become unreachable through reference cycles are only
reclaimed when ``CONSOLE_GC_UNFREEZE_SECONDS`` have passed (one full collection then).

Catching up without a reconnection: each round also reads, in one query for every console of
the process (:func:`console.outbox.latest_event_ids`, one index probe per agent), the newest
outbox event id of each agent. An id that was already there at the previous round (so written
at least one round ago: not an event still on its way) and that a console was never sent means
that console missed an event (a publish that failed, an event written by another process on
the in-memory layer): the console is told ``{"type": "latest", "last_event_id": N}`` once, and
every ``heartbeat.ack`` carries the same ``last_event_id``; the console then sends ``resume``
with the last id it applied and applies the replay (deduplicated by id). A missed event is so
caught up within two rounds (``CONSOLE_HEARTBEAT_FLUSH_SECONDS``, 5 s, each), with no query per
console and no message at all to the consoles that missed nothing.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import time
from collections.abc import Iterable
from importlib import import_module
from typing import Any, Protocol

from channels.db import database_sync_to_async
from django.conf import settings

logger = logging.getLogger(__name__)


class LiveConsole(Protocol):
    agent_id: int | None
    user_id: int
    session_key: str | None
    # The newest outbox event id this console was sent (live, replayed, or which it said it
    # applied when resuming), and the last id it was told it is behind on.
    last_event_sent: int
    told_latest: int

    async def end(self, reason: str) -> None: ...

    async def tell_latest(self, last_event_id: int) -> None: ...

    async def rejoin_groups(self) -> None: ...


_consoles: dict[Any, int] = {}  # console -> its registration number (its session-check share)
_registered = itertools.count()
_alive: set[int] = set()
_task: asyncio.Task[None] | None = None
# Agent id -> newest outbox event id read by the last round, and by the round before it (ids
# at least one round old: their live message, if it was ever coming, has arrived).
_latest: dict[int, int] = {}
_settled: dict[int, int] = {}


_gc_freezing = False
_last_unfreeze = time.monotonic()


def _freeze_after_full_collection(phase: str, info: dict[str, int]) -> None:
    if phase == "stop" and info.get("generation") == 2:
        gc.freeze()


def _start_gc_freezing() -> None:
    global _gc_freezing
    if settings.CONSOLE_GC_FREEZE and not _gc_freezing:
        gc.callbacks.append(_freeze_after_full_collection)
        _gc_freezing = True


def _maybe_unfreeze() -> None:
    global _last_unfreeze
    if _gc_freezing and time.monotonic() - _last_unfreeze >= settings.CONSOLE_GC_UNFREEZE_SECONDS:
        _last_unfreeze = time.monotonic()
        gc.unfreeze()
        gc.collect()  # reclaims frozen cycles; the callback freezes the survivors again


def register(console: LiveConsole) -> None:
    global _task
    _start_gc_freezing()
    _consoles[console] = next(_registered)
    if console.agent_id is not None:
        _alive.add(console.agent_id)
    loop = asyncio.get_running_loop()
    if _task is None or _task.done() or _task.get_loop() is not loop:
        _task = loop.create_task(_chores())


def unregister(console: LiveConsole) -> None:
    _consoles.pop(console, None)


def beat(console: LiveConsole) -> None:
    if console.agent_id is not None:
        _alive.add(console.agent_id)


def flush_heartbeats(agent_ids: Iterable[int]) -> int:
    from agents.presence import do_heartbeats

    return do_heartbeats(agent_ids=agent_ids)


def settled_event_id(agent_id: int) -> int:
    """The newest outbox event id of ``agent_id`` known for at least one round (0: none)."""
    return _settled.get(agent_id, 0)


def _round_database_work(alive: list[int], agent_ids: set[int]) -> dict[int, int]:
    """One hop to the database thread per round: the heartbeats noted since the last round,
    then the newest outbox event id of every agent with a console here."""
    from .outbox import latest_event_ids

    if alive:
        flush_heartbeats(alive)
    return latest_event_ids(agent_ids)


async def tell_consoles_behind(consoles: Iterable[LiveConsole]) -> int:
    """Tell each console that was never sent an event of its agent that has been in the outbox
    for a round; once per id. Returns how many were told."""
    told = 0
    for console in consoles:
        if console.agent_id is None:
            continue
        newest = _settled.get(console.agent_id, 0)
        if newest > console.last_event_sent and newest != console.told_latest:
            console.told_latest = newest
            try:
                await console.tell_latest(newest)
            except Exception:  # its client went away meanwhile: the others are still told
                logger.info("could not tell console of agent %s", console.agent_id)
                continue
            told += 1
    return told


async def rejoin_groups_if_lost(consoles: Iterable[LiveConsole]) -> int:
    """After the channel layer's Redis lost its data (restarted empty), every open console of
    this process joins its groups again; until then it received no live event (its offers came
    only through the outbox catch-up, seconds late). Returns how many consoles rejoined."""
    from channels.layers import get_channel_layer

    lost_groups = getattr(get_channel_layer(), "lost_groups", None)
    if lost_groups is None:  # in-memory / pub-sub layers: nothing kept on the server
        return 0
    try:
        if not await lost_groups():
            return 0
    except Exception:  # Redis down: checked again next round (then found empty)
        logger.warning("could not check the channel layer's groups", exc_info=True)
        return 0
    rejoined = 0
    for console in consoles:
        try:
            await console.rejoin_groups()
            rejoined += 1
        except Exception:
            logger.warning("console of agent %s could not rejoin its groups", console.agent_id)
    logger.warning("channel layer lost its groups: %d console(s) joined theirs again", rejoined)
    return rejoined


def invalid_sessions(entries: list[tuple[int, str | None]]) -> set[tuple[int, str | None]]:
    """Of (user id, session key) pairs, those whose session or account is no longer valid."""
    from django.contrib.auth import get_user_model

    from .middleware import idle_seconds_left

    active = set(
        get_user_model()
        .objects.filter(pk__in={u for u, _ in entries}, is_active=True)
        .values_list("pk", flat=True)
    )
    engine = import_module(settings.SESSION_ENGINE)
    store_class = engine.SessionStore
    valid_keys: set[str] = set()
    keys = [k for _, k in entries if k]
    if settings.SESSION_ENGINE == "django.contrib.sessions.backends.db" and keys:
        from django.contrib.sessions.models import Session
        from django.utils import timezone

        for key, data in Session.objects.filter(
            session_key__in=keys, expire_date__gt=timezone.now()
        ).values_list("session_key", "session_data"):
            left = idle_seconds_left(store_class().decode(data))
            if left is None or left > 0:
                valid_keys.add(key)
    else:  # other engines: one load per session
        for key in keys:
            store = store_class(key)
            if store.exists(key):
                left = idle_seconds_left(store)
                if left is None or left > 0:
                    valid_keys.add(key)
    return {
        (u, k) for u, k in entries if u not in active or (k is not None and k not in valid_keys)
    }


def session_check_share(consoles: dict[Any, int], round_no: int, rounds: int) -> list[Any]:
    """The consoles whose session is re-checked in this round: each one once every ``rounds``
    (``consoles`` maps each console to its registration number).

    Checking all of them at once meant decoding thousands of sessions in one go, holding the
    interpreter for a few hundred milliseconds every minute while pushes waited.
    """
    share = round_no % rounds
    return [c for c, number in consoles.items() if number % rounds == share]


async def _chores() -> None:
    global _latest, _settled
    flush_every = settings.CONSOLE_HEARTBEAT_FLUSH_SECONDS
    rounds = max(1, round(settings.CONSOLE_SESSION_CHECK_SECONDS / flush_every))
    round_no = 0
    while _consoles:
        await asyncio.sleep(flush_every)
        round_no += 1
        try:
            alive = list(_alive)
            _alive.clear()
            agent_ids = {c.agent_id for c in _consoles if c.agent_id is not None}
            latest = await database_sync_to_async(_round_database_work)(alive, agent_ids)
            _settled, _latest = _latest, latest
            await rejoin_groups_if_lost(list(_consoles))  # a list: a console may go meanwhile
            await tell_consoles_behind(list(_consoles))
            _maybe_unfreeze()
            consoles = session_check_share(_consoles, round_no, rounds)  # a list: end() may await
            if consoles:
                entries = [(c.user_id, c.session_key) for c in consoles]
                bad = await database_sync_to_async(invalid_sessions)(entries)
                for console in consoles:
                    if (console.user_id, console.session_key) in bad:
                        try:
                            await console.end("session")
                        except Exception:  # already gone: the next ones are still closed
                            logger.info("console of agent %s already closed", console.agent_id)
        except Exception:  # never let the chores die: the next round tries again
            logger.exception("console chores failed")
