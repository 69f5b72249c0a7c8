"""Coalesced task wake-ups: one task queued after a commit however many commits ask, and the
one Redis client these flags use.

A write that leaves work for a Celery task (a routing pass, received SMS to ingest) asks for it
with :meth:`CoalescedTrigger.request`: once the transaction commits, the task is queued unless
one is already queued and not yet started (a Redis flag set with ``SET NX PX``, or the caller's
own atomic ``claim``: the router's also records a request made while a pass runs). The task
clears the flag as it starts (:meth:`CoalescedTrigger.started`), so what is written from then on
queues a new one. The flag expires by itself: a lost task delays the work by that long at most,
and each task's periodic sweep covers the rest. Without a broker (eager tasks, the embedded
default) nothing is coalesced: every request runs the task.

Used by ``routing.triggers`` (``request_routing``) and ``channels_inbound.sms.actions``
(``request_ingest``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import transaction

logger = logging.getLogger(__name__)

_clients: dict[str, Any] = {}


def redis_client() -> Any:
    """This process's client of ``REDIS_URL`` (one per URL: tests point it elsewhere)."""
    url = settings.REDIS_URL
    client = _clients.get(url)
    if client is None:
        import redis

        client = _clients[url] = redis.Redis.from_url(url, socket_timeout=2)
    return client


def coalescing() -> bool:
    """Whether requests are coalesced: a broker and a Redis (not eager tasks)."""
    return bool(not settings.CELERY_TASK_ALWAYS_EAGER and settings.REDIS_URL)


class CoalescedTrigger:
    """Queue ``enqueue`` (a task's ``.delay``) after the commit, at most once while queued.

    ``key`` is the "queued" flag, alive ``queued_ms``; ``claim`` replaces the plain ``SET NX``
    (it returns whether this request is the one that queues the task); ``what`` names the work
    in the log line of a failure (the broker or Redis down: the sweep catches up)."""

    def __init__(
        self,
        *,
        key: str,
        queued_ms: int,
        enqueue: Callable[[], object],
        what: str,
        claim: Callable[[], object] | None = None,
    ) -> None:
        self.key = key
        self.queued_ms = queued_ms
        self.enqueue = enqueue
        self.what = what
        self._claim = claim

    def claim(self) -> bool:
        if self._claim is not None:
            return bool(self._claim())
        return bool(redis_client().set(self.key, 1, nx=True, px=self.queued_ms))

    def send(self) -> None:
        """Queue the task now unless one is queued already (no transaction involved)."""
        try:
            if coalescing() and not self.claim():
                return
            self.enqueue()
        except Exception:  # the broker or Redis is down: the periodic sweep will do the work
            logger.warning("could not queue %s; the sweep will catch up", self.what)

    def request(self) -> None:
        """Queue the task once the current transaction commits (now without one)."""
        transaction.on_commit(self.send)

    def started(self) -> None:
        """The task starts: work written from now on queues a new task."""
        if not coalescing():
            return
        try:
            redis_client().delete(self.key)
        except Exception:
            logger.warning("could not clear the flag of %s", self.what)
