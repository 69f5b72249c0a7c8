"""The agents table's controls show each agent's real state, never a default."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client

from agents.models import AgentPresence, AgentState, PauseReason
from tests.integration.supervision.test_views import sup_client

__all__ = ["sup_client"]

pytestmark = pytest.mark.django_db


def _row_controls(html: str, agent_id: int) -> tuple[str, str]:
    state = re.search(rf'<select name="state" id="state-{agent_id}">(.*?)</select>', html, re.S)
    reason = re.search(rf'<select name="reason" id="reason-{agent_id}">(.*?)</select>', html, re.S)
    assert state is not None
    assert reason is not None
    return state.group(1), reason.group(1)


def _selected(options: str) -> list[str]:
    return re.findall(r'<option value="([^"]*)"[^>]*\bselected\b', options)


def test_each_agents_control_starts_on_their_real_state(agent: Any, sup_client: Client) -> None:
    lunch = agent("bob", {})
    AgentPresence.objects.filter(agent=lunch).update(
        state=AgentState.PAUSED, pause_reason=PauseReason.LUNCH
    )
    missed = agent("chloe", {})
    AgentPresence.objects.filter(agent=missed).update(
        state=AgentState.PAUSED, pause_reason=PauseReason.MISSED
    )
    gone = agent("david", {}, available=False)
    wrapping = agent("emma", {})
    AgentPresence.objects.filter(agent=wrapping).update(state=AgentState.WRAP_UP)

    html = sup_client.get("/supervision/agents/").content.decode()

    state, reason = _row_controls(html, lunch.pk)
    assert (_selected(state), _selected(reason)) == (["paused"], ["lunch"])
    state, reason = _row_controls(html, missed.pk)
    assert _selected(state) == ["paused"]
    assert _selected(reason) == [""]  # shown, disabled: a supervisor cannot set "missed"
    assert "disabled" in reason.split("</option>")[0]
    state, _ = _row_controls(html, gone.pk)
    assert _selected(state) == ["offline"]
    state, _ = _row_controls(html, wrapping.pk)
    assert _selected(state) == [""]  # wrap-up: shown, not pickable
    assert "disabled" in state.split("</option>")[0]
