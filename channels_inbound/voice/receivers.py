"""The phone channel's reactions to routing and to the life cycle of calls (connected in
VoiceChannelConfig.ready): the router offers calls like any other work, and knows nothing of
telephony or of the agent's after-call work.

- ``routing.signals.offer_accepted``: an agent accepted a call offer; once the answer commits,
  the caller is connected to the agent's phone (:func:`bridge_accepted_call`);
- ``interactions.signals.interaction_status_changed``: a call handled (assigned -> wrap-up)
  puts its agent in after-call work, closing it ends that (:func:`wrap_up_after_calls`);
- ``routing.offers.WORK_OUTLIVES_CONSOLE``: a call in progress stays with its agent when their
  console vanishes (the telephony ends it by itself).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction

from agents.presence import do_end_wrap_up, do_start_wrap_up
from interactions.channels import Channel
from interactions.lifecycle import Status
from interactions.models import Interaction
from routing.offers import WORK_OUTLIVES_CONSOLE
from routing.timers import schedule_wrap_up_end

from .tasks import bridge_call

logger = logging.getLogger(__name__)


def bridge_accepted_call(*, interaction: Interaction, agent_id: int, **_: Any) -> None:
    """An accepted call offer: the bridge once the answer commits (nothing for other channels)."""
    if interaction.channel != Channel.VOICE:
        return
    interaction_id = interaction.pk
    transaction.on_commit(lambda: queue_bridge(interaction_id, agent_id))


def queue_bridge(interaction_id: int, agent_id: int) -> None:
    """Connect the caller to the agent's phone: the telephony runs as a task on the
    ``outbound`` queue (inline on the embedded default). When the task cannot be queued
    (broker down), it runs here rather than leave the caller on hold. Any failure puts the call
    back in the queue (``actions.do_requeue_unreachable``)."""
    if settings.CELERY_TASK_ALWAYS_EAGER:
        try:
            bridge_call.apply(args=(interaction_id, agent_id), throw=True)
        except Exception:
            logger.exception(
                "bridging call of interaction %s to agent %s failed", interaction_id, agent_id
            )
        return
    try:
        bridge_call.delay(interaction_id, agent_id)
    except Exception:
        logger.warning(
            "could not queue the bridge of interaction %s: bridging inline", interaction_id
        )
        try:
            bridge_call.apply(args=(interaction_id, agent_id), throw=True)
        except Exception:
            logger.exception(
                "bridging call of interaction %s to agent %s failed", interaction_id, agent_id
            )


def wrap_up_after_calls(
    *, interaction: Interaction, from_status: str, to_status: str, now: datetime, **_: Any
) -> None:
    """After-call work: an agent whose call moves to wrap-up gets no new offers until its timer
    ends (``ROUTING_WRAP_UP_SECONDS``: the ``routing.end_wrap_up`` timer, or the sweep) or the
    agent closes the call. Runs in the transaction of the change (the interaction is locked,
    then the presence row: rule 1)."""
    agent_id = interaction.assigned_agent_id
    if interaction.channel != Channel.VOICE or not agent_id:
        return
    if from_status == Status.ASSIGNED and to_status == Status.WRAP_UP:
        until = now + timedelta(seconds=settings.ROUTING_WRAP_UP_SECONDS)
        if do_start_wrap_up(agent_id=agent_id, now=now, until=until):
            schedule_wrap_up_end(agent_id, until)
    elif from_status == Status.WRAP_UP and to_status == Status.CLOSED:
        do_end_wrap_up(agent_id=agent_id, now=now)


def connect() -> None:
    from interactions.signals import interaction_status_changed
    from routing.signals import offer_accepted

    offer_accepted.connect(bridge_accepted_call, dispatch_uid="channels_voice.bridge")
    WORK_OUTLIVES_CONSOLE.add(Channel.VOICE)
    interaction_status_changed.connect(wrap_up_after_calls, dispatch_uid="channels_voice.wrap_up")
