"""Routing passes scheduled for the moment an interaction reaches its queue's escalation steps.

Escalation is evaluated at every pass from the time waited, so the periodic sweep applies a
step at most ``ROUTING_SWEEP_SECONDS`` late. With a broker, a pass is also scheduled (Celery
``countdown``) for each step of the queue when an interaction is queued, so a step that widens
the pool of agents takes effect within a second. On the embedded default (eager tasks, no
countdown) the sweep alone does it.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction

from configuration.models import EscalationStep
from interactions.lifecycle import Status
from interactions.models import Interaction

logger = logging.getLogger(__name__)


def schedule_step_passes(
    *, interaction: Interaction, from_status: str, to_status: str, now: datetime, **_: Any
) -> None:
    if to_status != Status.QUEUED or settings.CELERY_TASK_ALWAYS_EAGER or not interaction.queue_id:
        return
    # A batch of arrivals (channels_inbound.ingest.do_ingest_batch) shares one queue object:
    # its steps are read once, and one set of passes serves all queued at the same instant
    # (a pass routes every waiting interaction).
    queue = interaction.queue if Interaction.queue.is_cached(interaction) else None
    if queue is not None and getattr(queue, "_step_passes_at", None) == now:
        return
    delays = getattr(queue, "_step_delays", None)
    if delays is None:
        delays = list(
            EscalationStep.objects.filter(queue_id=interaction.queue_id).values_list(
                "after_seconds", flat=True
            )
        )
    if queue is not None:
        queue._step_delays = delays  # type: ignore[attr-defined]
        queue._step_passes_at = now  # type: ignore[attr-defined]
    if not delays:
        return

    def send() -> None:
        from .tasks import route_pending

        for delay in delays:
            try:
                route_pending.apply_async(countdown=delay + 0.2)
            except Exception:  # the sweep covers it
                logger.warning("could not schedule the escalation pass; the sweep will do it")

    transaction.on_commit(send)
