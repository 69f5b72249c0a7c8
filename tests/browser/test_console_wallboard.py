"""A console's liveness as the wallboard shows it (supervision/static/supervision/wallboard.js):
only agents with a live console count as connected, and an agent whose console vanished while
the database still says "available" is flagged in words."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from agents.models import AgentPresence, AgentState, PauseReason

from .test_supervision import _available, centre, in_thread, supervisor_page

__all__ = ["centre", "supervisor_page"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
]


def test_only_agents_with_a_live_console_show_as_connected(
    centre: dict[str, Any], supervisor_page: Callable[..., Any]
) -> None:
    from agents.presence import do_set_agent_state

    bob, carol = centre["bob"], centre["carol"]
    # Carol is "available" in the database, but her console stopped beating ten minutes ago.
    AgentPresence.objects.filter(agent=carol).update(
        last_heartbeat_at=timezone.now() - timedelta(minutes=10)
    )
    page = supervisor_page("/supervision/")
    page.wait_for_selector("body[data-wallboard=live]")
    bob_console = f"#wb-agents tr[data-agent='{bob.pk}'] .console-cell"
    carol_console = f"#wb-agents tr[data-agent='{carol.pk}'] .console-cell"
    assert page.inner_text(bob_console) == "Console connectée"
    assert page.get_attribute(bob_console, "data-connected") == "true"
    assert page.inner_text(carol_console) == "Console perdue (plus de signal)"
    assert page.get_attribute(carol_console, "data-connected") == "false"
    assert "1 agents connectés" in page.inner_text("#wb-summary")

    # Her console comes back (a heartbeat) and she pauses: the next push shows her connected.
    _available(carol)
    in_thread(
        lambda: do_set_agent_state(agent=carol, state=AgentState.PAUSED, reason=PauseReason.BREAK)
    )
    page.wait_for_selector(f"{carol_console}[data-connected=true]")
    assert page.inner_text(carol_console) == "Console connectée"
    page.wait_for_function(
        "() => document.getElementById('wb-summary').textContent.includes('2 agents connectés')"
    )

    # Logged out: offline, and not counted.
    in_thread(lambda: do_set_agent_state(agent=bob, state=AgentState.OFFLINE))
    page.wait_for_selector(f"{bob_console}[data-connected=false]")
    assert page.inner_text(bob_console) == "Aucune console"
    page.wait_for_function(
        "() => document.getElementById('wb-summary').textContent.includes('1 agents connectés')"
    )
