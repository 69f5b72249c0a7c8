"""The REST API answers within the caller's organisation and scope only (issue 11).

Two organisations, a CAF and a mairie, each with a team, its supervisor, agents, a queue, a
skill, citizens and interactions. Rows of the other organisation answer 404 (ids cannot be
probed); a row the caller sees but may not change answers 403; a foreign key to another
organisation's row is a 400.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth.models import Group, User

from agents.models import AgentProfile, AgentSkill
from configuration.models import Queue, Skill, Team
from contacts.models import Contact, ContactIdentity
from interactions.models import Interaction, Message
from organisations.models import Membership, Organisation

pytestmark = pytest.mark.django_db


@dataclass
class Body:
    org: Organisation
    team: Team
    other_team: Team
    supervisor: User
    agent: User
    colleague: User
    teleworker: AgentProfile
    queue: Queue
    skill: Skill
    citizen: Contact
    interaction: Interaction


def _person(
    username: str, role: str, org: Organisation, team: Team | None, *, profile: bool = True
) -> User:
    user = User.objects.create_user(username, f"{username}@example.fr", "pw-Test-2026!")
    user.groups.add(Group.objects.get(name=role))
    Membership.objects.create(user=user, organisation=org)
    if profile:
        AgentProfile.objects.create(user=user, team=team, organisation=org, languages=["fr"])
    return user


def _body(slug: str, phone: str) -> Body:
    org = Organisation.objects.create(name=slug.upper(), slug=slug)
    team = Team.objects.create(name="Accueil", organisation=org)
    other_team = Team.objects.create(name="Back-office", organisation=org)
    supervisor = _person(f"{slug}-sup", "supervisor", org, team)
    team.supervisors.add(supervisor)
    agent = _person(f"{slug}-agent", "agent", org, team)
    colleague = _person(f"{slug}-colleague", "agent", org, team)
    teleworker = AgentProfile.objects.get(user=_person(f"{slug}-remote", "agent", org, team))
    AgentProfile.objects.filter(pk=teleworker.pk).update(remote=True, telework_phone="+33612345678")
    teleworker.refresh_from_db()
    queue = Queue.objects.create(code="accueil", name="Accueil", team=team, organisation=org)
    skill = Skill.objects.create(code=f"{slug}-aides", name="Aides", organisation=org)
    Skill.objects.create(code="accueil", name="Accueil", organisation=org)
    citizen = Contact.objects.create(display_name=f"Citoyen {slug}", organisation=org)
    ContactIdentity.objects.create(contact=citizen, kind="phone", value=phone)
    interaction = Interaction.objects.create(
        channel="sms",
        queue=queue,
        contact=citizen,
        status="assigned",
        assigned_agent=AgentProfile.objects.get(user=colleague),
    )
    Message.objects.create(interaction=interaction, direction="inbound", text=f"{slug}: bonjour")
    Message.objects.create(interaction=interaction, direction="note", text=f"{slug}: note interne")
    return Body(
        org, team, other_team, supervisor, agent, colleague, teleworker, queue, skill, citizen,
        interaction,
    )  # fmt: skip


@pytest.fixture
def caf(roles: None) -> Body:
    return _body("caf", "+33611111111")


@pytest.fixture
def mairie(roles: None, caf: Body) -> Body:
    return _body("mairie", "+33622222222")


def test_agent_token_cannot_read_another_organisations_messages_or_notes(
    api_client_for: Any, caf: Body, mairie: Body
) -> None:
    client = api_client_for(caf.agent)
    theirs = mairie.interaction.pk
    assert client.get(f"/api/v1/interactions/{theirs}/").status_code == 404
    assert client.get(f"/api/v1/interactions/{theirs}/messages/").status_code == 404
    listed = client.get("/api/v1/interactions/").json()["results"]
    assert [row["id"] for row in listed] == [caf.interaction.pk]
    # Their own organisation's conversation, notes included, is readable ("tell us once").
    own = client.get(f"/api/v1/interactions/{caf.interaction.pk}/messages/")
    assert own.status_code == 200
    assert {m["direction"] for m in own.json()} == {"inbound", "note"}
    assert "mairie" not in own.content.decode()


def test_agent_cannot_close_another_agents_interaction_through_transition(
    api_client_for: Any, caf: Body, mairie: Body
) -> None:
    client = api_client_for(caf.agent)
    # A colleague's interaction: seen, but not theirs to change.
    response = client.post(
        f"/api/v1/interactions/{caf.interaction.pk}/transition/", {"to": "closed"}, format="json"
    )
    assert response.status_code == 403
    # Another organisation's: not even there.
    response = client.post(
        f"/api/v1/interactions/{mairie.interaction.pk}/transition/",
        {"to": "closed"},
        format="json",
    )
    assert response.status_code == 404
    for interaction in (caf.interaction, mairie.interaction):
        interaction.refresh_from_db()
        assert interaction.status == "assigned"
        assert interaction.closed_at is None
        assert not interaction.transitions.exists()
    # The agent who holds it may.
    holder = api_client_for(caf.colleague)
    response = holder.post(
        f"/api/v1/interactions/{caf.interaction.pk}/transition/", {"to": "closed"}, format="json"
    )
    assert response.status_code == 200


def test_agent_listing_citizens_sees_only_their_organisations(
    api_client_for: Any, caf: Body, mairie: Body
) -> None:
    client = api_client_for(caf.agent)
    listed = client.get("/api/v1/contacts/").json()
    assert [c["id"] for c in listed["results"]] == [caf.citizen.pk]
    assert client.get(f"/api/v1/contacts/{mairie.citizen.pk}/").status_code == 404
    assert client.get("/api/v1/contacts/", {"phone": "06 22 22 22 22"}).json()["results"] == []
    patched = client.patch(f"/api/v1/contacts/{mairie.citizen.pk}/", {"notes": "x"})
    assert patched.status_code == 404
    mairie.citizen.refresh_from_db()
    assert mairie.citizen.notes == ""
    # A citizen created through the API goes into the caller's organisation.
    created = client.post("/api/v1/contacts/", {"display_name": "Nouveau"}, format="json")
    assert created.status_code == 201
    assert Contact.objects.get(pk=created.json()["id"]).organisation_id == caf.org.pk


def test_one_team_supervisor_cannot_change_another_organisations_teleworker(
    api_client_for: Any, caf: Body, mairie: Body
) -> None:
    client = api_client_for(caf.supervisor)
    theirs = mairie.teleworker
    for payload in ({"telework_phone": "+33699999999"}, {"remote": False}):
        response = client.patch(f"/api/v1/agents/{theirs.pk}/", payload, format="json")
        assert response.status_code == 404
    # Nor one of their own organisation's other team.
    other = AgentProfile.objects.create(
        user=_person("caf-backoffice", "agent", caf.org, caf.other_team, profile=False),
        team=caf.other_team,
        remote=True,
        telework_phone="+33633333333",
    )
    response = client.patch(f"/api/v1/agents/{other.pk}/", {"remote": False}, format="json")
    assert response.status_code == 404
    theirs.refresh_from_db()
    other.refresh_from_db()
    assert (theirs.remote, theirs.telework_phone) == (True, "+33612345678")
    assert (other.remote, other.telework_phone) == (True, "+33633333333")
    # Their own team's teleworker: they may.
    response = client.patch(
        f"/api/v1/agents/{caf.teleworker.pk}/", {"telework_phone": "06 44 44 44 44"}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["telework_phone"] == "+33644444444"


def test_teleworkers_private_number_is_hidden_from_colleagues(
    api_client_for: Any, caf: Body
) -> None:
    url = f"/api/v1/agents/{caf.teleworker.pk}/"
    assert api_client_for(caf.agent).get(url).json()["telework_phone"] is None
    listed = api_client_for(caf.agent).get("/api/v1/agents/").json()["results"]
    assert "+33612345678" not in str(listed)
    assert api_client_for(caf.teleworker.user).get(url).json()["telework_phone"] == "+33612345678"
    assert api_client_for(caf.supervisor).get(url).json()["telework_phone"] == "+33612345678"


def test_supervisor_cannot_empty_their_own_teams_supervisors_to_become_centre_wide(
    api_client_for: Any, caf: Body, mairie: Body
) -> None:
    client = api_client_for(caf.supervisor)
    response = client.patch(f"/api/v1/teams/{caf.team.pk}/", {"supervisors": []}, format="json")
    assert response.status_code == 403
    assert list(caf.team.supervisors.all()) == [caf.supervisor]
    # Nor add themselves to another team (theirs or another organisation's).
    for team in (caf.other_team, mairie.team):
        response = client.patch(
            f"/api/v1/teams/{team.pk}/", {"supervisors": [caf.supervisor.pk]}, format="json"
        )
        assert response.status_code == 404
        assert not team.supervisors.filter(pk=caf.supervisor.pk).exists()
    # The organisation's administrator decides who supervises a team.
    admin = _person("caf-admin", "administrator", caf.org, None, profile=False)
    response = api_client_for(admin).patch(
        f"/api/v1/teams/{caf.other_team.pk}/", {"supervisors": [caf.supervisor.pk]}, format="json"
    )
    assert response.status_code == 200, response.content
    assert list(caf.other_team.supervisors.all()) == [caf.supervisor]
    # ... but not with another organisation's user.
    response = api_client_for(admin).patch(
        f"/api/v1/teams/{caf.team.pk}/", {"supervisors": [mairie.supervisor.pk]}, format="json"
    )
    assert response.status_code == 400
    assert list(caf.team.supervisors.all()) == [caf.supervisor]


def test_creating_an_interaction_in_another_organisations_queue_is_refused(
    api_client_for: Any, caf: Body, mairie: Body
) -> None:
    client = api_client_for(caf.agent)
    before = Interaction.objects.count()
    for payload in (
        {"channel": "chat", "queue": mairie.queue.pk},
        {"channel": "chat", "contact": mairie.citizen.pk},
        {"channel": "chat", "queue": caf.queue.pk, "contact": mairie.citizen.pk},
    ):
        response = client.post("/api/v1/interactions/", payload, format="json")
        assert response.status_code == 400, payload
    assert Interaction.objects.count() == before
    created = client.post(
        "/api/v1/interactions/", {"channel": "chat", "queue": caf.queue.pk}, format="json"
    )
    assert created.status_code == 201
    assert Interaction.objects.get(pk=created.json()["id"]).organisation_id == caf.org.pk


def test_skill_code_of_another_organisation_is_refused(
    api_client_for: Any, caf: Body, mairie: Body
) -> None:
    client = api_client_for(caf.supervisor)
    agent = AgentProfile.objects.get(user=caf.agent)
    response = client.put(
        f"/api/v1/agents/{agent.pk}/skills/",
        {"skills": [{"skill": mairie.skill.code, "level": 3}]},
        format="json",
    )
    assert response.status_code == 400
    assert not AgentSkill.objects.filter(agent=agent).exists()
    response = api_client_for(caf.agent).post(
        "/api/v1/interactions/",
        {"channel": "voice", "required_skills": {mairie.skill.code: 2}},
        format="json",
    )
    assert response.status_code == 400
    response = client.post(
        "/api/v1/queues/",
        {
            "code": "nouvelle",
            "name": "Nouvelle",
            "team": caf.team.pk,
            "skills": [{"skill": mairie.skill.code, "min_level": 2}],
        },
        format="json",
    )
    assert response.status_code == 400
    assert not Queue.objects.filter(code="nouvelle").exists()
    # A code both organisations use resolves to the caller's own skill.
    response = client.put(
        f"/api/v1/agents/{agent.pk}/skills/",
        {"skills": [{"skill": "accueil", "level": 4}]},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert AgentSkill.objects.get(agent=agent).skill.organisation_id == caf.org.pk


def test_supervisor_writes_queues_of_their_own_teams_only(
    api_client_for: Any, caf: Body, mairie: Body
) -> None:
    client = api_client_for(caf.supervisor)
    for team in (caf.other_team, mairie.team):
        response = client.post(
            "/api/v1/queues/", {"code": "x", "name": "X", "team": team.pk}, format="json"
        )
        assert response.status_code == 400
    assert client.patch(f"/api/v1/queues/{mairie.queue.pk}/", {"name": "Pris"}).status_code == 404
    response = client.patch(
        f"/api/v1/queues/{caf.queue.pk}/", {"team": caf.other_team.pk}, format="json"
    )
    assert response.status_code == 400
    mairie.queue.refresh_from_db()
    caf.queue.refresh_from_db()
    assert mairie.queue.name == "Accueil"
    assert caf.queue.team_id == caf.team.pk
    assert client.get("/api/v1/queues/").json()["results"][0]["id"] == caf.queue.pk
    assert client.get("/api/v1/queues/").json()["count"] == 1


def test_supervisor_of_no_team_sees_nothing(api_client_for: Any, caf: Body) -> None:
    lone = _person("caf-lone", "supervisor", caf.org, None)
    client = api_client_for(lone)
    for route in ("contacts", "interactions", "queues", "agents", "teams", "skills"):
        response = client.get(f"/api/v1/{route}/")
        assert response.status_code == 200
        assert response.json()["count"] == 0, route


def test_non_numeric_filters_answer_400(api_client_for: Any, caf: Body) -> None:
    client = api_client_for(caf.supervisor)
    assert client.get("/api/v1/interactions/", {"contact": "abc"}).status_code == 400
    assert client.get("/api/v1/routing-decisions/", {"interaction": "1x"}).status_code == 400


def test_service_token_reads_and_writes_its_organisation_only(caf: Body, mairie: Body) -> None:
    from rest_framework.test import APIClient

    from apitokens.actions import do_create_service_token

    admin = _person("caf-admin", "administrator", caf.org, None, profile=False)
    _token, raw = do_create_service_token(
        admin, name="GRC", organisation_id=caf.org.pk, scope="write"
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    listed = client.get("/api/v1/contacts/").json()["results"]
    assert [c["id"] for c in listed] == [caf.citizen.pk]
    assert client.get(f"/api/v1/interactions/{mairie.interaction.pk}/").status_code == 404
    response = client.post(
        f"/api/v1/interactions/{caf.interaction.pk}/transition/", {"to": "closed"}, format="json"
    )
    assert response.status_code == 200, response.content
    transition = caf.interaction.transitions.get()
    assert (transition.to_status, transition.actor) == ("closed", None)
