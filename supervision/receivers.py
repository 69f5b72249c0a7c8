"""Agents' state history, for what-if replays (who was logged in when)."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from agents.models import AgentPresence

from .models import AgentStateChange


def on_presence_saved(
    sender: Any, instance: AgentPresence, created: bool, update_fields: Any = None, **_: Any
) -> None:
    if update_fields is not None and "state" not in update_fields:
        return  # a heartbeat, the channels: not a state change
    last = (
        AgentStateChange.objects.filter(agent_id=instance.agent_id)
        .order_by("-id")  # the last one recorded
        .values_list("state", flat=True)
        .first()
    )
    if last != instance.state:
        AgentStateChange.objects.create(
            agent_id=instance.agent_id,
            state=instance.state,
            at=instance.state_since or timezone.now(),
        )
