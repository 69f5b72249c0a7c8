"""Shared by tests/integration/test_survey_*.py: a queue with its survey, serving and closing an
interaction as an agent would, and running what commits and the sweep queue."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from configuration.models import Queue
from interactions.actions import do_transition_interaction
from interactions.lifecycle import Status
from interactions.models import Interaction
from surveys.actions import do_sweep_surveys
from surveys.models import SurveySettings

DELAY = 600


def survey_for(queue: Queue, **fields: Any) -> SurveySettings:
    return SurveySettings.objects.create(queue=queue, enabled=True, delay_seconds=DELAY, **fields)


def serve_and_close(interaction: Interaction, *, now: datetime | None = None) -> Interaction:
    """queued -> offered -> assigned -> wrap-up -> closed (an agent answered it)."""
    now = now or timezone.now()
    interaction.refresh_from_db()
    if interaction.status == Status.CLOSED:
        interaction = do_transition_interaction(interaction=interaction, to=Status.QUEUED, now=now)
    for status in (Status.OFFERED, Status.ASSIGNED, Status.WRAP_UP, Status.CLOSED):
        interaction = do_transition_interaction(interaction=interaction, to=status, now=now)
    return interaction


def sweep_after_delay(capture: Callable[..., Any], *, extra: float = 1) -> int:
    """Run the beat sweep once the survey delay has passed (and what it queues on commit)."""
    with capture(execute=True):
        return do_sweep_surveys(now=timezone.now() + timedelta(seconds=DELAY + extra))
