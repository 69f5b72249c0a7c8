"""An agent's own page (/console/activity/): today's figures from the supervisors' report engine
(handled, average handling time, satisfaction), and a search of the past conversations the agent
handled (citizen, reference, words, dates), paginated; never a colleague's or another
organisation's; bad dates answered in words; each search and each reading in the access log."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from configuration.models import Queue
from contacts.actions import resolve_contact
from contacts.models import Case
from interactions.actions import do_create_interaction, do_record_message, do_transition_interaction
from interactions.lifecycle import Status
from interactions.models import Interaction
from organisations.models import Membership, Organisation
from privacy.models import AccessLog
from supervision.models import SatisfactionResponse
from supervision.periods import PARIS, Period
from supervision.reports import ReportFilter
from supervision.rollup import period_report

pytestmark = pytest.mark.django_db


def _handled(
    agent: Any,
    queue: Queue,
    *,
    minutes: int,
    phone: str = "+33612345678",
    text: str = "Bonjour, où en est mon dossier ?",
    csat: int | None = None,
    days_ago: int = 0,
) -> Interaction:
    """A conversation answered by ``agent`` after a minute, handled for ``minutes``, closed.

    It came two hours ago, but never before today's midnight in Paris (``days_ago`` days
    back): "today" is the day of the page, also between midnight and 2 a.m."""
    now = timezone.now()
    midnight = timezone.localtime(now, PARIS).replace(hour=0, minute=0, second=0, microsecond=0)
    at = max(now - timedelta(hours=2), midnight) - timedelta(days=days_ago)
    contact = resolve_contact("phone", phone).contact
    interaction = do_create_interaction(
        channel="sms", contact=contact, queue=queue, subject="Dossier", now=at
    )
    do_record_message(interaction=interaction, direction="inbound", text=text)
    answered = at + timedelta(minutes=1)
    do_transition_interaction(
        interaction=interaction,
        to=Status.ASSIGNED,
        now=answered,
        actor=agent.user,
        extra={"assigned_agent": agent},
    )
    end = answered + timedelta(minutes=minutes)
    do_transition_interaction(interaction=interaction, to=Status.WRAP_UP, now=end)
    do_transition_interaction(interaction=interaction, to=Status.CLOSED, now=end)
    if csat is not None:
        SatisfactionResponse.objects.create(interaction=interaction, score=csat, at=end)
    Interaction.objects.filter(pk=interaction.pk).update(created_at=at)
    return interaction


@pytest.fixture
def world(make_user: Callable[..., Any], queue: Callable[..., Queue]) -> dict[str, Any]:
    caf = queue("caf")
    alice = make_user("alice", first_name="Alice").agent_profile
    bob = make_user("bob", first_name="Bob").agent_profile
    return {"queue": caf, "alice": alice, "bob": bob}


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_todays_figures_are_the_reports_for_the_agent(world: dict[str, Any]) -> None:
    alice, bob, caf = world["alice"], world["bob"], world["queue"]
    _handled(alice, caf, minutes=4, csat=5)
    _handled(alice, caf, minutes=8, csat=2)
    _handled(alice, caf, minutes=6)
    _handled(bob, caf, minutes=30, csat=1)  # a colleague's: not Alice's figures
    _handled(alice, caf, minutes=50, days_ago=3)  # not today
    page = _client(alice.user).get("/console/activity/")
    assert page.status_code == 200
    figures = page.context["figures"]
    day = timezone.localtime(timezone.now(), PARIS).date()
    report = period_report(Period(day, day), ReportFilter(agent_id=alice.pk))
    assert figures == report.total  # the supervisors' engine, filtered on her
    assert figures.handled == 3
    assert figures.aht_s == pytest.approx(6 * 60)
    assert (figures.csat_responses, figures.csat_satisfied) == (2, 1)
    html = page.content.decode()
    assert '<span class="value">3</span> conversations traitées' in html
    assert "50&nbsp;%" in html  # one satisfied answer of two
    assert "6 min 00 s" in html


def test_the_search_finds_only_the_agents_own_conversations(world: dict[str, Any]) -> None:
    alice, bob, caf = world["alice"], world["bob"], world["queue"]
    mine = _handled(alice, caf, minutes=3, phone="+33611111111", text="Attestation de paiement")
    _handled(alice, caf, minutes=3, phone="+33622222222", text="Changement d'adresse")
    theirs = _handled(bob, caf, minutes=3, phone="+33611111111", text="Attestation de paiement")
    assert mine.contact is not None
    case = Case.objects.create(contact=mine.contact, reference="DOS-2026-0042", subject="APL")
    Interaction.objects.filter(pk=mine.pk).update(case=case)
    client = _client(alice.user)

    def found(**query: str) -> list[int]:
        page = client.get("/console/activity/", query)
        assert page.status_code == 200
        return [i.pk for i in page.context["page"].object_list]

    # the number as the citizen gives it, in any form
    assert found(citizen="06 11 11 11 11") == [mine.pk]
    assert found(text="attestation") == [mine.pk]  # never Bob's conversation
    assert found(reference="DOS-2026-0042") == [mine.pk]
    assert found(reference=f"#{mine.pk}") == [mine.pk]
    assert found(reference=str(theirs.pk)) == []
    today = timezone.localtime(timezone.now(), PARIS).date()
    assert len(found(**{"from": today.isoformat(), "to": today.isoformat()})) == 2
    assert found(**{"to": (today - timedelta(days=1)).isoformat()}) == []
    # a colleague's conversation cannot be read by its address either
    assert client.get(f"/console/activity/conversations/{theirs.pk}/").status_code == 404
    reading = client.get(f"/console/activity/conversations/{mine.pk}/")
    assert reading.status_code == 200
    assert "Attestation de paiement" in reading.content.decode()
    # searches and readings are in the access log, without the words searched
    searches = AccessLog.objects.filter(actor_id=alice.user.pk, action="search")
    assert searches.count() == 7
    assert all("attestation" not in str(s.details).lower() for s in searches)
    assert AccessLog.objects.filter(
        actor_id=alice.user.pk, action="view_thread", object_id=str(mine.pk)
    ).exists()


def test_bad_dates_are_answered_in_words(world: dict[str, Any]) -> None:
    client = _client(world["alice"].user)
    page = client.get("/console/activity/", {"from": "hier", "to": "2026-13-45"})
    assert page.status_code == 200
    html = page.content.decode()
    assert "donnez une date comme 2026-12-03" in html
    assert page.context["page"].paginator.count == 0
    page = client.get("/console/activity/", {"from": "2026-12-03", "to": "2026-12-01"})
    assert "La date de fin est avant la date de début." in page.content.decode()


def test_results_are_paginated(world: dict[str, Any]) -> None:
    alice, caf = world["alice"], world["queue"]
    for n in range(23):
        _handled(alice, caf, minutes=1, phone=f"+336120000{n:02}")
    client = _client(alice.user)
    first = client.get("/console/activity/", {"text": "dossier"})
    assert first.context["page"].paginator.count == 23
    assert len(first.context["page"].object_list) == 20
    assert "page=2" in first.content.decode()
    second = client.get("/console/activity/", {"text": "dossier", "page": "2"})
    assert len(second.context["page"].object_list) == 3
    assert "text=dossier" in second.content.decode()  # the pages keep the search


def test_another_organisations_agent_sees_nothing_of_ours(
    world: dict[str, Any], make_user: Callable[..., Any]
) -> None:
    mine = _handled(world["alice"], world["queue"], minutes=2, text="Attestation")
    stranger = make_user("eve").agent_profile
    other = Organisation.objects.create(name="Mairie de Lyon", slug="mairie-lyon")
    Membership.objects.filter(user=stranger.user).update(organisation=other)
    stranger.organisation = other
    stranger.save(update_fields=["organisation"])
    client = _client(stranger.user)
    assert (
        client.get("/console/activity/", {"text": "attestation"}).context["page"].paginator.count
        == 0
    )
    assert client.get(f"/console/activity/conversations/{mine.pk}/").status_code == 404
