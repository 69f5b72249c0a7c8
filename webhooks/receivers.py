"""Where the events come from: the domain's own signals, each sent inside the transaction of
the change (so the deliveries are written with it, and roll back with it).

- ``interactions.signals.interaction_status_changed``: an interaction leaving ``new`` was just
  recorded (``interaction.created``: both ``do_create_interaction`` and the batched ingestion
  send ``new -> queued``); a move to ``assigned`` (an accepted offer, a supervisor's take) or to
  ``closed``;
- ``routing.signals.claims_written``: a routing pass that assigned interactions at once
  (auto-accepted channels write their status changes in bulk, without the signal above);
- ``post_save`` of ``supervision.SatisfactionResponse`` (created once per interaction, by
  ``do_record_satisfaction`` whatever the channel of the survey).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models.signals import post_delete, post_save
from django.utils import timezone

from interactions.lifecycle import Status
from interactions.models import Interaction
from interactions.signals import interaction_status_changed
from routing.signals import claims_written
from supervision.models import SatisfactionResponse

from .actions import (
    Occurrence,
    forget_subscriptions,
    organisations_with_subscriptions,
    record_events,
)
from .models import Event, Subscription


def connect() -> None:
    interaction_status_changed.connect(on_status_changed, dispatch_uid="webhooks.status")
    claims_written.connect(on_claims, dispatch_uid="webhooks.claims")
    post_save.connect(
        on_satisfaction, sender=SatisfactionResponse, dispatch_uid="webhooks.satisfaction"
    )
    post_save.connect(forget_subscriptions, sender=Subscription, dispatch_uid="webhooks.saved")
    post_delete.connect(forget_subscriptions, sender=Subscription, dispatch_uid="webhooks.gone")


def interaction_data(
    *,
    interaction_id: int,
    channel: str,
    direction: str,
    status: str,
    queue_id: int | None,
    agent_id: int | None,
    contact_id: int | None,
    case_id: int | None,
) -> dict[str, Any]:
    """What a receiver gets about an interaction: ids and codes, never a name, a number, an
    address or a message (it asks the REST API, with its own token, for what it may read)."""
    return {
        "interaction_id": interaction_id,
        "channel": channel,
        "direction": direction,
        "status": status,
        "queue_id": queue_id,
        "agent_id": agent_id,
        "contact_id": contact_id,
        "case_id": case_id,
    }


def _of(interaction: Interaction, status: str) -> dict[str, Any]:
    return interaction_data(
        interaction_id=interaction.pk,
        channel=interaction.channel,
        direction=interaction.direction,
        status=status,
        queue_id=interaction.queue_id,
        agent_id=interaction.assigned_agent_id,
        contact_id=interaction.contact_id,
        case_id=interaction.case_id,
    )


def on_status_changed(
    *, interaction: Interaction, from_status: str, to_status: str, now: datetime, **_: Any
) -> None:
    if interaction.organisation_id not in organisations_with_subscriptions():
        return
    events = []
    if from_status == Status.NEW:
        events.append(Event.INTERACTION_CREATED)
    if to_status == Status.ASSIGNED:
        events.append(Event.INTERACTION_ASSIGNED)
    elif to_status == Status.CLOSED:
        events.append(Event.INTERACTION_CLOSED)
    if events:
        record_events(
            Occurrence(interaction.organisation_id, str(event), _of(interaction, to_status), now)
            for event in events
        )


def on_claims(*, rows: list[tuple[int, int, str, bool]], now: datetime, **_: Any) -> None:
    assigned = {interaction_id for interaction_id, _agent, _channel, auto in rows if auto}
    orgs = organisations_with_subscriptions()
    if not assigned or not orgs:
        return
    found = Interaction.objects.filter(pk__in=assigned, organisation_id__in=orgs).values(
        "pk",
        "organisation_id",
        "channel",
        "direction",
        "queue_id",
        "assigned_agent_id",
        "contact_id",
        "case_id",
    )
    record_events(
        Occurrence(
            row["organisation_id"],
            str(Event.INTERACTION_ASSIGNED),
            interaction_data(
                interaction_id=row["pk"],
                channel=row["channel"],
                direction=row["direction"],
                status=Status.ASSIGNED,
                queue_id=row["queue_id"],
                agent_id=row["assigned_agent_id"],
                contact_id=row["contact_id"],
                case_id=row["case_id"],
            ),
            now,
        )
        for row in found.order_by("pk")
    )


def on_satisfaction(
    *, instance: SatisfactionResponse, created: bool, raw: bool = False, **_: Any
) -> None:
    if not created or raw:
        return
    orgs = organisations_with_subscriptions()
    if not orgs:
        return
    row = (
        Interaction.objects.filter(pk=instance.interaction_id, organisation_id__in=orgs)
        .values("organisation_id", "channel", "queue_id", "assigned_agent_id")
        .first()
    )
    if row is None:
        return
    record_events(
        [
            Occurrence(
                row["organisation_id"],
                str(Event.SURVEY_ANSWERED),
                {
                    "interaction_id": instance.interaction_id,
                    "channel": row["channel"],
                    "queue_id": row["queue_id"],
                    "agent_id": row["assigned_agent_id"],
                    "score": instance.score,
                },
                instance.at or timezone.now(),
            )
        ]
    )
