"""A survey is scheduled when an interaction ends (``interaction_status_changed``)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.db import transaction

from interactions.models import Interaction

from . import actions

logger = logging.getLogger(__name__)


def on_status_changed(
    *, interaction: Interaction, from_status: str, to_status: str, now: datetime, **_: Any
) -> None:
    if not actions.ended(interaction, to_status):
        return
    # A plain read first (most queues ask no survey): the savepoint only around the write.
    survey = actions.survey_to_schedule(interaction)
    if survey is None:
        return
    try:
        # In a savepoint: a survey that cannot be scheduled never undoes the closing.
        with transaction.atomic():
            actions.do_schedule_survey(interaction=interaction, now=now, survey=survey)
    except Exception:
        logger.exception("survey of interaction #%s not scheduled", interaction.pk)


def connect() -> None:
    from interactions.signals import interaction_status_changed

    interaction_status_changed.connect(on_status_changed, dispatch_uid="surveys.status")
