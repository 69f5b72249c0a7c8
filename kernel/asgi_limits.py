"""A bound on the HTTP requests one web process runs through Django at once.

Under ASGI, Django runs every request's synchronous part in a thread of its own, and each
thread holds a database connection from the process's pool (``DATABASE_POOL_MAX_SIZE``) for
the whole request. Under a burst (hundreds of agents accepting and closing at once) the
threads outnumber the pool's connections many times over: they wait for a connection, then
fight over the GIL, and the requests that need only a moment — the provider's SMS webhook on
its lean path, the console sockets' own database work — wait behind them in the same pool
until they time out (docs/benchmarks.md, "Loop").

:class:`ConcurrencyLimit` lets at most ``limit`` requests into the application at once; the
others wait their turn in the event loop, in arrival order, where waiting costs nothing and
holds no connection. WebSockets and anything outside the wrapped application are not counted.
``limit`` 0 disables the bound.

The same :class:`Slots` bound the console sockets' actions (``console/consumers.py``: an
agent's accept or close over the socket is Django work holding a connection, like a request):
:func:`django_work` is the process's one set of slots, ``WEB_DJANGO_CONCURRENCY`` of them,
which the project's ASGI application and the consumers share, and
:func:`django_work_executor` the threads those actions run in (not the one thread that
Channels gives every consumer's database calls by default).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class Slots:
    """At most ``limit`` holders at once, first come first served (``limit`` 0: no bound).
    The semaphore is made in the running event loop, on first use."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._semaphore: asyncio.Semaphore | None = None
        self.waiting = 0  # waiting for a slot now (for tests and metrics)

    @contextlib.asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        if self.limit <= 0:
            yield
            return
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.limit)
        self.waiting += 1
        try:
            await self._semaphore.acquire()
        finally:
            self.waiting -= 1
        try:
            yield
        finally:
            self._semaphore.release()


class ConcurrencyLimit:
    """ASGI middleware: at most ``limit`` HTTP requests inside ``app`` at once (FIFO), or
    as many as ``slots`` allow when they are shared with other work."""

    def __init__(self, app: ASGIApp, limit: int = 0, *, slots: Slots | None = None) -> None:
        self.app = app
        self.slots = slots if slots is not None else Slots(limit)

    @property
    def limit(self) -> int:
        return self.slots.limit

    @property
    def waiting(self) -> int:
        return self.slots.waiting

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.limit <= 0 or scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        async with self.slots.held():
            await self.app(scope, receive, send)


_django_work: Slots | None = None
_django_executor: ThreadPoolExecutor | None = None


def django_work() -> Slots:
    """The process's slots for Django work (``WEB_DJANGO_CONCURRENCY``): HTTP requests and
    the console sockets' actions."""
    global _django_work
    if _django_work is None:
        from django.conf import settings

        _django_work = Slots(settings.WEB_DJANGO_CONCURRENCY)
    return _django_work


def django_work_executor() -> ThreadPoolExecutor:
    """Threads for the sockets' Django work: one per slot (4 without a bound), each keeping
    its database connection between calls (given back to the pool after each)."""
    global _django_executor
    if _django_executor is None:
        limit = django_work().limit
        _django_executor = ThreadPoolExecutor(
            max_workers=limit if limit > 0 else 4, thread_name_prefix="socket-actions"
        )
    return _django_executor


def default_limit(pool_max_size: int | None) -> int:
    """The bound for a process whose database pool holds ``pool_max_size`` connections: two
    fewer, so the lean webhook path and the sockets always find one (0: no pool, no bound)."""
    if not pool_max_size:
        return 0
    return max(1, pool_max_size - 2)
