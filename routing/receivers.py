"""Routing's reactions to interaction status changes (connected in RoutingConfig.ready)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings

from agents.models import AgentPresence, AgentState
from agents.presence import publish_agent_states
from interactions.lifecycle import Status
from interactions.models import Interaction

from .actions import request_routing, schedule_wrap_up_end

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
            schedule_wrap_up_end(
                interaction.assigned_agent_id,
                now + timedelta(seconds=settings.ROUTING_WRAP_UP_SECONDS),
            )
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


def cancel_offers_of_left_interactions(
    *, interaction: Interaction, from_status: str, to_status: str, now: datetime, **_: Any
) -> None:
    """A citizen who hangs up (or leaves the chat) while being offered cancels the offer, so
    the agent is not paused as "missed" for a call that no longer exists."""
    if from_status != Status.OFFERED or to_status != Status.ABANDONED:
        return
    from contactcentre.events import SUPERVISORS_GROUP, agent_group, publish

    from .models import Offer, OfferStatus

    for offer in Offer.objects.filter(interaction_id=interaction.pk, status=OfferStatus.PENDING):
        offer.status = OfferStatus.CANCELLED
        offer.responded_at = now
        offer.save(update_fields=["status", "responded_at"])
        publish(
            "offer.cancelled",
            {"offer_id": offer.pk, "interaction_id": interaction.pk},
            groups=[agent_group(offer.agent_id), SUPERVISORS_GROUP],
        )
