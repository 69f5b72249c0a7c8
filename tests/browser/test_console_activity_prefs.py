"""Issue 15 in Chromium: the agent's own page (today's figures, a search of their past
conversations with pagination that keeps the search, a transcript), by keyboard and axe-clean;
and the offer tone, which plays until the agent turns it off (remembered in the browser)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from tests.integration.console.test_activity import _handled

from .conftest import LiveServer, tab_to
from .test_console import _axe_serious, _email, _in_thread, centre

__all__ = ["centre"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
]


def test_my_activity_figures_search_pages_and_transcript_with_the_keyboard(
    centre: dict[str, Any], console_page: Callable[..., Any], live_server_asgi: LiveServer
) -> None:
    alice, caf = centre["alice"], centre["caf"]

    def history() -> None:
        for n in range(23):
            _handled(alice, caf, minutes=4, phone=f"+336120000{n:02}", csat=5 if n == 0 else None)

    _in_thread(history)
    page = console_page("alice", available=False)
    page.goto(f"{live_server_asgi.url}/console/activity/")
    figures = re.sub(r"[ \n]+", " ", page.inner_text("#my-figures"))
    assert "23 conversations traitées" in figures
    assert "4 min 00 s durée moyenne de traitement" in figures
    assert "100\u00a0%" in figures  # the one answer was satisfied
    assert _axe_serious(page) == [], "my activity"

    # Search by words, with the keyboard only.
    tab_to(page, "#q-text")
    page.keyboard.type("dossier")
    page.keyboard.press("Enter")
    page.wait_for_url("**text=dossier**")
    assert page.inner_text("#search-count") == "23 conversations trouvées."
    assert page.locator("#past-conversations tbody tr").count() == 20
    assert _axe_serious(page) == [], "search results"

    # The next page keeps the search.
    tab_to(page, "a[rel=next]")
    page.keyboard.press("Enter")
    page.wait_for_url("**page=2**")
    assert "text=dossier" in page.url
    assert page.locator("#past-conversations tbody tr").count() == 3
    assert "Page 2 sur 2" in page.inner_text("nav.pagination")

    # A result opens its transcript, read-only.
    tab_to(page, "#past-conversations a")
    page.keyboard.press("Enter")
    page.wait_for_url("**/console/activity/conversations/**")
    assert "où en est mon dossier" in page.inner_text("main")
    assert page.locator("main textarea").count() == 0
    assert _axe_serious(page) == [], "a past conversation"


TONE_COUNTER = """
window.__tones = 0;
const Original = window.AudioContext;
window.AudioContext = function () {
  const context = new Original();
  const make = context.createOscillator.bind(context);
  context.createOscillator = function () {
    const oscillator = make();
    const start = oscillator.start.bind(oscillator);
    oscillator.start = function (...args) { window.__tones += 1; return start(...args); };
    return oscillator;
  };
  return context;
};
"""


def test_the_offer_tone_plays_until_the_agent_turns_it_off(
    centre: dict[str, Any], console_page: Callable[..., Any]
) -> None:
    page = console_page("alice")
    page.context.add_init_script(TONE_COUNTER)  # counts the tones the console starts
    page.reload()
    page.wait_for_selector("#console[data-connected=true]")

    first = _email("Première demande")
    page.wait_for_selector(f".offer-card:has-text('{first.subject}')")
    page.wait_for_function("() => window.__tones === 1")

    page.click("#prefs-menu summary")
    assert page.is_checked("#pref-sound")  # on by default
    page.uncheck("#pref-sound")
    assert page.evaluate("() => window.localStorage.getItem('cc.sound')") == "off"
    page.click("[data-decline]")
    page.wait_for_selector(".offer-card", state="detached")

    second = _email("Seconde demande")
    page.wait_for_selector(f".offer-card:has-text('{second.subject}')")
    page.wait_for_timeout(500)  # the cue runs as the card is drawn
    assert page.evaluate("() => window.__tones") == 1  # no tone once turned off
    page.reload()
    page.wait_for_selector("#console[data-connected=true]")
    page.click("#prefs-menu summary")
    assert not page.is_checked("#pref-sound")  # remembered in this browser
