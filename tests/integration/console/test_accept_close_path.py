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


def offered(
    agent: AgentProfile, channel: str = "sms", number: str = "+33612345678"
) -> tuple[Interaction, Offer]:
    """A citizen's interaction of ``agent``'s organisation, offered to ``agent`` (also used by
    test_socket_actions.py)."""
    queue = Queue.objects.get_or_create(
        code="caf", organisation=agent.organisation, defaults={"name": "CAF"}
    )[0]
    # no name: its number shows
    contact = resolve_contact("phone", number, organisation_id=agent.organisation_id).contact
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


def _postgresql() -> bool:
    from django.db import connection

    return connection.vendor == "postgresql"


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
    interaction, offer = offered(agent)
    floor = _last_event_id()
    client = _client(alice)
    client.get("/console/")  # the session and the user's rows are warm, as in a working day
    # PostgreSQL: the request's 3, the locks, the change with the answer and its history, the
    # counters (SQLite: the ORM's reads of the history, the change in two)
    with django_assert_max_num_queries(7 if _postgresql() else 12):
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
    interaction, offer = offered(agent)
    client = _client(alice)
    assert client.post(f"/console/offers/{offer.pk}/accept/", headers=JSON).status_code == 200
    floor = _last_event_id()
    # PostgreSQL: the agent's idle clock goes with the change to wrap-up (no statement of its own)
    with django_assert_max_num_queries(13 if _postgresql() else 20):
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
    interaction, offer = offered(agent)
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
    interaction, offer = offered(bob)
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
    interaction, _offer = offered(alice.agent_profile)
    stale = Interaction.objects.get(pk=interaction.pk)
    stale.status = "queued"  # what it was when read; it is offered now
    count = InteractionTransition.objects.filter(interaction=interaction).count()
    with transaction.atomic():
        with pytest.raises(StaleTransition):
            do_transition_interaction(interaction=stale, to="offered")
        assert InteractionTransition.objects.filter(interaction=interaction).count() == count
    interaction.refresh_from_db()
    assert interaction.status == "offered"


def _day_counters() -> tuple[int, int, int]:
    from supervision.models import QueueDayStats

    rows = QueueDayStats.objects.all()
    return (
        sum(r.answered for r in rows),
        sum(r.handled for r in rows),
        sum(r.closed_unanswered for r in rows),
    )


@pytest.mark.postgres
def test_accepting_and_closing_cost_their_own_statements(
    alice: Any, django_capture_on_commit_callbacks: Any
) -> None:
    """The actions alone, as the views and the console's socket call them (PostgreSQL: the
    locks of the offer and its interaction in one statement, each status change with its
    caller's write and its history in one, the events of a closing written together)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from routing.offers import do_accept_offer

    agent = AgentProfile.objects.select_related("user").get(pk=alice.agent_profile.pk)
    interaction, offer = offered(agent)
    before = _day_counters()
    with (
        CaptureQueriesContext(connection) as accepting,
        django_capture_on_commit_callbacks(execute=True),
    ):
        do_accept_offer(offer_id=offer.pk, agent=agent)
    # the savepoint (the test's transaction) and its release, the locks, the change with the
    # offer's answer and the history, the counters after the commit
    assert len(accepting) <= 5, "\n".join(q["sql"][:100] for q in accepting.captured_queries)
    with (
        CaptureQueriesContext(connection) as closing,
        django_capture_on_commit_callbacks(execute=True),
    ):
        do_close_interaction(interaction_id=interaction.pk, agent=agent, code=None, notes="ok")
    # the savepoint and its release, the lock (with the queue's survey settings), wrap-up with
    # the agent's idle clock, the closing with the wrap-up row and the history; after the
    # commit the counters and the routing request's look for waiting work
    assert len(closing) <= 7, "\n".join(q["sql"][:100] for q in closing.captured_queries)
    touches = [q["sql"] for q in closing.captured_queries if '"idle_since"' in q["sql"]]
    assert len(touches) == 1, touches
    assert touches[0].startswith("WITH caller AS (UPDATE"), touches
    answered, handled, unanswered = (a - b for a, b in zip(_day_counters(), before, strict=True))
    assert (answered, handled, unanswered) == (1, 1, 0)
    assert InteractionWrapUp.objects.get(interaction=interaction).notes == "ok"
    offer.refresh_from_db()
    assert offer.status == OfferStatus.ACCEPTED


def test_a_closing_after_a_reopening_counts_one_answer_and_one_handling(
    alice: Any, django_capture_on_commit_callbacks: Any
) -> None:
    """The wallboard's counters from the history a status change reads with its write (or
    one read where it cannot): answered once, handled once, whatever reopenings follow."""
    from routing.offers import do_accept_offer

    agent = AgentProfile.objects.select_related("user").get(pk=alice.agent_profile.pk)
    interaction, offer = offered(agent)
    before = _day_counters()
    with django_capture_on_commit_callbacks(execute=True):
        do_accept_offer(offer_id=offer.pk, agent=agent)
        do_close_interaction(interaction_id=interaction.pk, agent=agent, code=None)
    interaction.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        do_transition_interaction(interaction=interaction, to="queued", reason="reopened")
        do_transition_interaction(
            interaction=interaction, to="assigned", extra={"assigned_agent": agent}
        )
        do_close_interaction(interaction_id=interaction.pk, agent=agent, code=None)
    assert tuple(a - b for a, b in zip(_day_counters(), before, strict=True)) == (1, 1, 0)


def test_closing_schedules_the_survey_the_queue_asks_for_its_channel(alice: Any) -> None:
    """The queue's survey settings come with the closing's lock: a survey when the queue asks
    one on SMS, none once it no longer does."""
    from routing.offers import do_accept_offer
    from surveys.models import SurveyInvitation, SurveySettings

    agent = AgentProfile.objects.select_related("user").get(pk=alice.agent_profile.pk)
    interaction, offer = offered(agent)
    assert interaction.queue is not None
    settings = SurveySettings.objects.create(queue=interaction.queue, enabled=True)
    do_accept_offer(offer_id=offer.pk, agent=agent)
    do_close_interaction(interaction_id=interaction.pk, agent=agent, code=None)
    invitation = SurveyInvitation.objects.get(interaction=interaction)
    assert invitation.channel == "sms"

    SurveySettings.objects.filter(pk=settings.pk).update(on_sms=False)
    other, other_offer = offered(agent)
    do_accept_offer(offer_id=other_offer.pk, agent=agent)
    do_close_interaction(interaction_id=other.pk, agent=agent, code=None)
    assert not SurveyInvitation.objects.filter(interaction=other).exists()
