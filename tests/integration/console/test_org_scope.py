"""The agent console with two organisations (a CAF and a mairie): the citizen panel shows the
organisation's own history, merging stays within it, transfer candidates, canned responses and
wrap-up codes are the organisation's, and another organisation's ids are not found."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client
from django.utils import timezone

from agents.models import AgentPresence, AgentProfile, AgentState
from configuration.models import Queue
from console.models import CannedResponse, InteractionWrapUp, WrapUpCode
from contacts.actions import resolve_contact
from contacts.models import Contact
from interactions.actions import do_create_interaction, do_record_message
from interactions.models import Interaction, Message
from organisations.models import Membership, Organisation
from routing.models import Offer

pytestmark = pytest.mark.django_db

JSON = {"accept": "application/json"}
NUMBER = "+33612345678"


@dataclass
class Body:
    org: Organisation
    queue: Queue
    agent: AgentProfile
    colleague: AgentProfile
    code: WrapUpCode
    canned: CannedResponse


def _agent(username: str, org: Organisation) -> AgentProfile:
    user = get_user_model().objects.create_user(username, f"{username}@example.fr", "pw-Te-26!")
    user.groups.add(Group.objects.get(name="agent"))
    Membership.objects.create(user=user, organisation=org)
    profile = AgentProfile.objects.create(user=user, organisation=org, languages=["fr"])
    now = timezone.now()
    AgentPresence.objects.filter(agent=profile).update(
        state=AgentState.AVAILABLE, last_heartbeat_at=now, state_since=now
    )
    return profile


def _body(slug: str) -> Body:
    org = Organisation.objects.create(name=f"Organisation {slug}", slug=slug)
    queue = Queue.objects.create(code="accueil", name=f"File {slug}", organisation=org)
    return Body(
        org=org,
        queue=queue,
        agent=_agent(f"agent-{slug}", org),
        colleague=_agent(f"collegue-{slug}", org),
        code=WrapUpCode.objects.create(code="ok", label=f"Réglé {slug}", organisation=org),
        canned=CannedResponse.objects.create(
            title=f"Bonjour {slug}", text=f"Réponse type {slug}", organisation=org
        ),
    )


@pytest.fixture
def bodies(roles: None) -> tuple[Body, Body]:
    return _body("caf"), _body("mairie")


def _assigned(body: Body, contact: Contact | None, subject: str = "Question") -> Interaction:
    interaction = do_create_interaction(
        channel="sms", contact=contact, queue=body.queue, subject=subject, enqueue=False
    )
    Interaction.objects.filter(pk=interaction.pk).update(
        status="assigned", assigned_agent=body.agent
    )
    interaction.refresh_from_db()
    return interaction


def _client(agent: AgentProfile) -> Client:
    client = Client()
    client.force_login(agent.user)
    return client


def _citizen(body: Body, raw: str = NUMBER) -> Contact:
    contact = resolve_contact("phone", raw, organisation_id=body.org.pk).contact
    assert contact is not None
    return contact


def test_the_citizen_panel_shows_only_the_organisations_own_history(
    bodies: tuple[Body, Body],
) -> None:
    caf, mairie = bodies
    # the same number wrote to the mairie about a birth certificate
    at_mairie = _citizen(mairie)
    old = do_create_interaction(
        channel="sms", contact=at_mairie, queue=mairie.queue, enqueue=False, subject="Naissance"
    )
    do_record_message(interaction=old, direction="inbound", text="Acte de naissance svp")
    at_caf = _citizen(caf)
    assert at_caf.pk != at_mairie.pk
    interaction = _assigned(caf, at_caf, subject="Allocations")
    client = _client(caf.agent)
    workspace = client.get(f"/console/interactions/{interaction.pk}/").content.decode()
    assert "Allocations" in workspace
    assert "Naissance" not in workspace
    assert "Acte de naissance" not in workspace
    # another organisation's citizen is not found
    assert client.get(f"/console/citizens/{at_mairie.pk}/").status_code == 404
    response = client.post(f"/console/citizens/{at_mairie.pk}/edit/", {"display_name": "X"})
    assert response.status_code == 404


def test_merging_stays_within_the_organisation(bodies: tuple[Body, Body]) -> None:
    caf, mairie = bodies
    _citizen(mairie, "+33698765432")  # known to the mairie only
    at_caf = _citizen(caf)
    _assigned(caf, at_caf)
    response = _client(caf.agent).post(
        f"/console/citizens/{at_caf.pk}/merge/", {"identity": "06 98 76 54 32"}, headers=JSON
    )
    assert response.status_code == 400
    assert not Contact.objects.filter(merged_into=at_caf).exists()


def test_transfer_candidates_canned_responses_and_codes_are_the_organisations(
    bodies: tuple[Body, Body],
) -> None:
    caf, mairie = bodies
    interaction = _assigned(caf, _citizen(caf))
    client = _client(caf.agent)
    page = client.get(f"/console/interactions/{interaction.pk}/")
    html = page.content.decode()
    assert "collegue-caf" in html
    assert "collegue-mairie" not in html
    assert "File caf" in html
    assert "File mairie" not in html
    assert "Réponse type caf" in html
    assert "Réponse type mairie" not in html
    assert "Réglé caf" in html
    assert "Réglé mairie" not in html
    # another organisation's queue or agent as a target is not found
    url = f"/console/interactions/{interaction.pk}/transfer/"
    queue_target = {"target": f"queue:{mairie.queue.pk}"}
    assert client.post(url, queue_target, headers=JSON).status_code == 404
    agent_target = {"target": f"agent:{mairie.colleague.pk}"}
    assert client.post(url, agent_target, headers=JSON).status_code == 404
    assert not Offer.objects.filter(agent=mairie.colleague).exists()
    interaction.refresh_from_db()
    assert (interaction.queue_id, interaction.status) == (caf.queue.pk, "assigned")
    # another organisation's wrap-up code is refused
    response = client.post(
        f"/console/interactions/{interaction.pk}/close/", {"code": mairie.code.pk}, headers=JSON
    )
    assert response.status_code == 400
    assert not InteractionWrapUp.objects.exists()


def test_an_agent_posting_to_another_organisations_interaction_gets_404(
    bodies: tuple[Body, Body],
) -> None:
    caf, mairie = bodies
    theirs = _assigned(mairie, _citizen(mairie))
    client = _client(caf.agent)
    base = f"/console/interactions/{theirs.pk}"
    assert client.get(f"{base}/").status_code == 404
    assert client.get(f"{base}/thread/").status_code == 404
    for action, data in [
        ("reply", {"text": "x"}),
        ("note", {"text": "x"}),
        ("wrap-up", {}),
        ("close", {}),
        ("transfer", {"target": f"queue:{caf.queue.pk}"}),
    ]:
        assert client.post(f"{base}/{action}/", data, headers=JSON).status_code == 404, action
    theirs.refresh_from_db()
    assert (theirs.status, theirs.assigned_agent_id) == ("assigned", mairie.agent.pk)
    assert not Message.objects.filter(interaction=theirs).exists()
