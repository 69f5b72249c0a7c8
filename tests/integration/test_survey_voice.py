"""The post-call survey on the phone (issue 14): after the conversation, "tapez 1 à 5" (a
``survey`` node of the flow engine: the flow's own ``post_call`` node, or the queue's text);
the key pressed is the interaction's answer, once; the agent is freed meanwhile."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

import pytest

from agents.models import AgentProfile
from channels_inbound.voice.actions import do_bridge_call
from configuration.models import Queue
from flows.models import Flow
from flows.schema import validate_graph
from interactions.actions import do_transition_interaction
from interactions.lifecycle import Status
from interactions.models import Interaction
from supervision.models import SatisfactionResponse
from surveys.models import SurveyInvitation, SurveySettings
from tests.fake_twilio import FakeTwilioHttpClient
from tests.integration.channels import conftest as channel_fixtures
from tests.integration.channels import test_voice as voice
from tests.integration.channels.conftest import (
    PUBLIC,
    FakeTwilio,
    Reply,
    parse_twiml,
    payload,
    say_texts,
)

from .survey_helpers import survey_for

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

telephony = channel_fixtures.telephony
twilio = channel_fixtures.twilio
queue = voice.queue
endpoint = voice.endpoint
publish_flow = voice.publish_flow
agent = voice.agent

SURVEY_URL = PUBLIC + "/webhooks/twilio/voice/survey/"


def converse(twilio: FakeTwilio, agent: AgentProfile) -> Reply:
    """A call answered by the agent; returns the answer to the agent hanging up."""
    voice.call(twilio)
    interaction = Interaction.objects.get()
    do_transition_interaction(
        interaction=interaction, to=Status.ASSIGNED, extra={"assigned_agent": agent}
    )
    do_bridge_call(interaction_id=interaction.pk, agent_id=agent.pk)
    dial = parse_twiml(str(FakeTwilioHttpClient.requests[-1].data["Twiml"])).find("Dial")
    assert dial is not None
    number = dial.find("Number")
    assert number is not None
    twilio.post(number.get("url", ""), payload("voice_whisper"))
    voice.status(twilio, "voice_agent_leg_status")
    return twilio.post(dial.get("action", ""), payload("voice_dial_action"))


def test_the_caller_rates_the_call_with_a_key(
    twilio: FakeTwilio, endpoint: Any, queue: Queue, agent: AgentProfile
) -> None:
    survey_for(queue, question_fr="Êtes-vous satisfait de cet appel ?")
    # when the agent hangs up after the conversation
    ended = converse(twilio, agent)
    # then the caller hears the queue's question, "tapez 1 à 5"
    root = ended.xml()
    gather = voice.gather_of(root)
    assert gather.get("action", "").startswith(SURVEY_URL + "?node=survey")
    assert say_texts(gather) == ["Êtes-vous satisfait de cet appel ? Tapez une touche de 1 à 5."]
    assert root.find("Hangup") is None
    # and the agent is free meanwhile: the interaction is in wrap-up
    interaction = Interaction.objects.get()
    assert interaction.status == Status.WRAP_UP
    # when the caller presses 4
    thanks = voice.press(twilio, ended, "4").xml()
    # then the answer is recorded and the call ends politely
    assert say_texts(thanks) == ["Merci pour votre réponse. Au revoir."]
    assert thanks.find("Hangup") is not None
    assert SatisfactionResponse.objects.get(interaction=interaction).score == 4
    # the caller's leg ends afterwards: nothing else changes
    assert voice.status(twilio, CallDuration="180").status == 200
    interaction.refresh_from_db()
    assert interaction.status == Status.WRAP_UP


def test_the_flows_own_post_call_node_a_wrong_key_and_one_survey_only(
    twilio: FakeTwilio,
    endpoint: Any,
    queue: Queue,
    agent: AgentProfile,
    publish_flow: Callable[..., Flow],
) -> None:
    survey_for(queue)
    graph = {
        "start": "accueil",
        "post_call": "avis",
        "nodes": {
            "accueil": {"type": "queue"},
            "avis": {
                "type": "survey",
                "prompt": {"text": "Votre avis sur cet appel : tapez 1 à 5."},
                "invalid": {"text": "Touche non valide."},
                "thanks": {"text": "Merci, à bientôt."},
            },
        },
    }
    assert validate_graph(graph) == []
    publish_flow(graph)
    ended = converse(twilio, agent)
    assert say_texts(voice.gather_of(ended.xml())) == ["Votre avis sur cet appel : tapez 1 à 5."]
    # a key that is no score: asked again
    again = voice.press(twilio, ended, "9").xml()
    assert say_texts(again)[0] == "Touche non valide."
    assert not SatisfactionResponse.objects.exists()
    # then 5
    done = voice.press(twilio, Reply(200, ET.tostring(again), "text/xml"), "5").xml()
    assert say_texts(done) == ["Merci, à bientôt."]
    assert SatisfactionResponse.objects.get().score == 5
    # a replayed key press changes nothing (the first answer stays)
    replay = twilio.post(SURVEY_URL + "?node=avis&attempt=1", payload("voice_gather", Digits="1"))
    assert replay.status == 200
    assert SatisfactionResponse.objects.get().score == 5
    assert SurveyInvitation.objects.get().status == SurveyInvitation.Status.ANSWERED


def test_no_survey_when_the_queue_does_not_ask_it(
    twilio: FakeTwilio, endpoint: Any, queue: Queue, agent: AgentProfile
) -> None:
    survey_for(queue)
    SurveySettings.objects.filter(queue=queue).update(on_voice=False)
    ended = converse(twilio, agent).xml()
    assert ended.find("Hangup") is not None
    assert ended.find("Gather") is None
    assert not SurveyInvitation.objects.exists()


def test_a_post_call_node_must_exist() -> None:
    graph = {"start": "q", "post_call": "nowhere", "nodes": {"q": {"type": "queue"}}}
    assert validate_graph(graph) == ["post_call: no node named 'nowhere'"]
