"""Organisations as separate data controllers: records, citizens, routing and the model rules.

Two bodies (a CAF and a mairie) share one installation, with skills of the same code: nothing
of one is ever linked to, resolved as, or routed to the other.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from agents.models import AgentPresence, AgentProfile, AgentSkill, AgentState
from channels_inbound.ingest import InboundMessage, do_ingest_message
from channels_inbound.models import Endpoint
from configuration.models import Queue, QueueSkill, Skill, Team
from contacts.actions import ContactError, do_merge_contacts, resolve_contact
from contacts.models import Contact
from interactions.actions import do_create_interaction
from interactions.lifecycle import Status
from interactions.models import Interaction
from organisations.models import (
    Organisation,
    OrganisationMismatch,
    OrganisationRequired,
    sole_organisation,
)
from routing.claims import do_route_pending
from routing.errors import TransferError
from routing.models import Offer
from routing.transfers import do_transfer_to_queue

pytestmark = pytest.mark.django_db

NUMBER = "+33612345678"


@pytest.fixture
def caf() -> Organisation:
    return Organisation.objects.create(name="CAF du Rhône", slug="caf")


@pytest.fixture
def mairie() -> Organisation:
    return Organisation.objects.create(name="Mairie de Villeurbanne", slug="mairie")


def _queue(org: Organisation, code: str, skill_code: str | None = "accueil") -> Queue:
    team, _ = Team.objects.get_or_create(organisation=org, name=f"Équipe {org.slug}")
    queue = Queue.objects.create(organisation=org, code=code, name=code, team=team)
    if skill_code:
        skill, _ = Skill.objects.get_or_create(
            organisation=org, code=skill_code, defaults={"name": skill_code}
        )
        QueueSkill.objects.create(queue=queue, skill=skill, min_level=1)
    return queue


def _agent(org: Organisation, username: str, skills: dict[str, int]) -> AgentProfile:
    user = get_user_model().objects.create_user(username, password="x")
    team = Team.objects.filter(organisation=org).first()
    profile = AgentProfile.objects.create(user=user, team=team, languages=["fr"])
    for code, level in skills.items():
        skill, _ = Skill.objects.get_or_create(organisation=org, code=code, defaults={"name": code})
        AgentSkill.objects.create(agent=profile, skill=skill, level=level)
    now = timezone.now()
    AgentPresence.objects.filter(agent=profile).update(
        state=AgentState.AVAILABLE, last_heartbeat_at=now, state_since=now, idle_since=now
    )
    return profile


def _sms(endpoint: Endpoint, sid: str, text: str = "Bonjour") -> Any:
    return do_ingest_message(
        InboundMessage(
            channel="sms", sender=NUMBER, recipient=endpoint.address, text=text, provider_id=sid
        )
    )


def test_the_same_number_writing_to_two_bodies_is_two_citizens(
    caf: Organisation, mairie: Organisation
) -> None:
    # given: a number of each body
    caf_number = Endpoint.objects.create(
        channel="sms", address="+33400000001", name="CAF", queue=_queue(caf, "caf")
    )
    mairie_number = Endpoint.objects.create(
        channel="sms", address="+33400000002", name="Mairie", queue=_queue(mairie, "mairie")
    )
    # when: one citizen writes to both
    to_caf = _sms(caf_number, "SM1")
    to_mairie = _sms(mairie_number, "SM2")
    # then: each body has its own record and its own conversation, nothing shared
    assert to_caf.interaction.contact_id != to_mairie.interaction.contact_id
    assert to_caf.interaction.organisation_id == caf.pk
    assert to_mairie.interaction.organisation_id == mairie.pk
    caf_citizen = Contact.objects.get(pk=to_caf.interaction.contact_id)
    assert caf_citizen.organisation_id == caf.pk
    assert list(caf_citizen.interactions.values_list("pk", flat=True)) == [to_caf.interaction.pk]
    # and a second SMS to the CAF joins the CAF's open conversation only
    again = _sms(caf_number, "SM3", "Encore moi")
    assert again.interaction.pk == to_caf.interaction.pk


def test_citizens_are_resolved_per_organisation(caf: Organisation, mairie: Organisation) -> None:
    first = resolve_contact("phone", "06 12 34 56 78", organisation_id=caf.pk)
    second = resolve_contact("phone", "06 12 34 56 78", organisation_id=mairie.pk)
    again = resolve_contact("phone", "+33 6 12 34 56 78", organisation_id=caf.pk)
    assert first.created
    assert second.created
    assert not again.created
    assert again.contact == first.contact
    assert first.contact != second.contact
    assert first.contact is not None
    assert second.contact is not None
    with pytest.raises(ContactError):
        do_merge_contacts(target=first.contact, source=second.contact)


def test_routing_never_offers_another_bodys_interaction_even_with_the_same_skill_code(
    caf: Organisation, mairie: Organisation
) -> None:
    # given: both bodies have a skill "accueil"; only a CAF agent is available
    caf_queue = _queue(caf, "caf")
    mairie_queue = _queue(mairie, "mairie")
    mairie_open = _queue(mairie, "mairie-sans-competence", skill_code=None)
    caf_agent = _agent(caf, "camille", {"accueil": 5})
    # when: a citizen calls the mairie (with and without required skills) and the router runs
    mairie_call = do_create_interaction(channel="voice", contact=None, queue=mairie_queue)
    mairie_chat = do_create_interaction(channel="chat", contact=None, queue=mairie_open)
    do_route_pending()
    # then: the CAF agent is offered nothing of the mairie's
    assert not Offer.objects.filter(agent=caf_agent).exists()
    mairie_call.refresh_from_db()
    mairie_chat.refresh_from_db()
    assert mairie_call.status == Status.QUEUED
    assert mairie_chat.status == Status.QUEUED
    # and the CAF's own call does reach them
    caf_call = do_create_interaction(channel="voice", contact=None, queue=caf_queue)
    do_route_pending()
    assert Offer.objects.get(agent=caf_agent).interaction_id == caf_call.pk
    # and a mairie agent gets the mairie's waiting interactions
    mairie_agent = _agent(mairie, "chloe", {"accueil": 2})
    do_route_pending()
    assert set(Offer.objects.filter(agent=mairie_agent).values_list("interaction", flat=True)) <= {
        mairie_call.pk,
        mairie_chat.pk,
    }
    assert Offer.objects.filter(agent=mairie_agent).exists()


def test_records_cannot_link_two_organisations(caf: Organisation, mairie: Organisation) -> None:
    caf_queue = _queue(caf, "caf")
    mairie_citizen = resolve_contact("phone", NUMBER, organisation_id=mairie.pk).contact
    with pytest.raises(OrganisationMismatch):
        Interaction.objects.create(channel="sms", contact=mairie_citizen, queue=caf_queue)
    with pytest.raises(OrganisationMismatch):
        Endpoint.objects.create(
            channel="sms", address="+33400000009", name="x", queue=caf_queue, organisation=mairie
        )
    mairie_team = Team.objects.create(organisation=mairie, name="Accueil")
    with pytest.raises(OrganisationMismatch):
        Queue.objects.create(organisation=caf, code="q", name="q", team=mairie_team)


def test_an_agent_cannot_transfer_to_another_bodys_queue(
    caf: Organisation, mairie: Organisation
) -> None:
    caf_queue = _queue(caf, "caf")
    mairie_queue = _queue(mairie, "mairie")
    agent = _agent(caf, "camille", {"accueil": 5})
    call = do_create_interaction(channel="voice", contact=None, queue=caf_queue)
    Interaction.objects.filter(pk=call.pk).update(status=Status.ASSIGNED, assigned_agent=agent)
    with pytest.raises(TransferError) as refused:
        do_transfer_to_queue(interaction_id=call.pk, agent=agent, queue=mairie_queue)
    assert refused.value.code == "other_organisation"
    call.refresh_from_db()
    assert call.queue_id == caf_queue.pk
    assert call.status == Status.ASSIGNED


def test_a_new_record_needs_its_organisation_once_there_are_several(caf: Organisation) -> None:
    # A single-body installation never has to name it...
    assert sole_organisation() == caf.pk
    assert Skill.objects.create(code="rsa", name="RSA").organisation_id == caf.pk
    # ...but with two bodies nothing is guessed.
    Organisation.objects.create(name="Préfecture du Rhône", slug="prefecture")
    with pytest.raises(OrganisationRequired):
        Skill.objects.create(code="sejour", name="Titres de séjour")
    # Children still take their parent's organisation.
    queue = Queue.objects.create(organisation=caf, code="caf", name="CAF")
    assert Endpoint.objects.create(
        channel="sms", address="+33400000003", name="CAF", queue=queue
    ).organisation_id == (caf.pk)
