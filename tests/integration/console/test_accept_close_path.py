"""Accepting an offer and closing an interaction from the console (issue 13): what the agent's
consoles are told, in which order and with which summary of the interaction, what the audit
trail records, and how many statements each step costs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.test import Client
from django.utils import timezone

from agents.models import AgentProfile
from configuration.models import Queue
from console.actions import do_close_interaction
from console.models import AgentEvent, InteractionWrapUp, WrapUpCode
from contacts.actions import resolve_contact
from interactions.actions import StaleTransition, do_create_interaction, do_transition_interaction
from interactions.models import Interaction, InteractionTransition
from routing.models import Offer, OfferStatus

pytestmark = pytest.mark.django_db

JSON = {"accept": "application/json"}


@pytest.fixture
def alice(make_user: Callable[..., Any]) -> Any:
    return make_user("alice", first_name="Alice")


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _offered(agent: AgentProfile, channel: str = "sms") -> tuple[Interaction, Offer]:
    queue = Queue.objects.get_or_create(code="caf", defaults={"name": "CAF"})[0]
    contact = resolve_contact("phone", "+33612345678").contact  # no name: its number shows
    interaction = do_create_interaction(
        channel=channel, contact=contact, queue=queue, subject="Question"
    )
    now = timezone.now()
    do_transition_interaction(
        interaction=interaction, to="offered", now=now, extra={"assigned_agent": agent}
    )
    offer = Offer.objects.create(
        interaction=interaction,
        agent=agent,
        channel=channel,
        created_at=now,
        expires_at=now + timedelta(seconds=60),
    )
    return interaction, offer


def _events(agent: AgentProfile, after: int = 0) -> list[tuple[str, dict[str, Any]]]:
    return [
        (e.event, e.payload)
        for e in AgentEvent.objects.filter(agent_id=agent.pk, pk__gt=after).order_by("id")
    ]


def _last_event_id() -> int:
    return AgentEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


def test_accepting_tells_the_console_the_status_then_the_offer_with_the_new_state(
    alice: Any, django_assert_max_num_queries: Any
) -> None:
    agent = alice.agent_profile
    interaction, offer = _offered(agent)
    floor = _last_event_id()
    client = _client(alice)
    client.get("/console/")  # the session and the user's rows are warm, as in a working day
    with django_assert_max_num_queries(22):
        response = client.post(f"/console/offers/{offer.pk}/accept/", headers=JSON)
    assert response.status_code == 200, response.content
    assert response.json()["interaction_id"] == interaction.pk
    offer.refresh_from_db()
    assert offer.status == OfferStatus.ACCEPTED
    assert offer.responded_at is not None
    interaction.refresh_from_db()
    assert (interaction.status, interaction.assigned_agent_id) == ("assigned", agent.pk)
    assert interaction.assigned_at == offer.responded_at
    last = InteractionTransition.objects.filter(interaction=interaction).last()
    assert last is not None
    assert (last.from_status, last.to_status, last.reason, last.actor_id) == (
        "offered",
        "assigned",
        "accepted",
        alice.pk,
    )
    events = _events(agent, floor)
    assert [name for name, _payload in events] == ["interaction.status", "offer.accepted"]
    for _name, payload in events:
        summary = payload["interaction"]
        assert (summary["id"], summary["status"], summary["agent_id"]) == (
            interaction.pk,
            "assigned",
            agent.pk,
        )
        assert summary["citizen"] == "+33612345678"
        assert summary["queue"] == "CAF"


def test_closing_tells_the_console_each_status_with_the_state_it_had_then(
    alice: Any, django_assert_max_num_queries: Any
) -> None:
    agent = alice.agent_profile
    interaction, offer = _offered(agent)
    client = _client(alice)
    assert client.post(f"/console/offers/{offer.pk}/accept/", headers=JSON).status_code == 200
    floor = _last_event_id()
    with django_assert_max_num_queries(34):
        response = client.post(
            f"/console/interactions/{interaction.pk}/close/", {"notes": " fait "}, headers=JSON
        )
    assert response.status_code == 200, response.content
    moves = list(
        InteractionTransition.objects.filter(interaction=interaction)
        .order_by("id")
        .values_list("from_status", "to_status", "reason", "actor_id")
    )
    assert moves[-2:] == [
        ("assigned", "wrap_up", "agent_wrap_up", alice.pk),
        ("wrap_up", "closed", "agent_closed", alice.pk),
    ]
    interaction.refresh_from_db()
    assert interaction.status == "closed"
    assert interaction.wrap_up_at == interaction.closed_at is not None
    wrap_up = InteractionWrapUp.objects.get(interaction=interaction)
    assert (wrap_up.code, wrap_up.notes, wrap_up.agent_id) == (None, "fait", agent.pk)
    events = _events(agent, floor)
    assert [(n, p["to"], p["interaction"]["status"]) for n, p in events] == [
        ("interaction.status", "wrap_up", "wrap_up"),
        ("interaction.status", "closed", "closed"),
    ]


def test_closing_again_after_a_reopening_replaces_the_wrap_up(alice: Any) -> None:
    agent = alice.agent_profile
    interaction, offer = _offered(agent)
    code = WrapUpCode.objects.create(code="answered", label="Réponse apportée")
    client = _client(alice)
    assert client.post(f"/console/offers/{offer.pk}/accept/", headers=JSON).status_code == 200
    do_close_interaction(interaction_id=interaction.pk, agent=agent, code=None, notes="first")
    interaction.refresh_from_db()
    do_transition_interaction(interaction=interaction, to="queued", reason="reopened")
    do_transition_interaction(
        interaction=interaction, to="assigned", extra={"assigned_agent": agent}
    )
    response = client.post(
        f"/console/interactions/{interaction.pk}/close/",
        {"code": code.pk, "notes": "second"},
        headers=JSON,
    )
    assert response.status_code == 200, response.content
    wrap_up = InteractionWrapUp.objects.get(interaction=interaction)
    assert (wrap_up.code, wrap_up.notes) == (code, "second")


def test_closing_what_is_no_longer_yours_changes_nothing(
    alice: Any, make_user: Callable[..., Any]
) -> None:
    bob = make_user("bob").agent_profile
    interaction, offer = _offered(bob)
    assert (
        _client(alice).post(f"/console/offers/{offer.pk}/accept/", headers=JSON).status_code == 409
    )
    offer.refresh_from_db()
    assert offer.status == OfferStatus.PENDING
    response = _client(alice).post(
        f"/console/interactions/{interaction.pk}/close/", {"notes": "x"}, headers=JSON
    )
    assert response.status_code == 409
    assert not InteractionWrapUp.objects.filter(interaction=interaction).exists()


def test_a_stale_status_change_leaves_the_callers_transaction_usable(alice: Any) -> None:
    """A caller that catches a stale change (another worker moved the interaction first) goes
    on in its transaction: nothing of the change was written."""
    interaction, _offer = _offered(alice.agent_profile)
    stale = Interaction.objects.get(pk=interaction.pk)
    stale.status = "queued"  # what it was when read; it is offered now
    count = InteractionTransition.objects.filter(interaction=interaction).count()
    with transaction.atomic():
        with pytest.raises(StaleTransition):
            do_transition_interaction(interaction=stale, to="offered")
        assert InteractionTransition.objects.filter(interaction=interaction).count() == count
    interaction.refresh_from_db()
    assert interaction.status == "offered"
