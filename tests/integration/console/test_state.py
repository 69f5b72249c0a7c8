"""Old state + events == fresh state: a console that applies every event it receives (live or
replayed) ends where a console that reloads would be (the Zulip model)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from agents.models import AgentState, PauseReason
from agents.presence import do_set_agent_state, do_set_channels
from console.actions import do_add_note, do_close_interaction, do_start_wrap_up
from console.models import AgentEvent
from console.outbox import do_prune_agent_events, events_after, serialise
from console.state import apply_event, build_snapshot
from interactions.actions import do_record_message
from interactions.models import Interaction
from routing.claims import do_route_pending
from routing.models import Offer
from routing.offers import do_accept_offer, do_decline_offer, do_expire_offers
from routing.transfers import do_offer_to_agent, do_transfer_to_queue

pytestmark = pytest.mark.django_db


def _replay(state: dict[str, Any], agent_id: int) -> dict[str, Any]:
    for event in AgentEvent.objects.filter(agent_id=agent_id, pk__gt=state["last_event_id"]):
        state = apply_event(state, serialise(event))
    return state


def _same(old: dict[str, Any], fresh: dict[str, Any]) -> None:
    assert old["agent"] == fresh["agent"]
    assert old["interactions"] == fresh["interactions"]
    assert old["offers"] == fresh["offers"]
    assert old["last_event_id"] == fresh["last_event_id"]


def test_old_state_plus_events_equals_fresh_state_through_a_whole_day(
    agent: Callable[..., Any], queue: Callable[..., Any], arrive: Callable[..., Any]
) -> None:
    # given two agents and two consoles loaded before anything happens
    caf = queue("caf", needs={"rsa": 2})
    other_queue = queue("mairie")
    alice = agent("alice", {"rsa": 5})
    bob = agent("bob", {"rsa": 2})
    alice_old, bob_old = build_snapshot(alice), build_snapshot(bob)

    # when a day of work happens
    first = arrive(caf, "email", subject="RSA")
    do_route_pending()
    offer = Offer.objects.get(interaction=first)
    assert offer.agent_id == alice.pk  # the more competent one
    do_decline_offer(offer_id=offer.pk, agent=alice)
    do_route_pending()
    to_bob = Offer.objects.get(interaction=first, status="pending")
    assert to_bob.agent_id == bob.pk
    do_accept_offer(offer_id=to_bob.pk, agent=bob)
    first.refresh_from_db()
    do_record_message(interaction=first, direction="inbound", text="Bonjour")
    do_add_note(interaction_id=first.pk, agent=bob, text="rappeler lundi")
    second = arrive(caf, "sms")
    do_route_pending()
    do_accept_offer(offer_id=Offer.objects.get(interaction=second).pk, agent=alice)
    do_offer_to_agent(interaction_id=second.pk, agent=alice, target=bob, note="déjà rappelé")
    do_accept_offer(offer_id=Offer.objects.get(interaction=second, status="pending").pk, agent=bob)
    do_transfer_to_queue(interaction_id=first.pk, agent=bob, queue=other_queue)
    do_start_wrap_up(interaction_id=second.pk, agent=bob)
    do_set_channels(agent=alice, channels=["email", "sms"])
    do_set_agent_state(agent=alice, state=AgentState.PAUSED, reason=PauseReason.LUNCH)
    third = arrive(other_queue, "email")
    # third goes to bob, the only one available; first (now in mairie) does not go back to bob,
    # who transferred it there, while alice could take it
    do_route_pending()
    pending = Offer.objects.filter(agent=bob, status="pending").order_by("pk")
    assert [o.interaction_id for o in pending] == [third.pk]
    do_expire_offers(now=timezone.now() + timedelta(minutes=10))
    do_close_interaction(interaction_id=second.pk, agent=bob, code=None, notes="ok")
    do_set_agent_state(agent=bob, state=AgentState.AVAILABLE)
    do_route_pending()

    # then old state + events == fresh state, for both agents
    _same(_replay(alice_old, alice.pk), build_snapshot(alice))
    _same(_replay(bob_old, bob.pk), build_snapshot(bob))
    assert Interaction.objects.get(pk=third.pk).status in {"queued", "offered"}

    # and so it is when any one event arrives late (missed live, pushed by the server after
    # the newer ones): an older event never undoes a newer one nor brings an ended offer back
    for someone, old in ((alice, alice_old), (bob, bob_old)):
        fresh = build_snapshot(someone)
        events = [
            serialise(e)
            for e in AgentEvent.objects.filter(agent_id=someone.pk, pk__gt=old["last_event_id"])
        ]
        assert len(events) >= 5
        for late in range(len(events)):
            state = old
            for event in [*events[:late], *events[late + 1 :], events[late]]:
                state = apply_event(state, event)
            _same(state, fresh)


def test_a_snapshot_mid_flow_plus_later_events_equals_fresh_state(
    agent: Callable[..., Any], queue: Callable[..., Any], arrive: Callable[..., Any]
) -> None:
    caf = queue("caf")
    alice = agent("alice")
    arrive(caf, "email")
    do_route_pending()
    mid = build_snapshot(alice)  # an offer is pending here
    assert len(mid["offers"]) == 1
    offer_id = int(next(iter(mid["offers"])))
    do_accept_offer(offer_id=offer_id, agent=alice)
    fresh = build_snapshot(alice)
    assert fresh["offers"] == {}
    assert len(fresh["interactions"]) == 1
    _same(_replay(mid, alice.pk), fresh)
    # applying the same events twice changes nothing (replay overlap is harmless)
    twice = {**_replay(mid, alice.pk), "last_event_id": mid["last_event_id"]}
    _same(_replay(twice, alice.pk), fresh)


def test_replay_sends_missed_events_or_asks_for_a_snapshot_once_pruned(
    agent: Callable[..., Any],
) -> None:
    alice = agent("alice")
    do_set_agent_state(agent=alice, state=AgentState.PAUSED, reason=PauseReason.BREAK)
    first = AgentEvent.objects.filter(agent_id=alice.pk).latest("id")
    do_set_agent_state(agent=alice, state=AgentState.AVAILABLE)
    later = timezone.now() + timedelta(minutes=5)  # beyond the overlap window
    events = events_after(alice.pk, first.pk, now=later)
    assert events is not None
    assert [e["event"] for e in events] == ["agent.state"]
    assert events[0]["payload"]["state"] == "available"
    # unknown id (never given, or pruned) -> snapshot
    assert events_after(alice.pk, first.pk + 10_000) is None
    assert events_after(alice.pk, 0) is None
    removed = do_prune_agent_events(now=timezone.now() + timedelta(days=2))
    assert removed >= 2
    assert events_after(alice.pk, first.pk) is None


def test_events_roll_back_with_the_write_that_caused_them(agent: Callable[..., Any]) -> None:
    from django.db import transaction

    alice = agent("alice")
    before = AgentEvent.objects.count()

    def change_then_fail() -> None:
        with transaction.atomic():
            do_set_agent_state(agent=alice, state=AgentState.OFFLINE)
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        change_then_fail()
    assert AgentEvent.objects.count() == before
