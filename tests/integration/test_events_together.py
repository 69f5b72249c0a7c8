"""Events published together (``kernel.events.published_together``, issue 13): what a block
publishes, its receivers included, goes out once at its end in the order it was published,
with the outbox rows in that order; what a savepoint that rolled back published is dropped, as
it always was; an exception leaving the block drops everything with its transaction."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import transaction

from console.models import AgentEvent
from kernel import events as kernel_events
from kernel.events import agent_group, publish, published_together

pytestmark = pytest.mark.django_db


@pytest.fixture
def agent_id(make_user: Callable[..., Any]) -> int:
    return int(make_user("alice").agent_profile.pk)


@pytest.fixture
def delivered(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    found: list[list[str]] = []
    monkeypatch.setattr(
        kernel_events, "_deliver", lambda d: found.append([m["payload"]["n"] for _g, m in d])
    )
    return found


def _publish(agent_id: int, n: str) -> None:
    publish("agent.note", {"n": n}, groups=[agent_group(agent_id)])


def _kept(agent_id: int) -> list[str]:
    return [
        p["n"]
        for p in AgentEvent.objects.filter(agent_id=agent_id)
        .order_by("id")
        .values_list("payload", flat=True)
    ]


def test_a_block_publishes_once_in_order_without_what_a_savepoint_undid(
    agent_id: int, delivered: list[list[str]], django_capture_on_commit_callbacks: Any
) -> None:
    with (
        django_capture_on_commit_callbacks(execute=True),
        transaction.atomic(),
        published_together(),
    ):
        _publish(agent_id, "a")
        try:
            with transaction.atomic():
                _publish(agent_id, "undone")
                raise RuntimeError
        except RuntimeError:
            pass
        with transaction.atomic():
            _publish(agent_id, "b")
        _publish(agent_id, "c")
        assert _kept(agent_id) == []  # held until the block ends
    assert delivered == [["a", "b", "c"]]
    assert _kept(agent_id) == ["a", "b", "c"]


def _fail_in_a_block(agent_id: int) -> None:
    with transaction.atomic(), published_together():
        _publish(agent_id, "a")
        raise RuntimeError


def test_an_exception_leaving_the_block_publishes_nothing(
    agent_id: int, delivered: list[list[str]], django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(RuntimeError):
            _fail_in_a_block(agent_id)
        with transaction.atomic():
            _publish(agent_id, "after")
    assert delivered == [["after"]]
    assert _kept(agent_id) == ["after"]
