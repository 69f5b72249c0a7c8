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
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class ConcurrencyLimit:
    """ASGI middleware: at most ``limit`` HTTP requests inside ``app`` at once (FIFO)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        self._slots: asyncio.Semaphore | None = None
        self.waiting = 0  # requests waiting for a slot now (for tests and metrics)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.limit <= 0 or scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        if self._slots is None:  # made in the server's event loop, on the first request
            self._slots = asyncio.Semaphore(self.limit)
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        try:
            await self.app(scope, receive, send)
        finally:
            self._slots.release()


def default_limit(pool_max_size: int | None) -> int:
    """The bound for a process whose database pool holds ``pool_max_size`` connections: two
    fewer, so the lean webhook path and the sockets always find one (0: no pool, no bound)."""
    if not pool_max_size:
        return 0
    return max(1, pool_max_size - 2)
