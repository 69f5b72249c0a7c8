"""The consoles open in this server process, and the two chores done for all of them at once.

A console sends a heartbeat every ``CONSOLE_HEARTBEAT_SECONDS`` (15 s). Writing each one to
the database would cost one query per console every 15 s (5,000 consoles: 333 writes/s
through the one thread Channels gives database work); instead the consumer notes it here and
one task per process writes every noted agent in a single ``UPDATE`` each
``CONSOLE_HEARTBEAT_FLUSH_SECONDS``. Routing's window (``ROUTING_HEARTBEAT_WINDOW_SECONDS``,
45 s) is far longer than that delay.

The same task checks, every ``CONSOLE_SESSION_CHECK_SECONDS``, that each console's session
still exists, is not idle-expired and belongs to an active account, and closes the others; the
consoles are checked a share at a time, one share each round (one query per round on
PostgreSQL with database sessions: :func:`invalid_sessions`), so the
work is spread over the interval instead of stalling the process once a minute. Logout and
disabling an account close sockets at once through their groups; this check is the safety net
for everything else (a session that expired, was deleted by an administrator, or went idle).

With ``CONSOLE_GC_FREEZE``, objects that survive a full garbage collection are frozen
(``gc.freeze``), so later collections walk only what was created since: a process holding
thousands of consoles otherwise pauses for seconds on each full collection (measured,
docs/benchmarks.md). Frozen objects that become unreachable through reference cycles are only
reclaimed when ``CONSOLE_GC_UNFREEZE_SECONDS`` have passed (one full collection then).

Catching up without a reconnection: each round also reads, in one query for every console of
the process (:func:`console.outbox.event_ids_after`), the outbox ids of each agent above the
id up to which its consoles are known to have everything. Each console remembers the ids it
was sent (live, or in a replay); an id that was already there at the previous round (so
written at least one round ago: not an event still on its way) and that a console was never
sent is a missed event (a publish that failed, an event written by another process on the
in-memory layer, or one lost while newer ones of the same agent were delivered): the server
pushes those events to that console as a ``replay``, which the console applies like after a
reconnection (``state.js`` keeps the newest state of each thing, so an older event applied
late never undoes a newer one). A missed event is so shown within two rounds
(``CONSOLE_HEARTBEAT_FLUSH_SECONDS``, 5 s, each), with one query per round for all consoles and
no message at all to the consoles that missed nothing.
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

from kernel import instruments

logger = logging.getLogger(__name__)


class LiveConsole(Protocol):
    agent_id: int | None
    user_id: int
    session_key: str | None
    # Every outbox id of its agent up to ``applied_up_to`` is known to be on the console (None
    # until its first ``resume`` is answered: it is not checked before), and ``sent_ids`` are
    # the ids above it it was sent since (live or replayed).
    applied_up_to: int | None
    sent_ids: set[int]

    async def end(self, reason: str) -> None: ...

    async def push_missed(self, events: list[dict[str, Any]]) -> None: ...

    async def resync(self) -> None: ...

    async def rejoin_groups(self) -> None: ...


_consoles: dict[Any, int] = {}  # console -> its registration number (its session-check share)
_registered = itertools.count()
_alive: set[int] = set()
_task: asyncio.Task[None] | None = None
# Agent id -> the outbox ids read for it by the last round: an id read again is at least one
# round old (its live message, if it was ever coming, has arrived).
_seen_last_round: dict[int, set[int]] = {}


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
    instruments.console_sockets(len(_consoles))
    if console.agent_id is not None:
        _alive.add(console.agent_id)
    loop = asyncio.get_running_loop()
    if _task is None or _task.done() or _task.get_loop() is not loop:
        _task = loop.create_task(_chores())


def unregister(console: LiveConsole) -> None:
    _consoles.pop(console, None)
    instruments.console_sockets(len(_consoles))


def beat(console: LiveConsole) -> None:
    if console.agent_id is not None:
        _alive.add(console.agent_id)


def flush_heartbeats(agent_ids: Iterable[int]) -> int:
    from agents.presence import do_heartbeats

    return do_heartbeats(agent_ids=agent_ids)


def _round_database_work(alive: list[int], floors: dict[int, int]) -> dict[int, list[int]]:
    """One hop to the database thread per round: the heartbeats noted since the last round,
    then the outbox ids above each agent's floor (``catch_up``)."""
    from .outbox import event_ids_after

    if alive:
        flush_heartbeats(alive)
    return event_ids_after(floors)


def floors(consoles: Iterable[LiveConsole]) -> dict[int, int]:
    """Per agent, the id up to which every console of that agent here has everything."""
    found: dict[int, int] = {}
    for console in consoles:
        if console.agent_id is None or console.applied_up_to is None:
            continue
        known = found.get(console.agent_id)
        if known is None or console.applied_up_to < known:
            found[console.agent_id] = console.applied_up_to
    return found


def find_missed(
    consoles: Iterable[LiveConsole], recent: dict[int, list[int]]
) -> tuple[dict[LiveConsole, list[int]], list[LiveConsole]]:
    """Which settled ids each console was never sent, and which consoles are too far behind to
    be caught up id by id (they resume instead). Moves each console's ``applied_up_to`` past
    the ids it has or will be sent, so the next round reads only newer ones."""
    from .outbox import RECENT_IDS_LIMIT

    global _seen_last_round
    missed: dict[LiveConsole, list[int]] = {}
    too_far: list[LiveConsole] = []
    for console in consoles:
        agent_id, up_to = console.agent_id, console.applied_up_to
        if agent_id is None or up_to is None:
            continue
        ids = [i for i in recent.get(agent_id, []) if i > up_to]
        if len(recent.get(agent_id, [])) > RECENT_IDS_LIMIT:
            too_far.append(console)
            continue
        before = _seen_last_round.get(agent_id, set())
        settled: list[int] = []
        for event_id in ids:  # ascending: stop at the first id still on its way
            if event_id not in before:
                break
            settled.append(event_id)
        lost = [i for i in settled if i not in console.sent_ids]
        if lost:
            missed[console] = lost
            console.sent_ids.update(lost)
        if settled:
            console.applied_up_to = settled[-1]
            console.sent_ids = {i for i in console.sent_ids if i > settled[-1]}
    _seen_last_round = {agent_id: set(ids) for agent_id, ids in recent.items()}
    return missed, too_far


async def catch_up(consoles: list[LiveConsole], recent: dict[int, list[int]]) -> int:
    """Push to each console the events it missed (one query for all of them); a console too far
    behind resumes (replay or snapshot). Returns how many consoles were caught up."""
    from .outbox import events_by_ids

    missed, too_far = find_missed(consoles, recent)
    caught = 0
    if missed:
        wanted = {i for ids in missed.values() for i in ids}
        events = await database_sync_to_async(events_by_ids)(wanted)
        for console, ids in missed.items():
            found = [events[i] for i in ids if i in events]
            if not found:
                continue
            try:
                await console.push_missed(found)
            except Exception:  # its client went away meanwhile: the others are still caught up
                logger.info("could not catch up the console of agent %s", console.agent_id)
                continue
            caught += 1
            logger.info(
                "console of agent %s missed %d event(s): sent again", console.agent_id, len(found)
            )
    for console in too_far:
        try:
            await console.resync()
        except Exception:
            logger.info("could not resync the console of agent %s", console.agent_id)
            continue
        caught += 1
    return caught


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


_SESSIONS_SQL: list[str] = []


def _sessions_sql() -> str:
    """The pairs' active accounts with their unexpired sessions, one statement (PostgreSQL,
    database sessions): a pair without a row has no active account; a row without session
    data has no live session."""
    if not _SESSIONS_SQL:
        from django.contrib.auth import get_user_model
        from django.contrib.sessions.models import Session
        from django.db import connection

        qn = connection.ops.quote_name
        users, sessions = get_user_model()._meta, Session._meta
        column = {
            name: qn(str(meta.get_field(name).column))  # type: ignore[union-attr]
            for meta, name in (
                (users, "is_active"),
                (sessions, "session_data"),
                (sessions, "expire_date"),
            )
        }
        _SESSIONS_SQL.append(
            f"SELECT p.user_id, p.session_key, s.{column['session_data']} "  # noqa: S608
            "FROM unnest(%s::bigint[], %s::varchar[]) AS p(user_id, session_key) "
            f"JOIN {qn(users.db_table)} u ON u.{qn(users.pk.column)} = p.user_id "
            f"AND u.{column['is_active']} "
            f"LEFT JOIN {qn(sessions.db_table)} s ON s.{qn(sessions.pk.column)} = p.session_key "
            f"AND s.{column['expire_date']} > %s"
        )
    return _SESSIONS_SQL[0]


def _invalid_in_one_statement(
    entries: list[tuple[int, str | None]], store_class: Any
) -> set[tuple[int, str | None]]:
    """:func:`invalid_sessions` with the database session engine on PostgreSQL: the accounts
    and the sessions read together (one round trip, checked before every socket action)."""
    from django.db import connection
    from django.utils import timezone

    from .middleware import idle_seconds_left

    pairs = list(dict.fromkeys(entries))
    with connection.cursor() as cursor:
        cursor.execute(
            _sessions_sql(),
            [
                [u for u, _ in pairs],
                [k for _, k in pairs],
                connection.ops.adapt_datetimefield_value(timezone.now()),
            ],
        )
        rows = cursor.fetchall()
    valid: set[tuple[int, str | None]] = set()
    for user_id, key, data in rows:
        if key is None:  # no session to check: the account alone
            valid.add((user_id, key))
        elif data is not None:
            left = idle_seconds_left(store_class().decode(data))
            if left is None or left > 0:
                valid.add((user_id, key))
    return {pair for pair in entries if pair not in valid}


def invalid_sessions(entries: list[tuple[int, str | None]]) -> set[tuple[int, str | None]]:
    """Of (user id, session key) pairs, those whose session or account is no longer valid.

    One statement on PostgreSQL with the database session engine (the socket checks its own
    pair before each action: that statement is part of every accept and close); two (the
    accounts, the sessions) on other databases, one load per session with other engines."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    from .middleware import idle_seconds_left

    engine = import_module(settings.SESSION_ENGINE)
    store_class = engine.SessionStore
    database_sessions = settings.SESSION_ENGINE == "django.contrib.sessions.backends.db"
    if not entries:
        return set()
    if database_sessions and connection.vendor == "postgresql":
        return _invalid_in_one_statement(entries, store_class)
    active = set(
        get_user_model()
        .objects.filter(pk__in={u for u, _ in entries}, is_active=True)
        .values_list("pk", flat=True)
    )
    valid_keys: set[str] = set()
    keys = [k for _, k in entries if k]
    if database_sessions and keys:
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
    flush_every = settings.CONSOLE_HEARTBEAT_FLUSH_SECONDS
    rounds = max(1, round(settings.CONSOLE_SESSION_CHECK_SECONDS / flush_every))
    round_no = 0
    while _consoles:
        await asyncio.sleep(flush_every)
        round_no += 1
        try:
            alive = list(_alive)
            _alive.clear()
            wanted = floors(list(_consoles))
            recent = await database_sync_to_async(_round_database_work)(alive, wanted)
            await rejoin_groups_if_lost(list(_consoles))  # a list: a console may go meanwhile
            await catch_up(list(_consoles), recent)
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
