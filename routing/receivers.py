"""Routing's reactions to interaction status changes (connected in RoutingConfig.ready)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings

from agents.models import AgentPresence, AgentState
from agents.presence import publish_agent_states
from interactions.lifecycle import Status
from interactions.models import Interaction

from .actions import request_routing

# Leaving one of these frees (part of) an agent's capacity.
HOLDING = (Status.OFFERED, Status.ASSIGNED)


def on_status_changed(
    *, interaction: Interaction, from_status: str, to_status: str, now: datetime, **_: Any
) -> None:
    if to_status == Status.QUEUED or (from_status in HOLDING and to_status not in HOLDING):
        request_routing()
    if from_status in HOLDING and to_status not in HOLDING and interaction.assigned_agent_id:
        AgentPresence.objects.filter(agent_id=interaction.assigned_agent_id).update(idle_since=now)
    if (
        interaction.channel == "voice"
        and from_status == Status.ASSIGNED
        and to_status == Status.WRAP_UP
        and interaction.assigned_agent_id
    ):
        # After-call work: no new offers until the timer ends (the sweep ends it) or the
        # agent closes the interaction.
        started = AgentPresence.objects.filter(
            agent_id=interaction.assigned_agent_id, state=AgentState.AVAILABLE
        ).update(
            state=AgentState.WRAP_UP,
            state_since=now,
            wrap_up_until=now + timedelta(seconds=settings.ROUTING_WRAP_UP_SECONDS),
        )
        if started:
            publish_agent_states([interaction.assigned_agent_id], AgentState.WRAP_UP, now)
    if (
        interaction.channel == "voice"
        and from_status == Status.WRAP_UP
        and to_status == Status.CLOSED
        and interaction.assigned_agent_id
    ):
        ended = AgentPresence.objects.filter(
            agent_id=interaction.assigned_agent_id, state=AgentState.WRAP_UP
        ).update(state=AgentState.AVAILABLE, state_since=now, wrap_up_until=None, idle_since=now)
        if ended:
            publish_agent_states([interaction.assigned_agent_id], AgentState.AVAILABLE, now)
            request_routing()
