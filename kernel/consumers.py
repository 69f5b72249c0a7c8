"""The base class of the project's WebSocket consumers.

Channels (4.2+) runs ``close_old_connections`` before every handler a consumer dispatches, as a
hop to the one thread Channels gives synchronous code (``sync_to_async``, thread-sensitive).
Every heartbeat, every typing notice and every event pushed to a console then queued behind
whatever database work that thread was doing (a heartbeat flush, a session check, a resume):
with 5,000 consoles in one process, one slow query delayed every push (docs/benchmarks.md,
"Console fan-out").

Our consumers never touch the database from a handler except through
``database_sync_to_async``, which closes stale connections itself before and after each call
(Django would refuse a query made from the event loop anyway), so the hop does nothing for
them: ``dispatch`` here calls the handler directly.
"""

from __future__ import annotations

from typing import Any

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncJsonWebsocketConsumer


class JsonConsumer(AsyncJsonWebsocketConsumer):
    async def dispatch(self, message: dict[str, Any]) -> None:
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)
