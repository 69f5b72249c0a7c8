"""Phone calls: the SVI flow as TwiML, the queue, the bridge to the agent's telework phone."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.utils import timezone

from agents.models import AgentProfile
from channels_inbound.models import Endpoint
from channels_inbound.voice.actions import CallEnded, NoAgentNumber, do_bridge_call
from channels_inbound.voice.models import Call, CallOutcome
from configuration.models import Queue, Skill
from contacts.models import Contact
from flows.actions import do_create_flow_version, do_publish_flow_version
from flows.models import EndpointFlow, Flow
from interactions.actions import do_transition_interaction
from interactions.lifecycle import Status
from interactions.models import Interaction
from tests.fake_twilio import FakeTwilioHttpClient

from .conftest import ACCOUNT_SID, PUBLIC, FakeTwilio, Reply, parse_twiml, payload, say_texts

OUR_NUMBER = "+33900000002"
CALL_SID = "CA5ba3e1bd2c4a4c8f9d3e0b7a1c2d3e4f"
AGENT_LEG = "CAa9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4"
VOICE_URL = "/webhooks/twilio/voice/"
STATUS_URL = "/webhooks/twilio/voice/status/"
EVERY_DAY = {d: [["00:00", "24:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


def flow_graph(**calendar: Any) -> dict[str, Any]:
    return {
        "start": "accueil",
        "language": "fr",
        "nodes": {
            "accueil": {"type": "message", "text": "Bienvenue à la CAF.", "next": "horaires"},
            "horaires": {
                "type": "business_hours",
                "calendar": {"weekly": EVERY_DAY, "holidays": {"country": "FR"}, **calendar},
                "open": "menu",
                "closed": "ferme",
                "holiday": "ferie",
            },
            "menu": {
                "type": "menu",
                "prompt": {"text": "Allocations : tapez 1. Logement : tapez 2."},
                "options": [
                    {"key": "1", "next": "file"},
                    {"key": "2", "next": "menu_logement"},
                ],
                "retries": 1,
                "timeout_seconds": 5,
                "invalid": {"text": "Choix non valide."},
            },
            "menu_logement": {
                "type": "menu",
                "prompt": {"text": "APL : tapez 1. Rappel : tapez 2. Message : tapez 3."},
                "options": [
                    {"key": "1", "next": "apl"},
                    {"key": "2", "next": "rappel"},
                    {"key": "3", "next": "messagerie"},
                    {"key": "9", "next": "transfert"},
                ],
            },
            "apl": {"type": "set", "skills": {"apl": 3}, "priority": 4, "next": "file"},
            "file": {"type": "queue", "text": "Nous vous mettons en relation."},
            "rappel": {
                "type": "callback",
                "prompt": {"text": "Un conseiller vous rappellera."},
                "fallback": "messagerie",
            },
            "messagerie": {
                "type": "voicemail",
                "prompt": {"text": "Laissez votre message après le bip."},
                "max_seconds": 90,
            },
            "transfert": {"type": "transfer", "number": "+33140000000"},
            "ferme": {"type": "hangup", "text": "Nous sommes fermés."},
            "ferie": {"type": "hangup", "text": "Nous sommes fermés ce jour férié."},
        },
    }


@pytest.fixture
def queue(db: Any) -> Queue:
    Skill.objects.create(code="apl", name="APL")  # named by the flow (validated on publishing)
    return Queue.objects.create(code="caf", name="CAF Allocations", sla_target_seconds=60)


@pytest.fixture
def endpoint(queue: Queue) -> Endpoint:
    return Endpoint.objects.create(channel="voice", address=OUR_NUMBER, name="CAF", queue=queue)


@pytest.fixture
def publish_flow(endpoint: Endpoint) -> Callable[..., Flow]:
    def publish(graph: dict[str, Any]) -> Flow:
        flow = Flow.objects.create(name=f"SVI {Flow.objects.count() + 1}")
        version = do_create_flow_version(flow=flow, graph=graph)
        do_publish_flow_version(version=version)
        EndpointFlow.objects.update_or_create(endpoint=endpoint, defaults={"flow": flow})
        return flow

    return publish


@pytest.fixture
def agent(make_user: Callable[..., Any]) -> AgentProfile:
    user = make_user("agent.martin", first_name="Claire", last_name="Martin")
    profile: AgentProfile = user.agent_profile
    profile.telework_phone = "06 11 22 33 44"
    profile.save()
    return profile


def call(twilio: FakeTwilio, **overrides: str) -> Reply:
    return twilio.post(VOICE_URL, payload("voice_incoming", **overrides))


def gather_of(root: ET.Element) -> ET.Element:
    gathers = list(root.iter("Gather"))
    assert len(gathers) == 1, ET.tostring(root)
    return gathers[0]


def press(twilio: FakeTwilio, reply: Reply, digits: str | None, **overrides: str) -> Reply:
    """Answer the Gather of ``reply`` (``None``: no key pressed, follow the Redirect)."""
    root = reply.xml()
    if digits is None:
        redirect = root.find("Redirect")
        assert redirect is not None
        assert redirect.text
        return twilio.post(redirect.text, payload("voice_redirect", **overrides))
    action = gather_of(root).get("action")
    assert action
    return twilio.post(action, payload("voice_gather", Digits=digits, **overrides))


def status(twilio: FakeTwilio, name: str = "voice_status", **overrides: str) -> Reply:
    return twilio.post(STATUS_URL, payload(name, **overrides))


@pytest.mark.django_db
def test_a_call_walks_a_two_level_menu_into_the_queue_and_is_bridged_to_the_agent(
    twilio: FakeTwilio, publish_flow: Callable[..., Flow], agent: AgentProfile, queue: Queue
) -> None:
    publish_flow(flow_graph())
    # when the call arrives: welcome, then the first menu
    first = call(twilio)
    assert first.status == 200
    root = first.xml()
    assert root.tag == "Response"
    welcome = root.find("Say")
    assert welcome is not None
    assert welcome.text == "Bienvenue à la CAF."
    assert welcome.get("language") == "fr-FR"
    gather = gather_of(root)
    assert gather.get("input") == "dtmf"
    assert gather.get("numDigits") == "1"
    assert gather.get("timeout") == "5"
    assert gather.get("action", "").startswith(PUBLIC + "/webhooks/twilio/voice/gather/?")
    assert say_texts(gather) == ["Allocations : tapez 1. Logement : tapez 2."]
    # no key pressed -> the Redirect after the Gather asks again
    redirect = root.find("Redirect")
    assert redirect is not None
    assert redirect.get("method") == "POST"
    # when the caller presses 2, then 1
    second = press(twilio, first, "2")
    assert say_texts(gather_of(second.xml())) == [
        "APL : tapez 1. Rappel : tapez 2. Message : tapez 3."
    ]
    third = press(twilio, second, "1")
    # then: queued, told the position and put on hold, with a loop back to the wait URL
    root = third.xml()
    texts = say_texts(root)
    assert texts[0] == "Nous vous mettons en relation."
    assert "Vous êtes le prochain dans la file d'attente." in texts
    assert "Merci de patienter, un conseiller va vous répondre." in texts
    pause = root.find("Pause")
    assert pause is not None
    assert pause.get("length") == "45"
    loop = root.findall("Redirect")[-1]
    assert loop.text == PUBLIC + "/webhooks/twilio/voice/wait/"
    interaction = Interaction.objects.get()
    assert interaction.channel == "voice"
    assert interaction.status == Status.QUEUED
    assert interaction.queue == queue
    assert interaction.external_ref == CALL_SID
    assert interaction.required_skills == {"apl": 3}
    assert interaction.priority == 4
    assert interaction.contact is not None
    assert "menu=2 > menu_logement=1" in interaction.messages.get().text
    # the wait loop re-announces the position
    waiting = twilio.post(loop.text, payload("voice_redirect"))
    assert "Vous êtes le prochain dans la file d'attente." in say_texts(waiting.xml())

    # when the router assigns it and calls the bridge
    do_transition_interaction(
        interaction=interaction,
        to=Status.ASSIGNED,
        reason="accepted",
        extra={"assigned_agent": agent},
    )
    do_bridge_call(interaction_id=interaction.pk, agent_id=agent.pk)
    # then the live call was redirected through the REST API to a Dial of the agent's number
    request = FakeTwilioHttpClient.requests[-1]
    assert request.method == "POST"
    assert request.uri.endswith(f"/Accounts/{ACCOUNT_SID}/Calls/{CALL_SID}.json")
    twiml = parse_twiml(str(request.data["Twiml"]))
    dial = twiml.find("Dial")
    assert dial is not None
    assert dial.get("callerId") == OUR_NUMBER
    assert dial.get("record") == "do-not-record"  # recording is off by default
    assert dial.get("timeout") == "20"
    number = dial.find("Number")
    assert number is not None
    assert number.text == "+33611223344"
    whisper_url = number.get("url", "")
    assert whisper_url.startswith(PUBLIC + "/webhooks/twilio/voice/whisper/?interaction=")
    # the agent's leg reports to the status URL, naming the agent it rang
    assert number.get("statusCallback") == PUBLIC + STATUS_URL + f"?agent={agent.pk}"
    assert Call.objects.get().outcome == CallOutcome.BRIDGING

    # when the agent picks up: the whisper names the queue, to the agent only
    whisper = twilio.post(whisper_url, payload("voice_whisper"))
    assert say_texts(whisper.xml())[0].startswith("Appel de la file CAF Allocations.")
    assert status(twilio, "voice_agent_leg_status").status == 200
    record = Call.objects.get()
    assert record.outcome == CallOutcome.ANSWERED
    assert record.agent_answered_at is not None
    assert record.wait_seconds is not None
    # when they hang up after 95 s of conversation, then the caller's leg completes
    dial_action = dial.get("action", "")
    ended = twilio.post(dial_action, payload("voice_dial_action"))
    assert ended.xml().find("Hangup") is not None
    assert status(twilio, CallDuration="180").status == 200
    # then: durations recorded, the interaction moves to wrap-up
    record.refresh_from_db()
    assert (record.talk_seconds, record.duration_seconds) == (95, 180)
    assert record.outcome == CallOutcome.COMPLETED
    interaction.refresh_from_db()
    assert interaction.status == Status.WRAP_UP
    assert interaction.transitions.last().reason == "call_completed"  # type: ignore[union-attr]


@pytest.mark.django_db
def test_invalid_and_missing_keys_are_asked_again(
    twilio: FakeTwilio, publish_flow: Callable[..., Flow]
) -> None:
    publish_flow(flow_graph())
    first = call(twilio)
    again = press(twilio, first, "7")
    root = again.xml()
    assert root.find("Say") is not None
    assert root.find("Say").text == "Choix non valide."  # type: ignore[union-attr]
    assert "attempt=1" in gather_of(root).get("action", "")
    # a late replay of the first answer does not advance the flow twice
    late = press(twilio, first, "7")
    assert "attempt=1" in gather_of(late.xml()).get("action", "")
    # no key at all after the last retry, and no default: goodbye
    last = press(twilio, again, None)
    assert [el.tag for el in last.xml()] == ["Hangup"]
    assert Interaction.objects.count() == 0


@pytest.mark.django_db
def test_a_hang_up_while_waiting_is_an_abandon(
    twilio: FakeTwilio, publish_flow: Callable[..., Flow]
) -> None:
    publish_flow(flow_graph())
    press(twilio, call(twilio), "1")
    interaction = Interaction.objects.get()
    assert interaction.status == Status.QUEUED
    # when the caller hangs up
    assert status(twilio, CallDuration="40").status == 200
    # then
    interaction.refresh_from_db()
    assert interaction.status == Status.ABANDONED
    record = Call.objects.get()
    assert record.outcome == CallOutcome.ABANDONED
    assert record.duration_seconds == 40
    # a replayed or late callback changes nothing
    assert status(twilio, CallDuration="40").status == 200
    assert status(twilio, CallStatus="ringing").status == 200
    record.refresh_from_db()
    assert record.status == "completed"
    assert interaction.transitions.filter(to_status=Status.ABANDONED).count() == 1


@pytest.mark.django_db
def test_an_offered_call_hung_up_is_abandoned(
    twilio: FakeTwilio, publish_flow: Callable[..., Flow], agent: AgentProfile
) -> None:
    publish_flow(flow_graph())
    press(twilio, call(twilio), "1")
    interaction = Interaction.objects.get()
    do_transition_interaction(
        interaction=interaction, to=Status.OFFERED, extra={"assigned_agent": agent}
    )
    status(twilio)
    interaction.refresh_from_db()
    assert interaction.status == Status.ABANDONED


@pytest.mark.django_db
@pytest.mark.parametrize("withheld", ["anonymous", "+266696687", "Restricted", ""])
def test_a_withheld_caller_id_works_and_stays_anonymous(
    twilio: FakeTwilio, publish_flow: Callable[..., Flow], withheld: str
) -> None:
    publish_flow(flow_graph())
    first = call(twilio, From=withheld, Caller=withheld)
    assert first.status == 200
    # asking for a callback without a number falls back to voicemail
    reply = press(twilio, press(twilio, first, "2"), "2")
    root = reply.xml()
    assert say_texts(root)[0] == "Laissez votre message après le bip."
    recording = root.find("Record")
    assert recording is not None
    assert recording.get("maxLength") == "90"
    # when the message is recorded
    done = twilio.post(recording.get("action", ""), payload("voice_recording", From=withheld))
    assert say_texts(done.xml()) == ["Merci, votre message a bien été enregistré. Au revoir."]
    interaction = Interaction.objects.get()
    assert interaction.contact is None
    attachment = interaction.messages.get().attachments[0]
    assert attachment["url"].endswith("/Recordings/RE0123456789abcdef0123456789abcdef")
    assert Call.objects.get().outcome == CallOutcome.VOICEMAIL


@pytest.mark.django_db
def test_a_callback_request_becomes_an_interaction_with_the_number(
    twilio: FakeTwilio, publish_flow: Callable[..., Flow]
) -> None:
    publish_flow(flow_graph())
    reply = press(twilio, press(twilio, call(twilio), "2"), "2")
    root = reply.xml()
    assert say_texts(root) == ["Un conseiller vous rappellera."]
    assert root.find("Hangup") is not None
    interaction = Interaction.objects.get()
    assert interaction.subject == "Demande de rappel"
    assert "Rappeler le +33612345678." in interaction.messages.get().text
    assert Call.objects.get().outcome == CallOutcome.CALLBACK


@pytest.mark.django_db
def test_transfer_to_an_external_number(
    twilio: FakeTwilio, publish_flow: Callable[..., Flow]
) -> None:
    publish_flow(flow_graph())
    root = press(twilio, press(twilio, call(twilio), "2"), "9").xml()
    number = root.find("Dial/Number")
    assert number is not None
    assert number.text == "+33140000000"
    assert Call.objects.get().outcome == CallOutcome.TRANSFERRED


@pytest.mark.django_db
def test_a_holiday_takes_the_holiday_branch(
    twilio: FakeTwilio, publish_flow: Callable[..., Flow], monkeypatch: pytest.MonkeyPatch
) -> None:
    # 14 July, a French public holiday (a closed date is a closure: test_voice_failures.py)
    bastille_day = datetime(2026, 7, 14, 8, 0, tzinfo=UTC)
    monkeypatch.setattr("django.utils.timezone.now", lambda: bastille_day)
    publish_flow(flow_graph())
    root = call(twilio).xml()
    assert say_texts(root) == ["Bienvenue à la CAF.", "Nous sommes fermés ce jour férié."]
    assert root.find("Hangup") is not None
    status(twilio)
    assert Call.objects.get().outcome == CallOutcome.ENDED_IN_FLOW


@pytest.mark.django_db
def test_without_a_flow_the_call_goes_straight_to_the_queue(
    twilio: FakeTwilio, endpoint: Endpoint
) -> None:
    root = call(twilio).xml()
    assert "Vous êtes le prochain dans la file d'attente." in say_texts(root)
    assert Interaction.objects.get().status == Status.QUEUED


@pytest.mark.django_db
def test_position_and_estimated_wait_are_announced(
    twilio: FakeTwilio, endpoint: Endpoint, queue: Queue, settings: Any
) -> None:
    settings.VOICE_HOLD_MUSIC_URL = "https://cdn.example.fr/attente.mp3"
    now = timezone.now()
    # given two callers already waiting and answers taking 4 minutes in the last hour
    for minutes in (3, 2):
        Interaction.objects.create(
            channel="voice",
            queue=queue,
            status=Status.QUEUED,
            queued_at=now - timedelta(minutes=minutes),
        )
    Interaction.objects.create(
        channel="voice",
        queue=queue,
        status=Status.CLOSED,
        queued_at=now - timedelta(minutes=30),
        assigned_at=now - timedelta(minutes=26),
    )
    root = call(twilio).xml()
    texts = say_texts(root)
    assert "Vous êtes en position 3 dans la file d'attente." in texts
    assert "Le temps d'attente estimé est d'environ 4 minutes." in texts
    play = root.find("Play")
    assert play is not None
    assert play.text == "https://cdn.example.fr/attente.mp3"


@pytest.mark.django_db
def test_caller_supplied_text_never_breaks_the_twiml(
    twilio: FakeTwilio, publish_flow: Callable[..., Flow], agent: AgentProfile
) -> None:
    publish_flow(flow_graph())
    press(twilio, call(twilio), "1")
    interaction = Interaction.objects.get()
    assert interaction.contact is not None
    # given a citizen whose name (given in a chat or an e-mail) is hostile markup
    hostile = '</Say><Dial>+33899000000</Dial>&amp; "x" \x07\x1b 👋🏽 \u200fمرحبا'
    Contact.objects.filter(pk=interaction.contact.pk).update(display_name=hostile)
    do_transition_interaction(
        interaction=interaction, to=Status.ASSIGNED, extra={"assigned_agent": agent}
    )
    do_bridge_call(interaction_id=interaction.pk, agent_id=agent.pk)
    number = parse_twiml(str(FakeTwilioHttpClient.requests[-1].data["Twiml"])).find("Dial/Number")
    assert number is not None
    # when the agent picks up
    root = twilio.post(number.get("url", ""), payload("voice_whisper")).xml()
    # then the name is spoken as text, intact except for the characters XML cannot carry
    assert [el.tag for el in root] == ["Say"]
    assert root.find("Dial") is None
    assert say_texts(root)[0].endswith(
        'Usager\u00a0: </Say><Dial>+33899000000</Dial>&amp; "x"  👋🏽 \u200fمرحبا.'
    )


@pytest.mark.django_db
def test_bridging_an_agent_without_a_number_fails_clearly(
    twilio: FakeTwilio, endpoint: Endpoint, agent: AgentProfile
) -> None:
    call(twilio)
    interaction = Interaction.objects.get()
    AgentProfile.objects.filter(pk=agent.pk).update(telework_phone="")
    do_transition_interaction(
        interaction=interaction, to=Status.ASSIGNED, extra={"assigned_agent": agent}
    )
    with pytest.raises(NoAgentNumber, match="no telework phone number"):
        do_bridge_call(interaction_id=interaction.pk, agent_id=agent.pk)
    assert FakeTwilioHttpClient.requests == []
    assert Call.objects.get().events.filter(kind="bridge#1:no-number").exists()


@pytest.mark.django_db
def test_a_caller_hanging_up_while_the_agent_phone_rings(
    twilio: FakeTwilio, endpoint: Endpoint, agent: AgentProfile
) -> None:
    call(twilio)
    interaction = Interaction.objects.get()
    do_transition_interaction(
        interaction=interaction, to=Status.ASSIGNED, extra={"assigned_agent": agent}
    )
    do_bridge_call(interaction_id=interaction.pk, agent_id=agent.pk)
    status(twilio, CallDuration="30")
    interaction.refresh_from_db()
    assert interaction.status == Status.WRAP_UP
    assert Call.objects.get().outcome == CallOutcome.ABANDONED


@pytest.mark.django_db
def test_bridging_a_call_that_already_ended(
    twilio: FakeTwilio, endpoint: Endpoint, agent: AgentProfile
) -> None:
    call(twilio)
    interaction = Interaction.objects.get()
    do_transition_interaction(
        interaction=interaction, to=Status.ASSIGNED, extra={"assigned_agent": agent}
    )
    FakeTwilioHttpClient.ended_calls.add(CALL_SID)
    with pytest.raises(CallEnded):
        do_bridge_call(interaction_id=interaction.pk, agent_id=agent.pk)


@pytest.mark.django_db
def test_an_agent_phone_that_does_not_answer_puts_the_call_back_in_the_queue(
    twilio: FakeTwilio, endpoint: Endpoint, agent: AgentProfile
) -> None:
    call(twilio)
    interaction = Interaction.objects.get()
    do_transition_interaction(
        interaction=interaction, to=Status.ASSIGNED, extra={"assigned_agent": agent}
    )
    do_bridge_call(interaction_id=interaction.pk, agent_id=agent.pk)
    dial = parse_twiml(str(FakeTwilioHttpClient.requests[-1].data["Twiml"])).find("Dial")
    assert dial is not None
    # when the agent's phone rings out
    reply = twilio.post(
        dial.get("action", ""),
        payload("voice_dial_action", DialCallStatus="no-answer", DialCallDuration="0"),
    )
    # then the caller hears it and waits again; the interaction is queued without the agent
    root = reply.xml()
    assert say_texts(root)[0].startswith("Le conseiller n'est pas disponible.")
    assert root.findall("Redirect")[-1].text == PUBLIC + "/webhooks/twilio/voice/wait/"
    interaction.refresh_from_db()
    assert interaction.status == Status.QUEUED
    assert interaction.assigned_agent is None


@pytest.mark.django_db
def test_replaying_the_incoming_call_creates_nothing_new(
    twilio: FakeTwilio, publish_flow: Callable[..., Flow]
) -> None:
    publish_flow(flow_graph())
    first = call(twilio)
    replay = call(twilio)
    assert replay.status == 200
    assert gather_of(replay.xml()).get("action") == gather_of(first.xml()).get("action")
    assert Call.objects.count() == 1
    press(twilio, first, "1")
    again = call(twilio)
    redirect = again.xml().find("Redirect")
    assert redirect is not None
    assert redirect.text == PUBLIC + "/webhooks/twilio/voice/wait/"
    assert Interaction.objects.count() == 1


@pytest.mark.django_db
def test_a_published_flow_change_does_not_disturb_calls_in_progress(
    twilio: FakeTwilio, publish_flow: Callable[..., Flow]
) -> None:
    flow = publish_flow(flow_graph())
    first = call(twilio)
    changed = flow_graph()
    changed["nodes"]["menu"]["options"][0]["next"] = "ferme"
    version = do_create_flow_version(flow=flow, graph=changed)
    do_publish_flow_version(version=version)
    press(twilio, first, "1")  # still runs the version the call started with
    assert Interaction.objects.count() == 1


@pytest.mark.django_db
def test_unknown_number_says_so(twilio: FakeTwilio, endpoint: Endpoint) -> None:
    root = call(twilio, To="+33999999999").xml()
    assert say_texts(root) == ["Ce numéro n'est pas en service. Au revoir."]
    assert root.find("Hangup") is not None


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path", [VOICE_URL, STATUS_URL, "/webhooks/twilio/voice/gather/?node=menu&attempt=0"]
)
def test_voice_webhooks_refuse_forged_signatures(
    twilio: FakeTwilio, endpoint: Endpoint, path: str
) -> None:
    reply = twilio.post(path, payload("voice_incoming"), signature="Zm9yZ2Vk")
    assert reply.status == 403
    assert Call.objects.count() == 0


@pytest.mark.django_db
def test_voice_missing_fields_are_a_clear_400(twilio: FakeTwilio, endpoint: Endpoint) -> None:
    reply = twilio.post(VOICE_URL, payload("voice_incoming", CallSid=None, From=None))  # type: ignore[arg-type]
    assert reply.status == 400
    assert b"missing field(s): CallSid, From" in reply.body
    gather = twilio.post(
        "/webhooks/twilio/voice/gather/?node=menu&attempt=x", payload("voice_gather")
    )
    assert gather.status == 400
    assert b"'attempt'" in gather.body
    assert parse_qs(urlsplit("/x?a=1").query) == {"a": ["1"]}
