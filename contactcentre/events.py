"""Publishing real-time events after the write that caused them has committed.

Domain code says what happened with :func:`publish`; delivery goes through the Channels layer to
groups (one per agent console, one for supervisors). Nothing is sent for a transaction that
rolls back, and a lost publish loses nothing: the database holds the state, and consoles
resynchronise from it when they (re)connect. The event catalogue is in docs/architecture.md.
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)

SUPERVISORS_GROUP = "supervisors"


def agent_group(agent_id: int) -> str:
    return f"agent.{agent_id}"


Event = tuple[str, dict[str, Any], list[str]]  # (event name, payload, groups)


async def _send_all(events: list[Event]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    for event, payload, groups in events:
        message = {"type": "cc.event", "event": event, "payload": payload}
        for group in groups:
            try:
                await layer.group_send(group, message)
            except Exception:  # a publish must never break the write that caused it
                logger.exception("could not publish %s to %s", event, group)


def publish_many(events: list[Event]) -> None:
    """Send several events once the current transaction commits (one hop to the layer)."""
    if events:
        transaction.on_commit(lambda: async_to_sync(_send_all)(events), robust=True)


def publish(event: str, payload: dict[str, Any], *, groups: list[str]) -> None:
    """Send ``event`` to ``groups`` once the current transaction commits."""
    publish_many([(event, payload, groups)])
