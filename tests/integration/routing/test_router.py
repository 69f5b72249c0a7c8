"""The router in the database: offers, answers, timeouts, presence, escalation, overflow."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from agents.models import AgentPresence, AgentState, PauseReason
from agents.presence import PresenceError, do_heartbeat, do_set_agent_state, do_set_channels
from configuration.models import EscalationStep
from interactions.actions import do_transition_interaction
from interactions.lifecycle import Status
from interactions.models import Interaction, InteractionTransition
from routing.claims import do_route_pending
from routing.errors import OfferNotPending, RoutingError
from routing.models import Offer, OfferStatus, RoutingDecision
from routing.offers import do_accept_offer, do_decline_offer, do_expire_offers
from routing.tasks import sweep

pytestmark = pytest.mark.django_db


def pending_offer(interaction: Interaction) -> Offer:
    return Offer.objects.get(interaction=interaction, status=OfferStatus.PENDING)


def test_the_most_competent_available_agent_gets_the_offer_with_its_reasons(
    queue: Any, agent: Any, arrive: Any
) -> None:
    # given two available agents, one expert in housing benefits
    q = queue("caf-logement", {"apl": 2})
    novice = agent("novice", {"apl": 2})
    expert = agent("expert", {"apl": 5})
    call = arrive(q)

    # when the router runs
    result = do_route_pending()

    # then the expert is offered the call, and the log says why
    assert result.offered == 1
    offer = pending_offer(call)
    assert offer.agent == expert
    call.refresh_from_db()
    assert call.status == Status.OFFERED
    assert call.assigned_agent == expert
    decision = RoutingDecision.objects.get(offer=offer)
    assert decision.rule == "proficiency"
    candidates = {c["agent_id"]: c for c in decision.details["candidates"]}
    assert candidates[expert.pk]["proficiency"] == 5
    assert candidates[novice.pk]["proficiency"] == 2


def test_accept_assigns_and_a_declined_offer_goes_to_the_next_agent_never_back(
    queue: Any, agent: Any, arrive: Any
) -> None:
    q = queue("prefecture", {"sejour": 1})
    first = agent("first", {"sejour": 5})
    second = agent("second", {"sejour": 3})
    chat = arrive(q, "chat")
    do_route_pending()
    offer = pending_offer(chat)
    assert offer.agent == first

    do_decline_offer(offer_id=offer.pk, agent=first)
    chat.refresh_from_db()
    assert chat.status == Status.QUEUED
    assert chat.assigned_agent is None

    do_route_pending()
    again = pending_offer(chat)
    assert again.agent == second
    do_decline_offer(offer_id=again.pk, agent=second)
    do_route_pending()
    # Both declined: nobody is offered it again, it waits.
    assert not Offer.objects.filter(interaction=chat, status=OfferStatus.PENDING).exists()
    assert Interaction.objects.get(pk=chat.pk).status == Status.QUEUED


def test_accept(queue: Any, agent: Any, arrive: Any) -> None:
    q = queue("mairie", {"etat-civil": 1})
    camille = agent("camille", {"etat-civil": 4})
    other = agent("other", {})
    mail = arrive(q, "email")
    do_route_pending()
    offer = pending_offer(mail)
    with pytest.raises(RoutingError, match="another agent"):
        do_accept_offer(offer_id=offer.pk, agent=other)
    do_accept_offer(offer_id=offer.pk, agent=camille)
    mail.refresh_from_db()
    assert mail.status == Status.ASSIGNED
    assert mail.assigned_at is not None
    with pytest.raises(OfferNotPending):
        do_accept_offer(offer_id=offer.pk, agent=camille)


def test_an_expired_offer_requeues_and_pauses_the_absent_agent(
    queue: Any, agent: Any, arrive: Any
) -> None:
    q = queue("caf", {"rsa": 1})
    absent = agent("absent", {"rsa": 5})
    present = agent("present", {"rsa": 2})
    call = arrive(q)
    do_route_pending()
    offer = pending_offer(call)
    assert offer.agent == absent

    later = timezone.now() + timedelta(seconds=21)  # voice offers last 20 s
    with pytest.raises(OfferNotPending, match="expired"):
        do_accept_offer(offer_id=offer.pk, agent=absent, now=later)
    assert do_expire_offers(now=later) == 1

    offer.refresh_from_db()
    assert offer.status == OfferStatus.EXPIRED
    presence = AgentPresence.objects.get(agent=absent)
    assert presence.state == AgentState.PAUSED
    assert presence.pause_reason == PauseReason.MISSED
    do_route_pending(now=later)
    assert pending_offer(call).agent == present


def test_voice_is_exclusive_and_chat_capacity_is_respected(
    queue: Any, agent: Any, arrive: Any
) -> None:
    voice_q = queue("voice-q", {"x": 1})
    chat_q = queue("chat-q", {"x": 1})
    solo = agent("solo", {"x": 3})
    call = arrive(voice_q, "voice")
    chats = [arrive(chat_q, "chat") for _ in range(4)]
    do_route_pending()
    # The call goes first (same priority, it arrived first); then nothing else.
    assert pending_offer(call).agent == solo
    assert Offer.objects.filter(channel="chat").count() == 0

    do_accept_offer(offer_id=pending_offer(call).pk, agent=solo)
    do_transition_interaction(interaction=Interaction.objects.get(pk=call.pk), to=Status.WRAP_UP)
    do_transition_interaction(interaction=Interaction.objects.get(pk=call.pk), to=Status.CLOSED)
    do_route_pending()
    # Free again: at most 3 chats at once.
    assert Offer.objects.filter(channel="chat", status=OfferStatus.PENDING).count() == 3
    assert Interaction.objects.filter(pk__in=[c.pk for c in chats], status="queued").count() == 1


def test_an_agent_whose_console_is_gone_gets_nothing(queue: Any, agent: Any, arrive: Any) -> None:
    q = queue("q", {"x": 1})
    old = timezone.now() - timedelta(seconds=120)
    ghost = agent("ghost", {"x": 5}, now=old)  # last heartbeat two minutes ago
    alive = agent("alive", {"x": 1})
    call = arrive(q)
    do_route_pending()
    assert pending_offer(call).agent == alive
    assert do_heartbeat(agent_id=ghost.pk)  # the console comes back...
    chat = arrive(q, "chat")
    do_route_pending()
    assert pending_offer(chat).agent == ghost  # ...and is offered work again


def test_paused_offline_and_channel_toggles(queue: Any, agent: Any, arrive: Any) -> None:
    q = queue("q", {"x": 1})
    a = agent("a", {"x": 5})
    do_set_agent_state(agent=a, state=AgentState.PAUSED, reason=PauseReason.LUNCH)
    call = arrive(q)
    do_route_pending()
    assert not Offer.objects.exists()
    with pytest.raises(PresenceError, match="reason"):
        do_set_agent_state(agent=a, state=AgentState.PAUSED, reason="")
    do_set_agent_state(agent=a, state=AgentState.AVAILABLE)
    do_set_channels(agent=a, channels=["email", "sms"])
    do_route_pending()
    assert not Offer.objects.exists()  # no calls today
    do_set_channels(agent=a, channels=["voice"])
    do_route_pending()
    assert pending_offer(call).agent == a
    with pytest.raises(PresenceError, match="unknown channels"):
        do_set_channels(agent=a, channels=["pigeon"])


def test_escalation_accepts_a_lower_level_after_the_step(
    queue: Any, agent: Any, arrive: Any
) -> None:
    q = queue("sejour", {"sejour": 4})
    EscalationStep.objects.create(queue=q, after_seconds=30, min_level_cap=2)
    start = timezone.now()
    junior = agent("junior", {"sejour": 2}, now=start + timedelta(seconds=31))
    call = arrive(q, now=start)
    do_route_pending(now=start + timedelta(seconds=10))
    assert not Offer.objects.exists()
    do_route_pending(now=start + timedelta(seconds=31))
    offer = pending_offer(call)
    assert offer.agent == junior
    assert offer.decision.details["requirements"]["skills"] == {"sejour": 2}


def test_overflow_moves_the_interaction_to_another_queue(
    queue: Any, agent: Any, arrive: Any
) -> None:
    accueil = queue("accueil", {"accueil": 1})
    logement = queue("logement", {"apl": 3})
    EscalationStep.objects.create(queue=logement, after_seconds=60, overflow_to=accueil)
    start = timezone.now()
    generalist = agent("generalist", {"accueil": 3}, now=start + timedelta(seconds=61))
    call = arrive(logement, now=start)
    result = do_route_pending(now=start + timedelta(seconds=61))
    assert result.overflowed == 1
    call.refresh_from_db()
    assert call.queue == accueil
    assert call.required_skills == {"accueil": 1}
    do_route_pending(now=start + timedelta(seconds=62))
    assert pending_offer(call).agent == generalist
    assert RoutingDecision.objects.filter(interaction=call, action="overflow").exists()


def test_auto_accept_channels_assign_directly(
    queue: Any, agent: Any, arrive: Any, settings: Any
) -> None:
    settings.ROUTING_AUTO_ACCEPT_CHANNELS = ["email"]
    q = queue("q", {"x": 1})
    a = agent("a", {"x": 1})
    mail = arrive(q, "email")
    result = do_route_pending()
    assert result.assigned == 1
    mail.refresh_from_db()
    assert mail.status == Status.ASSIGNED
    assert mail.assigned_agent == a
    assert list(
        InteractionTransition.objects.filter(interaction=mail).values_list("to_status", flat=True)
    ) == ["queued", "offered", "assigned"]


def test_queued_interaction_and_available_agent_trigger_routing_after_commit(
    queue: Any, agent: Any, arrive: Any, django_capture_on_commit_callbacks: Any
) -> None:
    q = queue("q", {"x": 1})
    a = agent("a", {"x": 1}, available=False)
    with django_capture_on_commit_callbacks(execute=True):
        call = arrive(q)
    assert not Offer.objects.exists()  # nobody available yet
    with django_capture_on_commit_callbacks(execute=True):
        do_set_agent_state(agent=a, state=AgentState.AVAILABLE)
    # The agent becoming available triggered a routing pass (eager Celery in tests).
    assert pending_offer(call).agent == a


def test_the_sweep_routes_what_an_event_missed_and_expires_offers(
    queue: Any, agent: Any, arrive: Any
) -> None:
    q = queue("q", {"x": 1})
    agent("a", {"x": 1})
    call = arrive(q)  # inside the test transaction: no on-commit trigger ran
    assert not Offer.objects.exists()
    result = sweep.apply().get(disable_sync_subtasks=False)
    assert result["claimed"] == 1
    assert pending_offer(call)


def test_voice_wrap_up_keeps_the_agent_busy_until_the_timer(
    queue: Any, agent: Any, arrive: Any, settings: Any
) -> None:
    settings.ROUTING_WRAP_UP_SECONDS = 30
    q = queue("q", {"x": 1})
    a = agent("a", {"x": 1})
    call = arrive(q)
    do_route_pending()
    do_accept_offer(offer_id=pending_offer(call).pk, agent=a)
    call.refresh_from_db()
    do_transition_interaction(interaction=call, to=Status.WRAP_UP)
    assert AgentPresence.objects.get(agent=a).state == AgentState.WRAP_UP
    second = arrive(q)
    do_route_pending()
    assert not Offer.objects.filter(interaction=second).exists()
    from agents.presence import do_end_wrap_ups

    assert do_end_wrap_ups(now=timezone.now() + timedelta(seconds=31)) == 1
    do_route_pending()
    assert pending_offer(second).agent == a


def test_a_caller_hanging_up_during_the_offer_cancels_it_without_pausing_the_agent(
    queue: Any, agent: Any, arrive: Any
) -> None:
    q = queue("q", {"x": 1})
    a = agent("a", {"x": 1})
    call = arrive(q)
    do_route_pending()
    offer = pending_offer(call)
    call.refresh_from_db()
    do_transition_interaction(interaction=call, to=Status.ABANDONED, reason="caller_hung_up")
    offer.refresh_from_db()
    assert offer.status == OfferStatus.CANCELLED
    assert do_expire_offers(now=timezone.now() + timedelta(minutes=5)) == 0
    assert AgentPresence.objects.get(agent=a).state == AgentState.AVAILABLE


def test_an_accepted_call_for_an_agent_without_a_phone_number_goes_back_to_the_queue(
    queue: Any, agent: Any, arrive: Any
) -> None:
    # (the voice channel raises NoAgentNumber when bridging, then does this)
    from channels_inbound.voice.actions import do_requeue_unreachable

    q = queue("q", {"x": 1})
    no_phone = agent("no_phone", {"x": 5})  # telework_phone is empty
    other = agent("other", {"x": 1}, telework_phone="+33612345678")
    call = arrive(q)
    do_route_pending()
    offer = pending_offer(call)
    assert offer.agent == no_phone
    do_accept_offer(offer_id=offer.pk, agent=no_phone)
    do_requeue_unreachable(interaction_id=call.pk, agent_id=no_phone.pk)
    call.refresh_from_db()
    assert call.status == Status.QUEUED
    assert "voice" not in AgentPresence.objects.get(agent=no_phone).channels_enabled
    do_route_pending()
    assert pending_offer(call).agent == other
