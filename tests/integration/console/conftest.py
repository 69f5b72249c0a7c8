"""Console tests reuse the routing builders (skills, queues, agents, arrivals).

Their users are members of the (one) organisation: what an agent sees comes from
``organisations.authz``, which shows nothing to a user of no organisation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from organisations.models import Membership, sole_organisation
from tests.integration.routing.conftest import agent, arrive, queue, skill

__all__ = ["agent", "arrive", "queue", "skill"]


@pytest.fixture
def make_user(make_user: Callable[..., Any]) -> Callable[..., Any]:
    def make(username: str, role: str = "agent", **extra: Any) -> Any:
        user = make_user(username, role, **extra)
        Membership.objects.create(user=user, organisation_id=sole_organisation())
        return user

    return make
