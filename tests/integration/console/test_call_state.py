"""Issue 15, truthful states: a call is "in progress" in the console only once the agent's phone
answered. Accepted but still ringing (or a bridge the provider refused, tried again), the
workspace says the call is being connected; the answer (the whisper, or the agent leg's status
callback) publishes ``call.answered`` to the agent's console, which then says it is in progress.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from agents.models import AgentProfile
from channels_inbound.providers.base import CallStatus
from channels_inbound.voice.actions import do_record_call_status, do_whisper
from channels_inbound.voice.models import Call, CallOutcome
from configuration.models import Queue
from console.models import AgentEvent
from interactions.models import Interaction

pytestmark = pytest.mark.django_db

CALL_SID = "CA0000000000000000000000000000c001"
IN_PROGRESS = "Appel en cours"
CONNECTING = "Mise en relation avec votre téléphone\u00a0: décrochez quand il sonne."


def ringing_call(agent: AgentProfile, queue: Queue, call_sid: str) -> Interaction:
    """A call ``agent`` accepted: their phone is being rung (the bridge was requested)."""
    interaction = Interaction.objects.create(
        channel="voice", queue=queue, status="assigned", assigned_agent=agent,
        external_ref=call_sid,
    )  # fmt: skip
    Call.objects.create(
        provider="twilio", call_sid=call_sid, called="+33100000000", interaction=interaction,
        agent=agent, outcome=CallOutcome.BRIDGING,
    )  # fmt: skip
    return interaction


@pytest.fixture
def ringing(make_user: Callable[..., Any]) -> dict[str, Any]:
    alice = make_user("alice").agent_profile
    interaction = ringing_call(alice, Queue.objects.create(code="caf", name="CAF"), CALL_SID)
    client = Client(HTTP_ACCEPT_LANGUAGE="fr")
    client.force_login(alice.user)
    return {"alice": alice, "interaction": interaction, "client": client}


def _call_state(ringing: dict[str, Any]) -> str:
    page = ringing["client"].get(f"/console/interactions/{ringing['interaction'].pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    start = html.index(f'id="call-state-{ringing["interaction"].pk}">')
    return html[start : html.index("</p>", start)]


def _answered_events(ringing: dict[str, Any]) -> list[dict[str, Any]]:
    events = AgentEvent.objects.filter(agent_id=ringing["alice"].pk, event="call.answered")
    return [e.payload for e in events]


def test_a_ringing_call_is_being_connected_until_the_whisper_says_the_agent_answered(
    ringing: dict[str, Any],
) -> None:
    state = _call_state(ringing)
    assert CONNECTING in state
    assert IN_PROGRESS not in state
    assert _answered_events(ringing) == []

    interaction = ringing["interaction"]
    do_whisper(
        interaction_id=interaction.pk,
        agent_leg_sid="CA00000000000000000000000000000a9e",
        provider="twilio",
        agent_id=ringing["alice"].pk,
    )
    assert IN_PROGRESS in _call_state(ringing)
    [event] = _answered_events(ringing)
    assert (event["agent_id"], event["interaction_id"]) == (ringing["alice"].pk, interaction.pk)
    assert event["interaction"]["status"] == "assigned"  # the outbox adds its summary
    # told once: the agent leg's own "in-progress" callback that follows changes nothing
    do_record_call_status(
        status=CallStatus(sid="CA00000000000000000000000000000a9e", status="in-progress",
                          parent_sid=CALL_SID),
        agent_id=ringing["alice"].pk,
    )  # fmt: skip
    assert len(_answered_events(ringing)) == 1


def test_the_agent_legs_status_callback_also_says_the_call_is_in_progress(
    ringing: dict[str, Any],
) -> None:
    do_record_call_status(
        status=CallStatus(sid="CA00000000000000000000000000000a9f", status="in-progress",
                          parent_sid=CALL_SID),
        agent_id=ringing["alice"].pk,
    )  # fmt: skip
    assert IN_PROGRESS in _call_state(ringing)
    assert len(_answered_events(ringing)) == 1


def test_another_agents_answer_does_not_make_the_call_in_progress_for_this_one(
    ringing: dict[str, Any], make_user: Callable[..., Any]
) -> None:
    bob = make_user("bob").agent_profile
    Call.objects.filter(call_sid=CALL_SID).update(agent=bob)  # rung on Bob's phone before
    Call.objects.filter(call_sid=CALL_SID).update(agent_answered_at="2026-01-01T10:00:00Z")
    assert CONNECTING in _call_state(ringing)
