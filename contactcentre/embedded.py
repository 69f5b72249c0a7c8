"""The embedded periodic scheduler: Celery beat's job when there is no broker.

On the embedded default (no ``REDIS_URL``) tasks run eagerly where they are called, and this
thread runs the entries of ``CELERY_BEAT_SCHEDULE`` at their intervals inside the server
process. A kombu ``memory://`` worker in a thread was measured polling about once a second and
its embedded beat never fired, so this small loop is simpler and predictable.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from django.db import close_old_connections

from contactcentre.celery import app

logger = logging.getLogger(__name__)


def _interval(schedule: object) -> float:
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
    def __init__(self) -> None:
        super().__init__(name="embedded-beat", daemon=True)
        self.stopping = threading.Event()
        load_task_modules()
        self.entries = {
            name: (entry["task"], _interval(entry["schedule"]))
            for name, entry in (app.conf.beat_schedule or {}).items()
        }
        unknown = sorted({task for task, _ in self.entries.values()} - set(app.tasks))
        if unknown:  # a typo in CELERY_BEAT_SCHEDULE: say so now, not every few seconds
            logger.error("periodic tasks not registered: %s", ", ".join(unknown))

    def run_task(self, task_name: str) -> str | None:
        """Run one periodic task here and now; the error's text when it fails."""
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
                next_run[name] = now + interval
                self.run_task(task_name)
            wait = min(next_run.values(), default=now + 1.0) - time.monotonic()
            self.stopping.wait(max(0.05, min(wait, 1.0)))

    def stop(self) -> None:
        self.stopping.set()
