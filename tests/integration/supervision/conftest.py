"""Supervision tests reuse the routing builders (skills, queues, agents, arrivals).

Users are members of the (one) organisation. A supervisor of no team sees nothing, so the
centre-wide supervisor of these tests is the organisation's administrator."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from organisations.models import Membership, sole_organisation
from supervision.access import Scope, scope_for
from tests.integration.routing.conftest import agent, arrive, queue, skill

__all__ = ["agent", "arrive", "queue", "skill"]


@pytest.fixture
def make_user(make_user: Callable[..., Any]) -> Callable[..., Any]:
    def make(username: str, role: str = "agent", **extra: Any) -> Any:
        organisation = extra.pop("organisation", None)
        user = make_user(username, role, **extra)
        Membership.objects.create(
            user=user,
            organisation_id=organisation.pk if organisation is not None else sole_organisation(),
        )
        return user

    return make


@pytest.fixture
def supervisor(make_user: Callable[..., Any]) -> Any:
    return make_user("sup", role="administrator")


@pytest.fixture
def everything(supervisor: Any) -> Scope:
    scope = scope_for(supervisor)
    assert scope is not None
    return scope


def verified_session(user: Any) -> Client:
    """A browser session of ``user`` that passed its second factor (the pages need it)."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    client = Client()
    device = TOTPDevice.objects.create(user=user, name="test", confirmed=True)
    client.force_login(user)
    session = client.session
    session["otp_device_id"] = device.persistent_id
    session.save()
    return client
