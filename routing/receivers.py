"""Routing's reactions to interaction status changes and to agents freeing up (connected in
RoutingConfig.ready). The voice channel's own rules (wrap-up after a call) are in
``channels_inbound.voice.receivers``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from agents.presence import do_touch_idle
from interactions.lifecycle import Status
from interactions.models import Interaction

from .triggers import request_routing

# Leaving one of these frees (part of) an agent's capacity.
HOLDING = (Status.OFFERED, Status.ASSIGNED)


def on_status_changed(
    *, interaction: Interaction, from_status: str, to_status: str, now: datetime, **_: Any
) -> None:
    if to_status == Status.QUEUED or (from_status in HOLDING and to_status not in HOLDING):
        request_routing()
    agent_id = interaction.assigned_agent_id
    if from_status in HOLDING and to_status not in HOLDING and agent_id:
        do_touch_idle(agent_ids=[agent_id], now=now)


def on_agent_available(**_: Any) -> None:
    """An agent may take new work (``agents.signals.agent_available``): a pass once it commits."""
    request_routing()


def cancel_offers_of_left_interactions(
    *, interaction: Interaction, from_status: str, to_status: str, now: datetime, **_: Any
) -> None:
    """A citizen who hangs up (or leaves the chat) while being offered cancels the offer, so
    the agent is not paused as "missed" for a call that no longer exists."""
    if from_status != Status.OFFERED or to_status != Status.ABANDONED:
        return
    from kernel import event_catalogue
    from kernel.events import SUPERVISORS_GROUP, agent_group, publish

    from .models import Offer, OfferStatus

    for offer in Offer.objects.filter(interaction_id=interaction.pk, status=OfferStatus.PENDING):
        offer.status = OfferStatus.CANCELLED
        offer.responded_at = now
        offer.save(update_fields=["status", "responded_at"])
        publish(
            *event_catalogue.offer_outcome(
                outcome="cancelled", offer_id=offer.pk, interaction_id=interaction.pk
            ),
            groups=[agent_group(offer.agent_id), SUPERVISORS_GROUP],
        )
