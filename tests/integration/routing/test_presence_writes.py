"""Every path that changes an agent's state writes exactly one history row and sends exactly one
``agent.state`` event (issue 16: one write path, ``agents.presence``), including the bulk ones
(wrap-up timers, a vanished console) that once skipped the history; a change to the same state
writes nothing.

Events are counted in the console's outbox (``console.AgentEvent``): every event published to
an agent's group is written there in the transaction of the change, and the same publish goes
to the supervisors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from agents.models import AgentPresence, AgentProfile, AgentState, AgentStateChange, PauseReason
from agents.presence import do_end_wrap_ups, do_set_agent_state
from channels_inbound.voice.actions import do_requeue_unreachable
from console.models import AgentEvent
from interactions.actions import do_transition_interaction
from interactions.lifecycle import Status
from interactions.models import Interaction
from organisations.models import Membership, sole_organisation
from routing.claims import do_route_pending
from routing.models import Offer, OfferStatus
from routing.offers import do_accept_offer, do_expire_offers, do_release_lost_consoles
from supervision.access import scope_for
from supervision.actions import do_log_agent_out, do_supervisor_set_state

pytestmark = pytest.mark.django_db

CONNECTION_LOST = "connection_lost"  # agents.models.OfflineReason.CONNECTION_LOST


def _history(agent: AgentProfile) -> list[tuple[str, str]]:
    return list(
        AgentStateChange.objects.filter(agent=agent).order_by("id").values_list("state", "reason")
    )


def _events(agent: AgentProfile) -> list[tuple[str, str]]:
    return [
        (e.payload["state"], e.payload["reason"])
        for e in AgentEvent.objects.filter(agent_id=agent.pk, event="agent.state").order_by("id")
    ]


@contextmanager
def one_change(agent: AgentProfile, state: str, reason: str = "") -> Iterator[None]:
    """The block changes ``agent`` to ``state`` (``reason``): one history row, one event."""
    rows, events = len(_history(agent)), len(_events(agent))
    yield
    presence = AgentPresence.objects.get(agent=agent)
    assert (presence.state, presence.pause_reason) == (state, reason)
    assert _history(agent)[rows:] == [(state, reason)]
    assert _events(agent)[events:] == [(state, reason)]
    change = AgentStateChange.objects.filter(agent=agent).latest("id")
    assert change.at == presence.state_since


@contextmanager
def no_change(agent: AgentProfile) -> Iterator[None]:
    rows, events = len(_history(agent)), len(_events(agent))
    yield
    assert len(_history(agent)) == rows
    assert len(_events(agent)) == events


@pytest.fixture
def member(make_user: Callable[..., Any]) -> Callable[..., Any]:
    """A user of the organisation with an agent profile, available with a live console."""

    def make(username: str, role: str = "agent") -> Any:
        user = make_user(username, role)
        Membership.objects.create(user=user, organisation_id=sole_organisation())
        now = timezone.now()
        AgentPresence.objects.filter(agent__user=user).update(
            state=AgentState.AVAILABLE, last_heartbeat_at=now, state_since=now
        )
        return user

    return make


def _answered_call(queue: Any, agent: Any, arrive: Any, username: str = "a") -> tuple[Any, Any]:
    q = queue("q", {"x": 1})
    a = agent(username, {"x": 1})
    call = arrive(q)
    do_route_pending()
    offer = Offer.objects.get(interaction=call, status=OfferStatus.PENDING)
    do_accept_offer(offer_id=offer.pk, agent=a)
    return a, Interaction.objects.get(pk=call.pk)


# --------------------------------------------------------------------------- the agent


def test_the_console_pause_and_return(member: Callable[..., Any]) -> None:
    user = member("alice")
    client = Client()
    client.force_login(user)
    with one_change(user.agent_profile, AgentState.PAUSED, PauseReason.LUNCH):
        assert client.post("/console/state/", {"state": "paused:lunch"}).status_code < 400
    with one_change(user.agent_profile, AgentState.AVAILABLE):
        assert client.post("/console/state/", {"state": "available"}).status_code < 400
    with no_change(user.agent_profile):  # the same state again: nothing to record
        assert client.post("/console/state/", {"state": "available"}).status_code < 400


def test_the_api_pause(member: Callable[..., Any]) -> None:
    user = member("bob")
    api = APIClient()
    api.force_authenticate(user)
    with one_change(user.agent_profile, AgentState.PAUSED, PauseReason.BREAK):
        response = api.patch(
            "/api/v1/presence/me/", {"state": "paused", "pause_reason": "break"}, format="json"
        )
        assert response.status_code == 200


def test_a_console_logout_and_a_disabled_account(member: Callable[..., Any]) -> None:
    user = member("carl")
    client = Client()
    client.force_login(user)
    with one_change(user.agent_profile, AgentState.OFFLINE):
        client.logout()
    do_set_agent_state(agent=user.agent_profile, state=AgentState.AVAILABLE)
    with one_change(user.agent_profile, AgentState.OFFLINE):
        user.is_active = False
        user.save()


# --------------------------------------------------------------------------- supervisors


def test_a_supervisor_pauses_resumes_and_logs_out(member: Callable[..., Any]) -> None:
    sup = member("sup", role="administrator")
    scope = scope_for(sup)
    assert scope is not None
    dan = member("dan").agent_profile
    with one_change(dan, AgentState.PAUSED, PauseReason.SUPERVISOR):
        do_supervisor_set_state(actor=sup, scope=scope, agent=dan, state=AgentState.PAUSED)
    with one_change(dan, AgentState.AVAILABLE):
        do_supervisor_set_state(actor=sup, scope=scope, agent=dan, state=AgentState.AVAILABLE)
    with one_change(dan, AgentState.OFFLINE):
        do_log_agent_out(actor=sup, scope=scope, agent=dan)


# --------------------------------------------------------------------------- the system


def test_an_offer_left_to_ring_out_pauses_missed(queue: Any, agent: Any, arrive: Any) -> None:
    q = queue("q", {"x": 1})
    a = agent("a", {"x": 1})
    arrive(q)
    do_route_pending()
    with one_change(a, AgentState.PAUSED, PauseReason.MISSED):
        assert do_expire_offers(now=timezone.now() + timedelta(seconds=21)) == 1


def test_an_offer_ringing_out_for_a_logged_out_agent_leaves_them_logged_out(
    queue: Any, agent: Any, arrive: Any
) -> None:
    # an agent logs out of the console while a call is offered to them
    q = queue("q", {"x": 1})
    a = agent("a", {"x": 1})
    arrive(q)
    do_route_pending()
    do_set_agent_state(agent=a, state=AgentState.OFFLINE)
    # the offer rings out: they stay offline (a "missed" pause would count them logged in)
    with no_change(a):
        assert do_expire_offers(now=timezone.now() + timedelta(seconds=21)) == 1
    assert AgentPresence.objects.get(agent=a).state == AgentState.OFFLINE


def test_a_phone_that_did_not_answer_pauses_missed(queue: Any, agent: Any, arrive: Any) -> None:
    a, call = _answered_call(queue, agent, arrive)
    with one_change(a, AgentState.PAUSED, PauseReason.MISSED):
        assert do_requeue_unreachable(
            interaction_id=call.pk, agent_id=a.pk, cause="no-answer", pause_missed=True
        )


def test_wrap_up_starts_after_a_call_and_ends_when_it_is_closed(
    queue: Any, agent: Any, arrive: Any
) -> None:
    a, call = _answered_call(queue, agent, arrive)
    with one_change(a, AgentState.WRAP_UP):
        do_transition_interaction(interaction=call, to=Status.WRAP_UP)
    assert AgentPresence.objects.get(agent=a).wrap_up_until is not None
    with one_change(a, AgentState.AVAILABLE):
        do_transition_interaction(interaction=call, to=Status.CLOSED)
    assert AgentPresence.objects.get(agent=a).wrap_up_until is None


def test_wrap_up_timers_ended_in_bulk_each_write_their_row(
    queue: Any, agent: Any, arrive: Any, settings: Any
) -> None:
    settings.ROUTING_WRAP_UP_SECONDS = 30
    a, first = _answered_call(queue, agent, arrive, "a")
    b = agent("b", {"x": 1})
    second = arrive(first.queue)
    do_route_pending()
    do_accept_offer(offer_id=Offer.objects.get(interaction=second).pk, agent=b)
    for call in (first, Interaction.objects.get(pk=second.pk)):
        do_transition_interaction(interaction=call, to=Status.WRAP_UP)
    later = timezone.now() + timedelta(seconds=31)
    with one_change(a, AgentState.AVAILABLE), one_change(b, AgentState.AVAILABLE):
        assert do_end_wrap_ups(now=later) == 2
    with no_change(a), no_change(b):  # the timer task arriving after the sweep: nothing
        assert do_end_wrap_ups(now=later, agent_ids=[a.pk]) == 0


def test_a_vanished_console_takes_the_agent_offline_once(
    queue: Any, agent: Any, settings: Any
) -> None:
    settings.ROUTING_HEARTBEAT_WINDOW_SECONDS = 45
    settings.ROUTING_CONSOLE_GRACE_SECONDS = 60
    gone = agent("gone", {}, now=timezone.now() - timedelta(minutes=5))
    paused = agent("paused", {}, now=timezone.now() - timedelta(minutes=5))
    AgentPresence.objects.filter(agent=paused).update(
        state=AgentState.PAUSED, pause_reason=PauseReason.LUNCH
    )
    with (
        one_change(gone, AgentState.OFFLINE, CONNECTION_LOST),
        one_change(paused, AgentState.OFFLINE, CONNECTION_LOST),
    ):
        assert do_release_lost_consoles() == 2
    with no_change(gone), no_change(paused):
        assert do_release_lost_consoles() == 0


def test_a_new_agent_has_a_presence_row_and_no_history(db: Any) -> None:
    user = get_user_model().objects.create_user("new", password="x")
    agent = AgentProfile.objects.create(user=user)
    assert AgentPresence.objects.get(agent=agent).state == AgentState.OFFLINE
    assert _history(agent) == []
