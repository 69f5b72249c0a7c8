"""Supervision tests reuse the routing builders (skills, queues, agents, arrivals)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from supervision.access import Scope, scope_for
from tests.integration.routing.conftest import agent, arrive, queue, skill

__all__ = ["agent", "arrive", "queue", "skill"]


@pytest.fixture
def supervisor(make_user: Callable[..., Any]) -> Any:
    return make_user("sup", role="supervisor")


@pytest.fixture
def everything(supervisor: Any) -> Scope:
    scope = scope_for(supervisor)
    assert scope is not None
    return scope
