"""What ``manage.py serve`` runs beside the web server on the embedded default (no broker).

* The periodic scheduler, Celery beat's job: tasks run eagerly where they are called (so the
  queues of ``contactcentre.celery.QUEUES`` need no consumer: every task of every queue runs
  in this process), and this thread runs the entries of ``CELERY_BEAT_SCHEDULE`` at their
  intervals inside the server process. A kombu ``memory://`` worker in a thread was measured
  polling about once a second and its embedded beat never fired, so this small loop is
  simpler and predictable.
* The outbox poller: the channel layer is in memory, so events other processes write reach the
  consoles connected here only through the database (:class:`OutboxPoller`).
* The SMTP server, when ``EMAIL_SMTP_SERVER_EMBEDDED`` is on, on the server's own event loop,
  so an e-mail's offer is published straight to the consoles (:class:`EmbeddedServices`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from asgiref.sync import sync_to_async
from celery.schedules import crontab
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import close_old_connections, connections
from django.db.models import Max, Q

from contactcentre.celery import app
from kernel.events import AgentOutbox, agent_group

if TYPE_CHECKING:
    from channels_inbound.email.smtpd import EmbeddedSMTP

logger = logging.getLogger(__name__)

T = TypeVar("T")


def _interval(schedule: object) -> float:
    """Seconds until an entry runs again: its interval, or until a crontab's next time (the
    nightly retention purge)."""
    if isinstance(schedule, crontab):
        return max(1.0, schedule.remaining_estimate(schedule.now()).total_seconds())
    if isinstance(schedule, int | float):
        return float(schedule)
    if isinstance(schedule, timedelta):
        return schedule.total_seconds()
    run_every = getattr(schedule, "run_every", None)
    if isinstance(run_every, timedelta):
        return run_every.total_seconds()
    raise ValueError(f"the embedded scheduler only runs interval schedules, not {schedule!r}")


def load_task_modules() -> None:
    """Import every app's ``tasks`` module, as a worker does when it starts.

    ``app.autodiscover_tasks()`` is lazy: outside a worker, a task is registered only once
    something imported its module, so ``app.tasks[name]`` raised ``NotRegistered`` for
    ``routing.sweep`` until an agent went available, and for the chat and SMS sweeps always.
    """
    app.loader.import_default_modules()


class EmbeddedScheduler(threading.Thread):
    """Runs the entries of ``CELERY_BEAT_SCHEDULE`` at their intervals, one at a time.

    Given the server's event loop, each task runs through ``sync_to_async`` on it (in a thread
    of the scheduler's own): the events a task publishes then go to the in-memory channel layer
    on that loop, as a request's do, instead of from this thread (the layer is not thread-safe,
    and a loop waiting on a socket would not notice them before its next wake-up).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(name="embedded-beat", daemon=True)
        self.stopping = threading.Event()
        self.loop = loop
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedded-task")
        load_task_modules()
        self.entries = {
            name: (entry["task"], _interval(entry["schedule"]))
            for name, entry in (app.conf.beat_schedule or {}).items()
        }
        self.schedules = {
            name: entry["schedule"] for name, entry in (app.conf.beat_schedule or {}).items()
        }
        unknown = sorted({task for task, _ in self.entries.values()} - set(app.tasks))
        if unknown:  # a typo in CELERY_BEAT_SCHEDULE: say so now, not every few seconds
            logger.error("periodic tasks not registered: %s", ", ".join(unknown))

    def run_task(self, task_name: str) -> str | None:
        """Run one periodic task now (on the server's loop when given); the error's text when
        it fails."""
        loop = self.loop
        if loop is None or not loop.is_running():
            return self._run_here(task_name)
        on_loop = sync_to_async(self._run_here, thread_sensitive=False, executor=self.executor)
        try:
            return asyncio.run_coroutine_threadsafe(on_loop(task_name), loop).result()
        except Exception as exc:  # the loop stopped meanwhile
            return f"{type(exc).__name__}: {exc}"

    def _run_here(self, task_name: str) -> str | None:
        close_old_connections()
        try:
            app.tasks[task_name].apply(throw=True)
        except Exception as exc:
            logger.exception("periodic task %s failed", task_name)
            return f"{type(exc).__name__}: {exc}"
        finally:
            close_old_connections()
        return None

    def run_all_once(self) -> dict[str, str]:
        """Run every entry once (tests, and a check after start): entry -> error, if any."""
        failures = {}
        for name, (task_name, _) in self.entries.items():
            error = self.run_task(task_name)
            if error is not None:
                failures[name] = error
        return failures

    def run(self) -> None:
        next_run = {
            name: time.monotonic() + interval for name, (_, interval) in self.entries.items()
        }
        while not self.stopping.is_set():
            now = time.monotonic()
            for name, (task_name, interval) in self.entries.items():
                if now < next_run[name]:
                    continue
                next_run[name] = now + _interval(self.schedules.get(name, interval))
                self.run_task(task_name)
            wait = min(next_run.values(), default=now + 1.0) - time.monotonic()
            self.stopping.wait(max(0.05, min(wait, 1.0)))

    def stop(self) -> None:
        self.stopping.set()


# --------------------------------------------------------------------------- the outbox poller

OUTBOX_POLL_SECONDS = 1.0
OUTBOX_BATCH = 500
# A row whose id is below the newest one seen may still appear: its transaction took its id
# first and committed later (PostgreSQL). Such gaps are looked for during this many seconds.
GAP_WINDOW_SECONDS = 30.0
_MAX_GAPS = 20_000


class LocalEvents:
    """The outbox ids written by this process: this process delivers them live itself (after
    its commit, through ``kernel.events``), so the poller must not send them again.

    It wraps the registered agent outbox (``console.outbox.record_agent_events``) and notes
    every id it returns. Ids of a transaction that rolls back are never read; they age out.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ids: dict[int, float] = {}  # event id -> monotonic time it was written
        self.wrapped: AgentOutbox | None = None

    def install(self) -> None:
        from kernel import events

        self.wrapped = events._agent_outbox
        if self.wrapped is not None:
            events.set_agent_outbox(self.record)

    def uninstall(self) -> None:
        from kernel import events

        if self.wrapped is not None and events._agent_outbox == self.record:
            events.set_agent_outbox(self.wrapped)
        self.wrapped = None

    def record(
        self, entries: list[tuple[int, str, dict[str, Any]]]
    ) -> list[tuple[int, dict[str, Any], str]]:
        assert self.wrapped is not None
        recorded = self.wrapped(entries)
        now = time.monotonic()
        with self.lock:
            for event_id, _payload, _at in recorded:
                self.ids[event_id] = now
        return recorded

    def claim(self, event_id: int) -> bool:
        """Was ``event_id`` written here? (Forgets it: each row is read once.)"""
        with self.lock:
            return self.ids.pop(event_id, None) is not None

    def forget_older_than(self, seconds: float) -> None:
        limit = time.monotonic() - seconds
        with self.lock:
            for event_id in [i for i, at in self.ids.items() if at < limit]:
                del self.ids[event_id]


Row = tuple[int, int, str, dict[str, Any], str]  # (id, agent id, event, payload, ISO time)


class OutboxPoller:
    """Sends the agent events other processes wrote to the outbox to this process' consoles.

    On the embedded default the channel layer is in memory: a management command, an
    ``imap_poll`` or ``smtp_server`` run apart, or ``manage.py shell`` write their agent events
    to the outbox (``console.outbox``) but cannot reach the consoles connected here. This task,
    on the server's event loop, reads the rows after the newest id it has seen every
    ``interval`` seconds and sends each to its agent's group, as a live event with its id
    (consoles ignore an id they already applied). It starts at the current newest id (no
    history replayed), skips the rows this process wrote (already sent live), and keeps going
    after an error (database unreachable: logged, tried again at the next tick).
    """

    def __init__(self, interval: float = OUTBOX_POLL_SECONDS) -> None:
        self.interval = interval
        self.local = LocalEvents()
        self.cursor = 0  # newest id seen
        self.gaps: dict[int, float] = {}  # ids below the cursor not seen yet -> when noticed
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox-poller")
        self.task: asyncio.Task[None] | None = None
        self.sent = 0
        self.errors = 0

    # ---- database side (the poller's own thread, so it keeps one connection)

    def _newest_id(self) -> int:
        from console.models import AgentEvent

        return AgentEvent.objects.aggregate(last=Max("id"))["last"] or 0

    def _read(self) -> list[Row]:
        from console.models import AgentEvent

        close_old_connections()
        try:
            wanted = Q(pk__gt=self.cursor)
            if self.gaps:
                wanted |= Q(pk__in=sorted(self.gaps)[:OUTBOX_BATCH])
            rows = (
                AgentEvent.objects.filter(wanted)
                .order_by("id")
                .values_list("id", "agent_id", "event", "payload", "created_at")[:OUTBOX_BATCH]
            )
            return [(i, a, e, p, at.isoformat()) for i, a, e, p, at in rows]
        except Exception:
            connections.close_all()  # a broken connection: a fresh one at the next tick
            raise

    def _in_thread(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        return asyncio.get_running_loop().run_in_executor(self.executor, fn)

    # ---- the loop

    async def start(self) -> None:
        self.local.install()  # first: an event written meanwhile is known as this process' own
        self.cursor = await self._in_thread(self._newest_id)
        self.task = asyncio.get_running_loop().create_task(self._run(), name="outbox-poller")
        logger.info("outbox poller started after event #%d", self.cursor)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                self.errors += 1
                logger.exception("outbox poller: could not read or send the agent events")

    async def poll_once(self) -> int:
        """Read and send what is new; the number of events sent."""
        rows = await self._in_thread(self._read)
        now = time.monotonic()
        layer = get_channel_layer()
        sent = 0
        for event_id, agent_id, event, payload, at in rows:
            self.gaps.pop(event_id, None)
            if event_id > self.cursor:
                for missing in range(max(self.cursor + 1, event_id - _MAX_GAPS), event_id):
                    if len(self.gaps) < _MAX_GAPS:
                        self.gaps[missing] = now
                self.cursor = event_id
            if self.local.claim(event_id) or layer is None:
                continue  # written here: already sent live by its own commit
            message = {"type": "cc.event", "event": event, "payload": payload}
            await layer.group_send(agent_group(agent_id), {**message, "id": event_id, "at": at})
            sent += 1
        expired = now - GAP_WINDOW_SECONDS
        self.gaps = {i: seen for i, seen in self.gaps.items() if seen >= expired}
        self.local.forget_older_than(GAP_WINDOW_SECONDS * 2)
        self.sent += sent
        return sent

    async def stop(self) -> None:
        self.local.uninstall()
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None
        self.executor.submit(connections.close_all)
        self.executor.shutdown(wait=True)


# --------------------------------------------------------------------------- embedded services


class EmbeddedServices:
    """What ``manage.py serve`` runs beside the web server on the embedded default, on its
    event loop: the periodic scheduler (a thread), the outbox poller and, when
    ``EMAIL_SMTP_SERVER_EMBEDDED`` is on, the SMTP server (aiosmtpd)."""

    def __init__(self, *, smtp: bool | None = None, poll_seconds: float = OUTBOX_POLL_SECONDS):
        self.smtp_enabled = settings.EMAIL_SMTP_SERVER_EMBEDDED if smtp is None else smtp
        self.scheduler: EmbeddedScheduler | None = None
        self.poller = OutboxPoller(poll_seconds)
        self.smtp: EmbeddedSMTP | None = None

    async def start(self, *, scheduler: bool = True) -> None:
        if scheduler:
            self.scheduler = EmbeddedScheduler(asyncio.get_running_loop())
            self.scheduler.start()
        await self.poller.start()
        if self.smtp_enabled:
            from channels_inbound.email.smtpd import start_embedded_smtp

            self.smtp = await start_embedded_smtp(
                settings.EMAIL_SMTP_SERVER_HOST, settings.EMAIL_SMTP_SERVER_PORT
            )

    async def stop(self) -> None:
        if self.smtp is not None:
            await self.smtp.stop()
            self.smtp = None
        await self.poller.stop()
        if self.scheduler is not None:  # a task under way finishes first (it needs this loop)
            self.scheduler.stop()
            await asyncio.get_running_loop().run_in_executor(None, self.scheduler.join, 30.0)
            self.scheduler.executor.shutdown(wait=False)
            self.scheduler = None
