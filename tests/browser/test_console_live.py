"""The console kept live in Chromium when a live message is lost: an offer written to the outbox
but never published shows on the open console without a reload (console/live.py, the
heartbeat catch-up)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from contactcentre import events
from routing.models import Offer

from .conftest import PASSWORD, LiveServer
from .test_console import _email, centre

__all__ = ["centre"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
]
HEARTBEAT = 2  # CONSOLE_HEARTBEAT_SECONDS of the server below
ROUND = 0.5  # CONSOLE_HEARTBEAT_FLUSH_SECONDS


@pytest.fixture(scope="module")
def live_server_fast(live_server_asgi: LiveServer) -> Iterator[LiveServer]:
    """Same database and Redis as ``live_server_asgi``, with heartbeats and console rounds a
    few times faster (read from the environment by contactcentre/settings.py)."""
    server = LiveServer(live_server_asgi.env["DATABASE_URL"])
    server.env["CONSOLE_HEARTBEAT_SECONDS"] = str(HEARTBEAT)
    server.env["CONSOLE_HEARTBEAT_FLUSH_SECONDS"] = str(ROUND)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fast_console(browser: Any, live_server_fast: LiveServer) -> Iterator[Callable[..., Any]]:
    contexts: list[Any] = []

    def open_console(username: str) -> Any:
        context = browser.new_context(locale="fr-FR", viewport={"width": 1400, "height": 1000})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.goto(f"{live_server_fast.url}/accounts/login/?next=/console/")
        page.fill("#id_username", username)
        page.fill("#id_password", PASSWORD)
        page.click("form button[type=submit].primary")
        page.wait_for_selector("#console[data-connected=true]")
        page.select_option("#state-select", "available")
        page.click("#state-form button[type=submit]")
        page.wait_for_selector("#state-label.state-available")
        return page

    yield open_console
    for context in contexts:
        context.close()


def test_an_offer_whose_live_message_was_lost_appears_without_reload(
    centre: dict[str, Any], fast_console: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    page = fast_console("alice")
    page.evaluate("() => { window.notReloaded = true; }")
    reopened: list[Any] = []
    page.on("websocket", lambda ws: reopened.append(ws))  # a new socket: a reconnection

    # The offer is recorded (with its outbox row) but its publish never reaches Redis.
    monkeypatch.setattr(events, "_deliver", lambda deliveries: None)
    interaction = _email("RSA de mai")
    offer = Offer.objects.get(interaction=interaction, status="pending")
    assert offer.agent_id == centre["alice"].pk
    page.wait_for_timeout(300)
    assert page.query_selector(".offer-card") is None  # nothing arrived live

    # Within two rounds and a heartbeat, the console asks for what it missed and shows it.
    card = page.wait_for_selector(f"#offer-{offer.pk}", timeout=(2 * ROUND + HEARTBEAT + 5) * 1000)
    assert "RSA de mai" in card.inner_text()
    assert page.evaluate("() => window.notReloaded === true")  # the same page
    assert reopened == []  # on the same socket
    assert page.get_attribute("#console", "data-connected") == "true"
    page.wait_for_function(
        "() => document.getElementById('announcer').textContent.includes('Nouvelle proposition')",
        timeout=5000,
    )
    # The agent can take it as any other.
    monkeypatch.undo()
    page.click("[data-accept]")
    page.wait_for_selector(f"#panel-{interaction.pk} [data-composer]")
    offer.refresh_from_db()
    assert offer.status == "accepted"
