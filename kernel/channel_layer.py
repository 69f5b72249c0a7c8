"""The Redis channel layer with its blocking read shorter than its socket timeout.

A consumer waits for its next message with ``BZPOPMIN`` (channels_redis' ``brpop_timeout``,
5 s), looping while nothing arrives. redis-py (8.x) reads every reply with a socket timeout of
5 s by default: the same length, so the client gave up first, the read raised ``TimeoutError``
and the consumer died. An idle console was disconnected every ~5 s.

Here the blocking read lasts ``blocking_read_seconds`` and the layer refuses to start unless
every host's socket timeout (explicit, or redis-py's default, whatever its version) leaves at
least :data:`MARGIN_SECONDS` after it for Redis to answer.

Cancelling a consumer (socket closed, server shutdown, test teardown) must end its receive. A
cancelled read normally raises at once, but on a loaded machine a receive task was seen
"cancelling" yet sending its next BZPOPMIN (the cancellation lost inside the Redis read): while
reads timed out after 5 s the consumer died anyway; with reads that no longer time out it
looped for ever (the chat socket tests' 5-minute teardown hangs). So a receive whose task has
been asked to stop never starts another blocking read (:meth:`_brpop_with_clean`).
docs/operations.md, "E-mail decoding, idle sockets, Redis restarts".
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from channels_redis.core import RedisChannelLayer as CoreRedisChannelLayer
from channels_redis.utils import create_pool
from django.core.exceptions import ImproperlyConfigured

# Redis answers a timed-out BZPOPMIN up to a tick late (10 ticks/s by default), then the reply
# crosses the network and waits for the server's event loop: one second covers all of it.
MARGIN_SECONDS = 1.0
# The per-process marker key outlives a process that died by a day at most (refreshed on every
# check, each console chores round).
MARKER_TTL_SECONDS = 86400


def socket_timeout_of(host: dict[str, Any]) -> float | None:
    """The read timeout connections to ``host`` will use (``None``: none)."""
    # A connection object as the layer's pool makes them, never connected: its timeout is the
    # host's option, the URL's ``?socket_timeout=``, or the installed redis-py's default.
    timeout = create_pool(host).make_connection().socket_timeout
    return None if timeout is None else float(timeout)


class RedisChannelLayer(CoreRedisChannelLayer):
    """``channels_redis.core.RedisChannelLayer`` with a configurable blocking read, checked
    against the hosts' socket timeout."""

    def __init__(self, *args: Any, blocking_read_seconds: float = 2.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if blocking_read_seconds <= 0:
            raise ImproperlyConfigured("The channel layer's blocking read must be positive.")
        for host in self.hosts:
            timeout = socket_timeout_of(host)
            if timeout is not None and timeout < blocking_read_seconds + MARGIN_SECONDS:
                raise ImproperlyConfigured(
                    f"The channel layer's socket timeout ({timeout:g} s) must exceed its "
                    f"blocking read ({blocking_read_seconds:g} s) by {MARGIN_SECONDS:g} s at "
                    "least, or every idle consumer is disconnected when a read times out "
                    "(CHANNEL_LAYER_SOCKET_TIMEOUT, CHANNEL_LAYER_BLOCKING_READ_SECONDS)."
                )
        # channels_redis reads it for each BZPOPMIN (a class attribute upstream).
        self.brpop_timeout = blocking_read_seconds
        # A key of this process on each Redis server: gone means the server lost its data.
        self._marker_key = f"{self.prefix}:process:{uuid.uuid4().hex}"
        self._marker_set = False

    async def lost_groups(self) -> bool:
        """Whether a Redis server of this layer lost its data (restarted empty, flushed, failed
        over to an empty replica) since the previous call: the group memberships lived there,
        so every consumer of this process must join its groups again. One command per server.

        The first call only sets the marker. Raises on a Redis error (the caller tries again
        next time; a server that comes back empty is then seen as having lost its data).
        """
        lost = False
        for index in range(self.ring_size):
            async with self.connection(index) as connection:
                previous = await connection.set(
                    self._marker_key, b"1", ex=MARKER_TTL_SECONDS, get=True
                )
            lost = lost or previous is None
        first, self._marker_set = not self._marker_set, True
        return lost and not first

    async def _brpop_with_clean(self, index: int, channel: str, timeout: float) -> Any:
        # Called for each BZPOPMIN of channels_redis' receive loop.
        task = asyncio.current_task()
        if task is not None and task.cancelling():  # asked to stop: no new blocking read
            raise asyncio.CancelledError
        return await super()._brpop_with_clean(index, channel, timeout)
