"""Issue 15 in Chromium: a call accepted but not yet answered on the agent's phone is "being
connected", never "Appel en cours"; the answer turns it into a call in progress live."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from .test_console import _axe_serious, _in_thread, centre

__all__ = ["centre"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
]
CALL_SID = "CA0000000000000000000000000000b001"


def test_a_ringing_call_turns_into_a_call_in_progress_when_the_agent_answers(
    centre: dict[str, Any], console_page: Callable[..., Any]
) -> None:
    from channels_inbound.voice.actions import do_whisper
    from tests.integration.console.test_call_state import ringing_call

    alice = centre["alice"]
    interaction_id = _in_thread(lambda: ringing_call(alice, centre["caf"], CALL_SID).pk)
    page = console_page("alice")
    page.click(f"#tab-{interaction_id}")
    state = page.locator(f"#call-state-{interaction_id}")
    state.wait_for()
    assert "Mise en relation" in state.inner_text()
    assert "Appel en cours" not in page.inner_text("body")
    assert _axe_serious(page) == []

    _in_thread(
        lambda: do_whisper(
            interaction_id=interaction_id,
            agent_leg_sid="CA00000000000000000000000000000b9e",
            provider="twilio",
            agent_id=alice.pk,
        )
    )
    page.locator(f"#call-state-{interaction_id}", has_text="Appel en cours").wait_for()
