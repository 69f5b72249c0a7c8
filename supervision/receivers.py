"""Agents' state history, for what-if replays (who was logged in when); the router's claims
told to each organisation's wallboards."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
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


def on_claims_published(*, rows: list[tuple[int, int, str, bool]], now: datetime, **_: Any) -> None:
    """The router's claims, per organisation: its wallboards refresh, the others hear nothing
    (the router's own ``routing.claimed`` names no organisation, so it reaches no wallboard)."""
    from contactcentre.events import (
        SUPERVISORS_GROUP,
        interaction_organisations,
        publish_many,
    )

    orgs = interaction_organisations({interaction_id for interaction_id, *_rest in rows})
    offered: Counter[int] = Counter()
    assigned: Counter[int] = Counter()
    for interaction_id, _agent, _channel, accepted in rows:
        org = orgs.get(interaction_id)
        if org is not None:
            (assigned if accepted else offered)[org] += 1
    publish_many(
        [
            (
                "routing.claimed",
                {"organisation_id": org, "offered": offered[org], "assigned": assigned[org]},
                [SUPERVISORS_GROUP],
            )
            for org in sorted(set(offered) | set(assigned))
        ]
    )
