"""Phone tasks: outbound provider work, on the ``outbound`` queue (contactcentre/celery.py).

Each calls an action and is safe to run twice: a bridge acts only while the interaction is
assigned to that agent and not yet connected.
"""

from __future__ import annotations

from celery import shared_task

from . import actions


@shared_task(name="channels_voice.bridge_call", ignore_result=True)
def bridge_call(interaction_id: int, agent_id: int, attempt: int = 1) -> None:
    """Connect the caller to the agent's phone: a provider error is retried after a short wait
    (``VOICE_BRIDGE_ATTEMPTS``); after the last, the call goes back to the queue."""
    actions.do_connect_agent(interaction_id=interaction_id, agent_id=agent_id, attempt=attempt)


@shared_task(name="channels_voice.check_bridge", ignore_result=True)
def check_bridge(interaction_id: int, agent_id: int, bridge_no: int) -> None:
    """The agent's phone had its ring time: if nothing was heard of it, give up on it."""
    actions.do_check_bridge(interaction_id=interaction_id, agent_id=agent_id, bridge_no=bridge_no)
