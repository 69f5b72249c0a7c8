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


def _send(groups: list[str], message: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    for group in groups:
        try:
            async_to_sync(layer.group_send)(group, message)
        except Exception:  # a publish must never break the write that caused it
            logger.exception("could not publish %s to %s", message.get("event"), group)


def publish(event: str, payload: dict[str, Any], *, groups: list[str]) -> None:
    """Send ``event`` to ``groups`` once the current transaction commits."""
    message = {"type": "cc.event", "event": event, "payload": payload}
    transaction.on_commit(lambda: _send(groups, message), robust=True)
