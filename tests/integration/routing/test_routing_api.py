"""Agents answer offers and set their presence through the API; supervisors read the log."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group

from agents.models import AgentPresence, AgentState
from configuration.models import Team
from organisations.models import Membership, sole_organisation
from routing.claims import do_route_pending
from routing.models import Offer, OfferStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def team(db: Any) -> Team:
    return Team.objects.create(name="Accueil")


@pytest.fixture
def agents_with_role(agent: Any, roles: None, team: Team) -> Any:
    """Members of the organisation, in one team (which its supervisors supervise)."""

    def make(username: str, skills: dict[str, int], role: str = "agent") -> Any:
        a = agent(username, skills, team=team)
        a.user.groups.add(Group.objects.get(name=role))
        Membership.objects.create(user=a.user, organisation_id=sole_organisation())
        if role == "supervisor":
            team.supervisors.add(a.user)
        return a

    return make


def test_agent_accepts_own_offer_and_cannot_touch_others(
    queue: Any, agents_with_role: Any, arrive: Any, api_client_for: Any
) -> None:
    q = queue("q", {"x": 1})
    best = agents_with_role("best", {"x": 5})
    other = agents_with_role("other", {"x": 1})
    call = arrive(q)
    do_route_pending()
    offer = Offer.objects.get(interaction=call)
    assert offer.agent == best

    other_client = api_client_for(other.user)
    assert other_client.get("/api/v1/offers/").json()["results"] == []
    assert other_client.post(f"/api/v1/offers/{offer.pk}/accept/").status_code == 404

    client = api_client_for(best.user)
    listed = client.get("/api/v1/offers/", {"status": "pending"}).json()["results"]
    assert [o["id"] for o in listed] == [offer.pk]
    response = client.post(f"/api/v1/offers/{offer.pk}/accept/")
    assert response.status_code == 200
    assert response.json()["status"] == OfferStatus.ACCEPTED
    again = client.post(f"/api/v1/offers/{offer.pk}/decline/")
    assert again.status_code == 409
    assert again.json()["code"] == "offer_not_pending"


def test_supervisor_reads_why_an_interaction_went_to_an_agent(
    queue: Any, agents_with_role: Any, arrive: Any, api_client_for: Any, team: Team
) -> None:
    q = queue("q", {"x": 2}, team=team)
    agents_with_role("expert", {"x": 5})
    agents_with_role("novice", {"x": 2})
    supervisor = agents_with_role("nadia", {}, role="supervisor")
    call = arrive(q)
    do_route_pending()
    response = api_client_for(supervisor.user).get(
        "/api/v1/routing-decisions/", {"interaction": call.pk}
    )
    assert response.status_code == 200
    decision = response.json()["results"][0]
    assert decision["rule"] == "proficiency"
    assert len(decision["details"]["candidates"]) == 2
    # Agents do not read the log.
    agent_client = api_client_for(supervisor.user.__class__.objects.get(username="novice"))
    assert agent_client.get("/api/v1/routing-decisions/").status_code == 403


def test_agent_sets_presence_with_reason_and_heartbeat(
    agents_with_role: Any, api_client_for: Any
) -> None:
    a = agents_with_role("camille", {})
    client = api_client_for(a.user)
    bad = client.patch("/api/v1/presence/me/", {"state": "paused"}, format="json")
    assert bad.status_code == 400
    assert bad.json()["code"] == "invalid_presence"
    assert "a pause needs a reason" in bad.json()["detail"]
    assert "reason" in bad.content.decode()
    ok = client.patch(
        "/api/v1/presence/me/", {"state": "paused", "pause_reason": "lunch"}, format="json"
    )
    assert ok.status_code == 200
    assert ok.json()["state"] == "paused"
    client.patch(
        "/api/v1/presence/me/",
        {"state": "available", "channels_enabled": ["chat", "email"]},
        format="json",
    )
    presence = AgentPresence.objects.get(agent=a)
    assert presence.state == AgentState.AVAILABLE
    assert presence.channels_enabled == ["chat", "email"]
    assert client.post("/api/v1/presence/heartbeat/").status_code == 204
    assert client.get("/api/v1/presence/").status_code == 403
