"""Reads for queue announcements: the caller's position and the estimated wait."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Avg, DurationField, ExpressionWrapper, F, Q

from interactions.lifecycle import Status
from interactions.models import Interaction

WAITING = (Status.QUEUED, Status.OFFERED, Status.TRANSFERRED)
WINDOW = timedelta(hours=1)


def queue_position(interaction: Interaction) -> int | None:
    """1 for the next to be served: waiting interactions of the same queue *and channel* ahead
    of this one (higher priority first, then earlier arrival), plus one: a caller is not behind
    the e-mails and SMS of the queue, which other agents' slots serve. None when it no longer
    waits."""
    if interaction.status not in WAITING or interaction.queue_id is None:
        return None
    queued_at = interaction.queued_at or interaction.created_at
    ahead = (
        Interaction.objects.filter(
            queue_id=interaction.queue_id, channel=interaction.channel, status__in=WAITING
        )
        .exclude(pk=interaction.pk)
        .filter(
            Q(priority__gt=interaction.priority)
            | Q(priority=interaction.priority, queued_at__lt=queued_at)
            | Q(priority=interaction.priority, queued_at=queued_at, pk__lt=interaction.pk)
        )
        .count()
    )
    return ahead + 1


def mean_answer_seconds(queue_id: int, *, now: datetime) -> float | None:
    """Mean of (answered - queued) over the queue's interactions answered in the last hour."""
    mean = (
        Interaction.objects.filter(
            queue_id=queue_id,
            assigned_at__gte=now - WINDOW,
            assigned_at__lte=now,
            queued_at__isnull=False,
        )
        .annotate(
            waited=ExpressionWrapper(
                F("assigned_at") - F("queued_at"), output_field=DurationField()
            )
        )
        .aggregate(mean=Avg("waited"))["mean"]
    )
    return mean.total_seconds() if mean is not None else None


def estimated_wait_seconds(interaction: Interaction, *, now: datetime) -> int | None:
    """What is left of the usual wait: the last hour's mean answer time minus the time already
    waited (at least 30 s while the caller still waits). None without recent answers: we do not
    announce a figure we have no basis for."""
    if interaction.queue_id is None:
        return None
    mean = mean_answer_seconds(interaction.queue_id, now=now)
    if mean is None:
        return None
    waited = (now - (interaction.queued_at or now)).total_seconds()
    return int(max(30.0, mean - waited))
