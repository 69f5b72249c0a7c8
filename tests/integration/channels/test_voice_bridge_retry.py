"""A call bridge the provider refuses is retried, then given up without shutting the agent out.

Issue 12: "Every outbound message (SMS, e-mail, call bridge) is retried with backoff on
transient errors". Before, one provider error on the bridge put the call back in the queue
at once and excluded that agent from it for good (like a decline): in an outage longer than it
took to try every eligible agent, the caller waited with nobody left to take the call.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
import redis
from django.utils import timezone

from agents.models import AgentProfile, AgentState
from channels_inbound.models import Endpoint
from channels_inbound.voice.actions import do_connect_agent
from channels_inbound.voice.models import Call, CallOutcome
from configuration.models import Queue
from contactcentre.celery import OUTBOUND_QUEUE, ROUTE_QUEUE
from interactions.lifecycle import Status
from interactions.models import Interaction
from routing.claims import do_route_pending
from routing.models import Offer, OfferStatus
from routing.offers import do_accept_offer
from tests.fake_twilio import FakeTwilioHttpClient
from tests.support import celery_broker, clear_broker, redis_db_url

from . import test_voice
from .conftest import FakeTwilio
from .test_voice import CALL_SID, call
from .test_voice_failures import bridge_failed_events, make_agent, offer_to, presence

queue = test_voice.queue
endpoint = test_voice.endpoint
__all__ = ["make_agent"]  # a fixture, used by name


def _bridge_messages(client: redis.Redis) -> list[tuple[dict[str, Any], datetime]]:
    """The bridge tasks waiting in the broker's outbound queue: (kwargs, eta)."""
    found = []
    for raw in client.lrange(OUTBOUND_QUEUE, 0, -1):
        message = json.loads(raw)
        if message["headers"]["task"] != "channels_voice.bridge_call":
            continue
        _args, kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        found.append((kwargs, datetime.fromisoformat(message["headers"]["eta"])))
    return found


@pytest.mark.django_db
def test_a_refused_bridge_is_tried_again_then_the_call_goes_back_without_shutting_the_agent_out(
    twilio: FakeTwilio,
    endpoint: Endpoint,
    queue: Queue,
    make_agent: Callable[..., AgentProfile],
    settings: Any,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    settings.VOICE_BRIDGE_ATTEMPTS = 3
    settings.VOICE_BRIDGE_RETRY_SECONDS = 2.0
    settings.ROUTING_PROVIDER_ERROR_EXCLUSION_SECONDS = 5
    call(twilio)
    interaction = Interaction.objects.get()
    agent = make_agent("agent.retry")
    do_route_pending()
    offer = offer_to(agent, interaction)
    assert offer is not None
    broker = redis_db_url(6)
    client = redis.Redis.from_url(broker)
    clear_broker(broker)
    with celery_broker(broker, settings):
        # the agent accepts (the first bridge task goes to the broker, no worker here)
        do_accept_offer(offer_id=offer.pk, agent=agent)
        # when the first attempt meets a provider outage
        FakeTwilioHttpClient.outage = 503
        before = timezone.now()
        do_connect_agent(interaction_id=interaction.pk, agent_id=agent.pk, attempt=1)
        # then the caller keeps their agent (hold music), and attempt 2 waits ~2 s in the broker
        interaction.refresh_from_db()
        assert interaction.status == Status.ASSIGNED
        assert interaction.assigned_agent_id == agent.pk
        assert bridge_failed_events(agent) == []
        retries = [(k, eta) for k, eta in _bridge_messages(client) if k.get("attempt") == 2]
        assert len(retries) == 1
        assert before + timedelta(seconds=1.5) <= retries[0][1] <= before + timedelta(seconds=4)
        # the last attempt fails too: the call goes back to the queue, the agent is told
        given_up = timezone.now()
        with django_capture_on_commit_callbacks(execute=True):
            do_connect_agent(interaction_id=interaction.pk, agent_id=agent.pk, attempt=3)
    # and a routing pass waits in the broker for the end of the agent's lapse (its own timer)
    passes = [
        datetime.fromisoformat(m["headers"]["eta"])
        for m in map(json.loads, client.lrange(ROUTE_QUEUE, 0, -1))
        if m["headers"]["task"] == "routing.route_pending" and m["headers"].get("eta")
    ]
    assert any(
        given_up + timedelta(seconds=5) <= eta <= given_up + timedelta(seconds=7) for eta in passes
    ), passes
    interaction.refresh_from_db()
    assert interaction.status == Status.QUEUED
    assert presence(agent).state == AgentState.AVAILABLE
    assert [e.payload["reason"] for e in bridge_failed_events(agent)] == ["provider_error"]
    failed = Offer.objects.get(pk=offer.pk)
    assert failed.status == OfferStatus.PROVIDER_ERROR
    # passed over for a while (another agent would be tried first) ...
    FakeTwilioHttpClient.outage = 0
    do_route_pending()
    assert offer_to(agent, interaction) is None
    # ... but not for good: once the lapse is over, the call is offered to them again
    later = timezone.now() + timedelta(seconds=6)
    do_route_pending(now=later)
    assert offer_to(agent, interaction) is not None


@pytest.mark.django_db
def test_a_retried_bridge_connects_once_the_provider_is_back(
    twilio: FakeTwilio,
    endpoint: Endpoint,
    queue: Queue,
    make_agent: Callable[..., AgentProfile],
    settings: Any,
) -> None:
    call(twilio)
    interaction = Interaction.objects.get()
    agent = make_agent("agent.back")
    do_route_pending()
    offer = offer_to(agent, interaction)
    assert offer is not None
    broker = redis_db_url(6)
    clear_broker(broker)
    with celery_broker(broker, settings):
        do_accept_offer(offer_id=offer.pk, agent=agent)
        FakeTwilioHttpClient.outage = 503
        do_connect_agent(interaction_id=interaction.pk, agent_id=agent.pk, attempt=1)
        # the provider is back for attempt 2
        FakeTwilioHttpClient.outage = 0
        do_connect_agent(interaction_id=interaction.pk, agent_id=agent.pk, attempt=2)
    the_call = Call.objects.get(call_sid=CALL_SID)
    assert the_call.outcome == CallOutcome.BRIDGING
    assert the_call.agent_id == agent.pk
    interaction.refresh_from_db()
    assert interaction.status == Status.ASSIGNED
    assert bridge_failed_events(agent) == []
