"""Phone calls when something fails: the caller hangs up after a voicemail or a callback
request, the agent's phone does not answer, the provider's REST API errors, refuses or stalls.

Issue 12: every one of these left a citizen lost (abandoned) or stranded (assigned with hold
music forever, the agent blocked). Each test here failed before the fix.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from agents.models import AgentPresence, AgentProfile, AgentState, PauseReason
from channels_inbound.models import Endpoint
from channels_inbound.voice.models import Call, CallOutcome
from channels_inbound.voice.selectors import queue_position
from configuration.models import Queue
from console.models import AgentEvent
from flows.models import Flow
from interactions.lifecycle import Status
from interactions.models import Interaction
from routing.claims import do_route_pending
from routing.models import Offer, OfferStatus
from routing.offers import do_accept_offer, do_decline_offer
from tests.fake_twilio import FakeTwilioHttpClient

from . import test_voice
from .conftest import PUBLIC, FakeTwilio, parse_twiml, payload, say_texts
from .test_voice import CALL_SID, call, flow_graph, press, status

# The phone tests' fixtures (a queue, its number, a published flow), shared.
queue = test_voice.queue
endpoint = test_voice.endpoint
publish_flow = test_voice.publish_flow

OTHER_SID = "CA00000000000000000000000000000abc"
WAIT_URL = PUBLIC + "/webhooks/twilio/voice/wait/"
NEXT_IN_LINE = "Vous êtes le prochain dans la file d'attente."


@pytest.fixture
def make_agent(make_user: Callable[..., Any]) -> Callable[..., AgentProfile]:
    """An agent logged in, available for calls, with a telework phone."""

    def make(username: str, phone: str = "06 11 22 33 44") -> AgentProfile:
        profile: AgentProfile = make_user(username).agent_profile
        profile.telework_phone = phone
        profile.save()
        now = timezone.now()
        AgentPresence.objects.filter(agent=profile).update(
            state=AgentState.AVAILABLE,
            last_heartbeat_at=now,
            state_since=now,
            idle_since=now,
            channels_enabled=["voice"],
        )
        return profile

    return make


def presence(agent: AgentProfile) -> AgentPresence:
    return AgentPresence.objects.get(agent=agent)


def offer_to(agent: AgentProfile, interaction: Interaction) -> Offer | None:
    return Offer.objects.filter(
        agent=agent, interaction=interaction, status=OfferStatus.PENDING
    ).first()


def accept(agent: AgentProfile, interaction: Interaction, capture: Callable[..., Any]) -> None:
    """The router offers the call to ``agent``, who accepts it: the bridge runs on commit."""
    do_route_pending()
    offer = offer_to(agent, interaction)
    assert offer is not None, "the call was not offered to this agent"
    with capture(execute=True):
        do_accept_offer(offer_id=offer.pk, agent=agent)


def bridge_failed_events(agent: AgentProfile) -> list[AgentEvent]:
    return list(AgentEvent.objects.filter(agent_id=agent.pk, event="call.bridge_failed"))


# --- 1. Voicemail and callback requests are not abandoned by the end of the call ---------------
@pytest.mark.django_db
def test_a_voicemail_stays_queued_with_its_recording_when_the_call_completes(
    twilio: FakeTwilio,
    publish_flow: Callable[..., Flow],
    make_agent: Callable[..., AgentProfile],
) -> None:
    publish_flow(flow_graph())
    reply = press(twilio, press(twilio, call(twilio), "2"), "3")
    record = reply.xml().find("Record")
    assert record is not None
    twilio.post(record.get("action", ""), payload("voice_recording"))
    # when the provider reports the end of the call after our <Hangup/>
    assert status(twilio, CallDuration="25").status == 200
    # then the message still waits for an agent, with its recording
    interaction = Interaction.objects.get()
    assert interaction.status == Status.QUEUED
    assert interaction.subject == "Message vocal"
    recording = interaction.messages.get().attachments[0]
    assert recording["url"].endswith("/Recordings/RE0123456789abcdef0123456789abcdef")
    record_row = Call.objects.get()
    assert record_row.outcome == CallOutcome.VOICEMAIL
    assert record_row.recording_url == recording["url"]
    assert record_row.ended_at is not None
    # and it is routed to an agent
    agent = make_agent("agent.vocal")
    do_route_pending()
    assert offer_to(agent, interaction) is not None


@pytest.mark.django_db
def test_a_callback_request_stays_queued_when_the_call_completes(
    twilio: FakeTwilio,
    publish_flow: Callable[..., Flow],
    make_agent: Callable[..., AgentProfile],
) -> None:
    publish_flow(flow_graph())
    reply = press(twilio, press(twilio, call(twilio), "2"), "2")
    assert reply.xml().find("Hangup") is not None
    status(twilio, CallDuration="12")
    interaction = Interaction.objects.get()
    assert interaction.status == Status.QUEUED
    assert Call.objects.get().outcome == CallOutcome.CALLBACK
    agent = make_agent("agent.rappel")
    do_route_pending()
    assert offer_to(agent, interaction) is not None


# --- 2. A bridge that fails puts the caller back at the front, tells and frees the agent ------
@pytest.mark.django_db
def test_a_provider_error_on_the_bridge_requeues_the_call_at_the_front(
    twilio: FakeTwilio,
    endpoint: Endpoint,
    queue: Queue,
    make_agent: Callable[..., AgentProfile],
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    call(twilio)
    interaction = Interaction.objects.get()
    queued_at = interaction.queued_at
    agent = make_agent("agent.martin")
    # a second caller arrives after ours, while ours is being connected
    FakeTwilioHttpClient.outage = 503
    do_route_pending()
    offer = offer_to(agent, interaction)
    assert offer is not None
    call(twilio, CallSid=OTHER_SID, From="+33698765432")
    later = Interaction.objects.get(external_ref=OTHER_SID)
    # when the agent accepts and the provider's API answers 503
    with django_capture_on_commit_callbacks(execute=True):
        do_accept_offer(offer_id=offer.pk, agent=agent)
    # then the call waits again, first in line, with its original arrival time
    interaction.refresh_from_db()
    assert interaction.status == Status.QUEUED
    assert interaction.assigned_agent is None
    assert interaction.queued_at == queued_at
    assert queue_position(interaction) == 1
    assert queue_position(later) == 2
    # the agent stays available (not their fault), is told, and is passed over for a while
    assert presence(agent).state == AgentState.AVAILABLE
    events = bridge_failed_events(agent)
    assert len(events) == 1
    assert events[0].payload["interaction_id"] == interaction.pk
    assert events[0].payload["reason"] == "provider_error"
    assert "remis en file d'attente" in events[0].payload["message"]
    offer.refresh_from_db()
    assert offer.status == OfferStatus.PROVIDER_ERROR
    assert Call.objects.get(call_sid=CALL_SID).outcome == CallOutcome.QUEUED
    # the caller, still in the waiting loop, hears the position again (not silence)
    waiting = twilio.post(WAIT_URL, payload("voice_redirect"))
    assert NEXT_IN_LINE in say_texts(waiting.xml())
    # the next pass offers the other caller to this agent, not the failed call
    FakeTwilioHttpClient.outage = 0
    do_route_pending()
    assert offer_to(agent, interaction) is None
    assert offer_to(agent, later) is not None


@pytest.mark.django_db
def test_an_agent_leg_that_does_not_answer_pauses_the_agent_and_tries_the_next_one(
    twilio: FakeTwilio,
    endpoint: Endpoint,
    make_agent: Callable[..., AgentProfile],
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    call(twilio)
    interaction = Interaction.objects.get()
    first = make_agent("agent.first", phone="06 11 22 33 44")
    accept(first, interaction, django_capture_on_commit_callbacks)
    second = make_agent("agent.second", phone="06 55 66 77 88")
    twiml = parse_twiml(str(FakeTwilioHttpClient.requests[-1].data["Twiml"]))
    number = twiml.find("Dial/Number")
    dial = twiml.find("Dial")
    assert number is not None
    assert dial is not None
    assert Call.objects.get().outcome == CallOutcome.BRIDGING
    # when the agent's leg reports no-answer (status callback of the <Number>)
    reply = twilio.post(
        number.get("statusCallback", ""),
        payload("voice_agent_leg_status", CallStatus="no-answer", SequenceNumber="3"),
    )
    assert reply.status == 200
    # then the agent is paused "missed" and told; the call is queued again
    assert presence(first).state == AgentState.PAUSED
    assert presence(first).pause_reason == PauseReason.MISSED
    events = bridge_failed_events(first)
    assert [e.payload["reason"] for e in events] == ["no-answer"]
    interaction.refresh_from_db()
    assert interaction.status == Status.QUEUED
    assert interaction.assigned_agent is None
    # the <Dial> action that follows puts the caller back in the waiting loop
    after = twilio.post(
        dial.get("action", ""),
        payload("voice_dial_action", DialCallStatus="no-answer", DialCallDuration="0"),
    ).xml()
    assert say_texts(after)[0].startswith("Le conseiller n'est pas disponible.")
    assert NEXT_IN_LINE in say_texts(after)
    assert after.findall("Redirect")[-1].text == WAIT_URL
    assert len(bridge_failed_events(first)) == 1  # told once
    # the next pass offers it to the other agent
    do_route_pending()
    assert offer_to(second, interaction) is not None
    # and never again to the first, even once they are back and the other one declines
    AgentPresence.objects.filter(agent=first).update(
        state=AgentState.AVAILABLE, last_heartbeat_at=timezone.now()
    )
    pending = offer_to(second, interaction)
    assert pending is not None
    do_decline_offer(offer_id=pending.pk, agent=second)
    do_route_pending()
    assert offer_to(first, interaction) is None
    interaction.refresh_from_db()
    assert interaction.status == Status.QUEUED


@pytest.mark.django_db
@pytest.mark.parametrize("dial_status", ["busy", "no-answer", "failed"])
def test_a_dial_that_ends_unanswered_pauses_the_agent_and_excludes_them(
    twilio: FakeTwilio,
    endpoint: Endpoint,
    make_agent: Callable[..., AgentProfile],
    django_capture_on_commit_callbacks: Callable[..., Any],
    dial_status: str,
) -> None:
    call(twilio)
    interaction = Interaction.objects.get()
    agent = make_agent("agent.busy")
    accept(agent, interaction, django_capture_on_commit_callbacks)
    dial = parse_twiml(str(FakeTwilioHttpClient.requests[-1].data["Twiml"])).find("Dial")
    assert dial is not None
    twilio.post(
        dial.get("action", ""),
        payload("voice_dial_action", DialCallStatus=dial_status, DialCallDuration="0"),
    )
    assert presence(agent).pause_reason == PauseReason.MISSED
    assert Offer.objects.get(agent=agent, interaction=interaction).status == OfferStatus.FAILED
    AgentPresence.objects.filter(agent=agent).update(
        state=AgentState.AVAILABLE, last_heartbeat_at=timezone.now()
    )
    do_route_pending()
    assert offer_to(agent, interaction) is None


@pytest.mark.django_db
def test_a_late_dial_result_does_not_touch_the_next_agent(
    twilio: FakeTwilio,
    endpoint: Endpoint,
    make_agent: Callable[..., AgentProfile],
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    call(twilio)
    interaction = Interaction.objects.get()
    first = make_agent("agent.first")
    accept(first, interaction, django_capture_on_commit_callbacks)
    first_twiml = parse_twiml(str(FakeTwilioHttpClient.requests[-1].data["Twiml"]))
    number = first_twiml.find("Dial/Number")
    dial = first_twiml.find("Dial")
    assert number is not None
    assert dial is not None
    twilio.post(
        number.get("statusCallback", ""),
        payload("voice_agent_leg_status", CallStatus="busy", SequenceNumber="3"),
    )
    second = make_agent("agent.second", phone="06 55 66 77 88")
    accept(second, interaction, django_capture_on_commit_callbacks)
    # when the first bridge's <Dial> result arrives only now
    twilio.post(
        dial.get("action", ""),
        payload("voice_dial_action", DialCallStatus="busy", DialCallDuration="0"),
    )
    # then the second agent keeps the call
    interaction.refresh_from_db()
    assert interaction.status == Status.ASSIGNED
    assert interaction.assigned_agent == second
    assert presence(second).state == AgentState.AVAILABLE


# --- 3. Timeouts: a provider that refuses or stalls fails the bridge within the timeout ------
@pytest.fixture
def stalled_provider() -> Iterator[str]:
    """A loopback TCP server that accepts connections and never answers."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _addr = server.accept()
            except OSError:
                continue
            held.append(conn)  # read nothing, answer nothing

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join(timeout=2)
    for conn in held:
        conn.close()
    server.close()


@pytest.fixture
def refused_url() -> str:
    """A loopback port nobody listens on (connection refused)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return f"http://127.0.0.1:{port}"


@pytest.mark.django_db
@pytest.mark.parametrize("provider", ["stalled_provider", "refused_url"])
def test_a_provider_that_stalls_or_refuses_fails_the_bridge_within_the_timeout(
    twilio: FakeTwilio,
    endpoint: Endpoint,
    make_agent: Callable[..., AgentProfile],
    django_capture_on_commit_callbacks: Callable[..., Any],
    settings: Any,
    request: pytest.FixtureRequest,
    provider: str,
) -> None:
    # the real HTTP client of the twilio library, pointed at the broken provider
    settings.TWILIO_HTTP_CLIENT = ""
    settings.TWILIO_API_BASE_URL = request.getfixturevalue(provider)
    settings.PROVIDER_CONNECT_TIMEOUT_S = 0.5
    settings.PROVIDER_READ_TIMEOUT_S = 1.0
    call(twilio)
    interaction = Interaction.objects.get()
    agent = make_agent("agent.stalled")
    started = time.monotonic()
    accept(agent, interaction, django_capture_on_commit_callbacks)
    elapsed = time.monotonic() - started
    assert elapsed < 5, f"the bridge took {elapsed:.1f} s"
    interaction.refresh_from_db()
    assert interaction.status == Status.QUEUED
    assert presence(agent).state == AgentState.AVAILABLE
    assert [e.payload["reason"] for e in bridge_failed_events(agent)] == ["provider_error"]


def test_the_rest_client_has_connect_and_read_timeouts(settings: Any) -> None:
    from channels_inbound.providers.twilio import TwilioBackend

    settings.TWILIO_HTTP_CLIENT = ""
    settings.TWILIO_ACCOUNT_SID = "AC00000000000000000000000000000001"
    settings.TWILIO_AUTH_TOKEN = "x" * 32
    settings.PROVIDER_CONNECT_TIMEOUT_S = 3.0
    settings.PROVIDER_READ_TIMEOUT_S = 10.0
    backend = TwilioBackend()
    assert backend.client.http_client.timeout == (3.0, 10.0)


def test_outbound_provider_work_runs_on_its_own_queue() -> None:
    from contactcentre.celery import app

    for name in ("channels_voice.bridge_call", "channels_sms.send_outbound"):
        route = app.amqp.router.route({}, name)
        assert route["queue"].name == "outbound", name
    assert app.amqp.router.route({}, "routing.route_pending")["queue"].name != "outbound"


# --- Announcements --------------------------------------------------------------------------
@pytest.mark.django_db
def test_the_queue_position_counts_only_calls(
    twilio: FakeTwilio, endpoint: Endpoint, queue: Queue
) -> None:
    # given an SMS and a chat waiting in the same queue since before the call
    for channel in ("sms", "chat"):
        Interaction.objects.create(
            channel=channel,
            queue=queue,
            status=Status.QUEUED,
            queued_at=timezone.now() - timedelta(minutes=5),
        )
    root = call(twilio).xml()
    assert NEXT_IN_LINE in say_texts(root)


@pytest.mark.django_db
def test_a_closed_date_plays_the_closure_message_not_the_holiday_one(
    twilio: FakeTwilio, publish_flow: Callable[..., Flow]
) -> None:
    today = timezone.localdate().isoformat()
    publish_flow(flow_graph(closed_dates=[today]))
    root = call(twilio).xml()
    assert say_texts(root) == ["Bienvenue à la CAF.", "Nous sommes fermés."]
    assert root.find("Hangup") is not None


@pytest.mark.django_db
def test_a_bridge_with_no_news_past_its_ring_time_is_given_up(
    twilio: FakeTwilio,
    endpoint: Endpoint,
    make_agent: Callable[..., AgentProfile],
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    from channels_inbound.voice.actions import do_check_bridge

    call(twilio)
    interaction = Interaction.objects.get()
    agent = make_agent("agent.silent")
    accept(agent, interaction, django_capture_on_commit_callbacks)
    number = parse_twiml(str(FakeTwilioHttpClient.requests[-1].data["Twiml"])).find("Dial/Number")
    assert number is not None
    # a check for another bridge, or for another agent, changes nothing
    assert not do_check_bridge(interaction_id=interaction.pk, agent_id=agent.pk, bridge_no=2)
    assert not do_check_bridge(interaction_id=interaction.pk, agent_id=agent.pk + 1, bridge_no=1)
    # when the provider never reported anything of the agent's phone
    assert do_check_bridge(interaction_id=interaction.pk, agent_id=agent.pk, bridge_no=1)
    interaction.refresh_from_db()
    assert interaction.status == Status.QUEUED
    assert presence(agent).pause_reason == PauseReason.MISSED
    # and if the agent picks up after all, they are told it went elsewhere
    whisper = twilio.post(number.get("url", ""), payload("voice_whisper")).xml()
    assert say_texts(whisper) == ["Cet appel a été confié à un autre conseiller. Au revoir."]
    assert whisper.find("Hangup") is not None
    assert Call.objects.get().agent_answered_at is None


@pytest.mark.django_db
def test_an_answered_bridge_is_not_given_up(
    twilio: FakeTwilio,
    endpoint: Endpoint,
    make_agent: Callable[..., AgentProfile],
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    from channels_inbound.voice.actions import do_check_bridge

    call(twilio)
    interaction = Interaction.objects.get()
    agent = make_agent("agent.answers")
    accept(agent, interaction, django_capture_on_commit_callbacks)
    number = parse_twiml(str(FakeTwilioHttpClient.requests[-1].data["Twiml"])).find("Dial/Number")
    assert number is not None
    twilio.post(number.get("url", ""), payload("voice_whisper"))
    assert not do_check_bridge(interaction_id=interaction.pk, agent_id=agent.pk, bridge_no=1)
    interaction.refresh_from_db()
    assert interaction.status == Status.ASSIGNED
