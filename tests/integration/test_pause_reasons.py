"""Agents cannot pick the pause reasons the system or a supervisor sets (issue 15): "missed" (an
offer left unanswered) and "supervisor" are refused, in words, from the console's status control
and from the REST API; the reasons meant for agents are accepted."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from agents.models import AgentPresence, AgentState

pytestmark = pytest.mark.django_db

JSON = {"Accept": "application/json"}
REFUSED = "Ce motif de pause ne peut pas être choisi"


def _state(user: Any) -> tuple[str, str]:
    presence = AgentPresence.objects.get(agent__user=user)
    return presence.state, presence.pause_reason


@pytest.mark.parametrize("reason", ["supervisor", "missed"])
def test_the_console_refuses_a_pause_reason_the_agent_cannot_pick(
    make_user: Callable[..., Any], reason: str
) -> None:
    agent = make_user("alice")
    client = Client(HTTP_ACCEPT_LANGUAGE="fr")
    client.force_login(agent)
    before = _state(agent)
    for form in ({"state": f"paused:{reason}"}, {"state": "paused", "reason": reason}):
        answer = client.post("/console/state/", form, headers=JSON)
        assert answer.status_code == 400
        assert REFUSED in answer.json()["message"]
        assert _state(agent) == before
    answer = client.post("/console/state/", {"state": "paused:lunch"}, headers=JSON)
    assert answer.status_code == 200
    assert _state(agent) == (AgentState.PAUSED, "lunch")


@pytest.mark.parametrize("reason", ["supervisor", "missed"])
def test_the_api_refuses_a_pause_reason_the_agent_cannot_pick(
    make_user: Callable[..., Any], api_client_for: Callable[[Any], Any], reason: str
) -> None:
    agent = make_user("alice")
    client = api_client_for(agent)
    before = _state(agent)
    answer = client.patch(
        "/api/v1/presence/me/",
        {"state": "paused", "pause_reason": reason},
        format="json",
        HTTP_ACCEPT_LANGUAGE="fr",
    )
    assert answer.status_code == 400
    assert REFUSED in answer.content.decode()
    assert _state(agent) == before
    answer = client.patch(
        "/api/v1/presence/me/", {"state": "paused", "pause_reason": "training"}, format="json"
    )
    assert answer.status_code == 200
    assert _state(agent) == (AgentState.PAUSED, "training")
    # the reasons a supervisor or the system set are still read back as they are
    AgentPresence.objects.filter(agent__user=agent).update(pause_reason=reason)
    assert client.get("/api/v1/presence/me/").json()["pause_reason"] == reason
