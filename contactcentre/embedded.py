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


class EmbeddedScheduler(threading.Thread):
    def __init__(self) -> None:
        super().__init__(name="embedded-beat", daemon=True)
        self.stopping = threading.Event()
        self.entries = {
            name: (entry["task"], _interval(entry["schedule"]))
            for name, entry in (app.conf.beat_schedule or {}).items()
        }

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
                close_old_connections()
                try:
                    app.tasks[task_name].apply()
                except Exception:
                    logger.exception("periodic task %s failed", task_name)
                finally:
                    close_old_connections()
            wait = min(next_run.values(), default=now + 1.0) - time.monotonic()
            self.stopping.wait(max(0.05, min(wait, 1.0)))

    def stop(self) -> None:
        self.stopping.set()
