"""The REST API: roles decide who may read and who may change what."""

from typing import Any

import pytest
from rest_framework.test import APIClient

from agents.models import AgentProfile, AgentSkill
from configuration.models import Queue, Skill, Team
from interactions.models import Interaction
from organisations.models import Membership, sole_organisation

pytestmark = pytest.mark.django_db


@pytest.fixture
def team(db: Any) -> Team:
    return Team.objects.create(name="Accueil")


@pytest.fixture
def make_user(make_user: Any, team: Team) -> Any:
    """The suite's users, members of the (one) organisation, in one team its supervisors
    supervise (a supervisor of no team sees nothing)."""

    def make(username: str, role: str = "agent", **extra: Any) -> Any:
        user = make_user(username, role, **extra)
        Membership.objects.create(user=user, organisation_id=sole_organisation())
        AgentProfile.objects.filter(user=user).update(team=team)
        if role == "supervisor":
            team.supervisors.add(user)
        return user

    return make


@pytest.fixture
def skills() -> dict[str, Skill]:
    return {
        code: Skill.objects.create(code=code, name=code)
        for code in ("caf-allocations", "pref-sejour")
    }


def test_anonymous_callers_are_refused() -> None:
    response = APIClient().get("/api/v1/contacts/")
    assert response.status_code in (401, 403)


def test_agent_reads_but_cannot_change_skills(
    make_user: Any, api_client_for: Any, skills: dict[str, Skill]
) -> None:
    agent = make_user("camille", "agent")
    client = api_client_for(agent)
    profile = AgentProfile.objects.get(user=agent)

    assert client.get("/api/v1/agents/").status_code == 200
    assert client.get("/api/v1/skills/").status_code == 200
    response = client.put(
        f"/api/v1/agents/{profile.pk}/skills/",
        {"skills": [{"skill": "caf-allocations", "level": 5}]},
        format="json",
    )
    assert response.status_code == 403
    assert not AgentSkill.objects.filter(agent=profile).exists()
    assert client.post("/api/v1/skills/", {"code": "x", "name": "X"}).status_code == 403
    assert client.patch(f"/api/v1/agents/{profile.pk}/", {"remote": True}).status_code == 403


def test_supervisor_changes_an_agents_skills(
    make_user: Any, api_client_for: Any, skills: dict[str, Skill]
) -> None:
    agent = make_user("camille", "agent")
    supervisor = make_user("nadia", "supervisor")
    profile = AgentProfile.objects.get(user=agent)
    response = api_client_for(supervisor).put(
        f"/api/v1/agents/{profile.pk}/skills/",
        {
            "skills": [
                {"skill": "caf-allocations", "level": 5},
                {"skill": "pref-sejour", "level": 2},
            ]
        },
        format="json",
    )
    assert response.status_code == 200, response.content
    assert profile.skill_levels() == {"caf-allocations": 5, "pref-sejour": 2}
    assert {s["skill"]: s["level"] for s in response.json()["skills"]} == profile.skill_levels()


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"skills": [{"skill": "caf-allocations", "level": 6}]}, "less than or equal to 5"),
        ({"skills": [{"skill": "nope", "level": 3}]}, "does not exist"),
        (
            {
                "skills": [
                    {"skill": "pref-sejour", "level": 1},
                    {"skill": "pref-sejour", "level": 2},
                ]
            },
            "twice",
        ),
    ],
)
def test_bad_skill_levels_get_a_clear_error_and_change_nothing(
    make_user: Any,
    api_client_for: Any,
    skills: dict[str, Skill],
    payload: dict[str, Any],
    message: str,
) -> None:
    supervisor = make_user("nadia", "supervisor")
    profile = AgentProfile.objects.get(user=make_user("camille", "agent"))
    AgentSkill.objects.create(agent=profile, skill=skills["pref-sejour"], level=4)
    response = api_client_for(supervisor).put(
        f"/api/v1/agents/{profile.pk}/skills/",
        payload,
        format="json",
        HTTP_ACCEPT_LANGUAGE="en",
    )
    assert response.status_code == 400
    assert message in response.content.decode()
    assert profile.skill_levels() == {"pref-sejour": 4}


def test_supervisor_creates_a_queue_with_skills_and_steps(
    make_user: Any, api_client_for: Any, skills: dict[str, Skill], team: Team
) -> None:
    client = api_client_for(make_user("nadia", "supervisor"))
    response = client.post(
        "/api/v1/queues/",
        {
            "code": "prefecture-sejour",
            "name": "Préfecture – séjour",
            "team": team.pk,
            "sla_target_seconds": 90,
            "skills": [{"skill": "pref-sejour", "min_level": 3}],
            "escalation_steps": [{"after_seconds": 60, "min_level_cap": 2}],
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    queue = Queue.objects.get(code="prefecture-sejour")
    assert queue.required_skills() == {"pref-sejour": 3}
    assert queue.escalation_steps.get().min_level_cap == 2
    # An agent may not.
    agent_client = api_client_for(make_user("camille", "agent"))
    assert agent_client.post("/api/v1/queues/", {"code": "x", "name": "x"}).status_code == 403


def test_agent_creates_and_finds_a_citizen_by_any_phone_format(
    make_user: Any, api_client_for: Any
) -> None:
    client = api_client_for(make_user("camille", "agent"))
    created = client.post("/api/v1/contacts/", {"display_name": "Marie Dupont"}, format="json")
    assert created.status_code == 201
    contact_id = created.json()["id"]
    added = client.post(
        f"/api/v1/contacts/{contact_id}/identities/",
        {"kind": "phone", "value": "06 12 34 56 78"},
        format="json",
    )
    assert added.status_code == 201
    assert added.json()["value"] == "+33612345678"
    found = client.get("/api/v1/contacts/", {"phone": "0033 6 12 34 56 78"}).json()
    assert [c["id"] for c in found["results"]] == [contact_id]
    bad = client.post(
        f"/api/v1/contacts/{contact_id}/identities/",
        {"kind": "phone", "value": "bonjour"},
        format="json",
    )
    assert bad.status_code == 400
    assert "phone number" in bad.json()["detail"]


def test_only_supervisors_merge_citizens(make_user: Any, api_client_for: Any) -> None:
    agent = api_client_for(make_user("camille", "agent"))
    a = agent.post("/api/v1/contacts/", {"display_name": "A"}, format="json").json()["id"]
    b = agent.post("/api/v1/contacts/", {"display_name": "B"}, format="json").json()["id"]
    assert agent.post(f"/api/v1/contacts/{a}/merge/", {"source": b}).status_code == 403
    supervisor = api_client_for(make_user("nadia", "supervisor"))
    response = supervisor.post(f"/api/v1/contacts/{a}/merge/", {"source": b})
    assert response.status_code == 200
    assert supervisor.get(f"/api/v1/contacts/{b}/").json()["merged_into"] == a


def test_illegal_transition_through_the_api_is_a_409(make_user: Any, api_client_for: Any) -> None:
    camille = make_user("camille", "agent")
    client = api_client_for(camille)
    created = client.post("/api/v1/interactions/", {"channel": "chat"}, format="json")
    assert created.status_code == 201, created.content
    interaction = created.json()
    assert interaction["status"] == "queued"
    # An agent changes the interactions they hold: this one is given to camille.
    Interaction.objects.filter(pk=interaction["id"]).update(
        status="assigned", assigned_agent=AgentProfile.objects.get(user=camille)
    )
    response = client.post(
        f"/api/v1/interactions/{interaction['id']}/transition/", {"to": "closed"}, format="json"
    )
    assert response.status_code == 200
    response = client.post(
        f"/api/v1/interactions/{interaction['id']}/transition/", {"to": "assigned"}, format="json"
    )
    assert response.status_code == 409
    # every business error of the API: its code, its message, and this one the current status
    # ("error" repeats the code for API v1 clients)
    body = response.json()
    assert body["code"] == body["error"] == "illegal_transition"
    assert body["status"] == "closed"
    assert "'closed' to 'assigned'" in body["detail"]


def test_interaction_with_unknown_skill_is_refused(make_user: Any, api_client_for: Any) -> None:
    client = api_client_for(make_user("camille", "agent"))
    response = client.post(
        "/api/v1/interactions/",
        {"channel": "voice", "required_skills": {"klingon": 3}},
        format="json",
    )
    assert response.status_code == 400
    assert "klingon" in response.content.decode()


def test_token_authentication(make_user: Any) -> None:
    make_user("camille", "agent")
    client = APIClient()
    token = client.post(
        "/api/v1/auth/token/", {"username": "camille", "password": "pw-Test-2026!"}
    ).json()["token"]
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get("/api/v1/queues/").status_code == 200


def test_openapi_schema_and_docs_are_served(make_user: Any) -> None:
    client = APIClient()
    schema = client.get("/api/v1/schema/", {"format": "json"})
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for path in (
        "/api/v1/contacts/",
        "/api/v1/interactions/",
        "/api/v1/queues/",
        "/api/v1/skills/",
        "/api/v1/agents/{id}/skills/",
    ):
        assert path in paths
    assert client.get("/api/v1/docs/").status_code == 200
