"""Where chat events go: one Channels group per chat session (every tab of that visitor)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any
from uuid import UUID

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)


def chat_group(session_id: UUID | str) -> str:
    return f"chat.session.{session_id}"


async def send_now(groups: Iterable[str], event: str, payload: dict[str, Any]) -> None:
    """Ephemeral events (typing indicators): sent at once, never replayed, no transaction."""
    layer = get_channel_layer()
    if layer is None:
        return
    message = {"type": "cc.event", "event": event, "payload": payload}
    for group in groups:
        try:
            await layer.group_send(group, message)
        except Exception:
            logger.exception("could not send %s to %s", event, group)


def send_now_sync(groups: Iterable[str], event: str, payload: dict[str, Any]) -> None:
    async_to_sync(send_now)(list(groups), event, payload)
