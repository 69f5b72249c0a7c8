"""The transfer list offers only the colleagues who can take the conversation now, by team."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from agents.models import AgentProfile, AgentSkill
from configuration.models import Team
from interactions.lifecycle import Status
from interactions.models import Interaction
from organisations.models import sole_organisation

pytestmark = pytest.mark.django_db


def test_only_colleagues_who_can_take_it_now_are_offered_grouped_by_team(
    make_user: Callable[..., Any],
    agent: Callable[..., AgentProfile],
    queue: Callable[..., Any],
    skill: Callable[[str], Any],
    arrive: Callable[..., Interaction],
) -> None:
    org = sole_organisation()
    accueil = Team.objects.create(name="Accueil", organisation_id=org)
    back = Team.objects.create(name="Back-office", organisation_id=org)
    caf = queue("caf", needs={"rsa": 2})
    user = make_user("alice")
    alice = AgentProfile.objects.get(user=user)
    AgentSkill.objects.create(agent=alice, skill=skill("rsa"), level=5)
    mail = arrive(caf, "email", subject="RSA")
    Interaction.objects.filter(pk=mail.pk).update(status=Status.ASSIGNED, assigned_agent=alice)

    bob = agent("bob", {"rsa": 3}, team=accueil)
    gaelle = agent("gaelle", {"rsa": 4}, team=back)
    offline = agent("chloe", {"rsa": 3}, available=False, team=accueil)
    too_low = agent("david", {"rsa": 1}, team=accueil)
    sms_only = agent("emma", {"rsa": 3}, channels=["sms"], team=accueil)
    full = agent("farid", {"rsa": 3}, capacity_email=1, team=accueil)
    busy = arrive(caf, "email")
    Interaction.objects.filter(pk=busy.pk).update(status=Status.ASSIGNED, assigned_agent=full)

    client = Client(HTTP_ACCEPT_LANGUAGE="fr")
    client.force_login(user)
    page = client.get(f"/console/interactions/{mail.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    for shown in (bob, gaelle):
        assert f'value="agent:{shown.pk}"' in html
    for hidden in (offline, too_low, sms_only, full):
        assert f'value="agent:{hidden.pk}"' not in html
    assert html.index("Accueil") < html.index(f"agent:{bob.pk}")
    assert html.index("Back-office") < html.index(f"agent:{gaelle.pk}")
    assert html.index(f"agent:{bob.pk}") < html.index("Back-office")


def test_when_nobody_can_take_it_the_agent_is_told_to_use_a_queue(
    make_user: Callable[..., Any],
    agent: Callable[..., AgentProfile],
    queue: Callable[..., Any],
    arrive: Callable[..., Interaction],
) -> None:
    caf = queue("caf")
    user = make_user("alice")
    alice = AgentProfile.objects.get(user=user)
    mail = arrive(caf, "email")
    Interaction.objects.filter(pk=mail.pk).update(status=Status.ASSIGNED, assigned_agent=alice)
    agent("chloe", available=False)
    client = Client(HTTP_ACCEPT_LANGUAGE="fr")
    client.force_login(user)
    html = client.get(f"/console/interactions/{mail.pk}/").content.decode()
    assert "agent:" not in html.split('name="target"')[1].split("</select>")[0]
    assert "transférez-la vers une file" in html
