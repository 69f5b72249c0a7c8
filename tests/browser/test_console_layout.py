"""The console's layout in Chromium (issue 15): three columns at 1280×720 (the work on the
left, the conversation in the middle with its reply box always in sight, the citizen on the
right), one column at a time with a switch at 200 % zoom, the note, transfer and wrap-up
dialogs, axe-core in each state, and the focus after closing a conversation."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from channels_inbound.email.actions import do_ingest_email
from interactions.models import Interaction
from tests.integration.channels.email_helpers import OUR_ADDRESS, make_mail

from .conftest import open_action, tab_to
from .test_console import _in_thread, centre

__all__ = ["centre"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
]
ROOT = Path(__file__).resolve().parents[2]
LONG_BODY = "\n".join(
    f"Ligne {n} : je vous transmets les éléments demandés pour mon dossier RSA." for n in range(40)
)


def _mail(subject: str, sender: str, body: str = "Bonjour, où en est mon RSA ?") -> Interaction:
    raw = make_mail(subject=subject, sender=sender, body=body).as_bytes()
    pk = _in_thread(lambda: do_ingest_email(raw, recipients=[OUR_ADDRESS]).interaction_id)
    return Interaction.objects.get(pk=pk)


def _accept(page: Any, interaction: Interaction) -> None:
    page.wait_for_selector(f".offer-card h3:has-text('{interaction.contact}')")
    page.click(f"#offer-list li:has(h3:has-text('{interaction.contact}')) [data-accept]")
    page.wait_for_selector(f"#panel-{interaction.pk} .thread-box .msg", state="attached")


def _axe(page: Any) -> list[str]:
    """Every axe-core violation, whatever its impact."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
    ]


def _screenshot(page: Any, name: str) -> None:
    """Into DATA_DIR; with CONSOLE_SCREENSHOT=1 also into docs/img (the docs' pictures)."""
    shot = Path(settings.DATA_DIR) / name
    page.screenshot(path=str(shot), full_page=True)
    if os.environ.get("CONSOLE_SCREENSHOT"):
        (ROOT / "docs" / "img").mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, ROOT / "docs" / "img" / name)


def _no_sideways_scroll(page: Any) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"))


def _box(page: Any, selector: str) -> dict[str, float]:
    box = page.locator(selector).bounding_box()
    assert box is not None, f"{selector} is not shown"
    return box


def test_at_1280x720_three_columns_the_reply_box_in_sight_and_the_list_says_who_waits(
    centre: dict[str, Any], console_page: Callable[..., Any]
) -> None:
    from interactions.actions import do_record_message

    page = console_page("alice", viewport={"width": 1280, "height": 720})
    marie = _mail("RSA de mars", "Marie Dupont <marie.dupont@gmail.example>", LONG_BODY)
    _accept(page, marie)
    karim = _mail("Attestation de paiement", "Karim Benali <karim.benali@gmail.example>")
    _accept(page, karim)
    page.click(f"#tab-{marie.pk}")  # Alice works on Marie's conversation
    sophie = _mail("Changement d'adresse", "Sophie Laurent <sophie.laurent@gmail.example>")
    page.wait_for_selector(f".offer-card h3:has-text('{sophie.contact}')")
    # Karim writes again while Alice reads Marie's conversation.
    _in_thread(
        lambda: do_record_message(
            interaction=Interaction.objects.get(pk=karim.pk),
            direction="inbound",
            text="J'ajoute mon avis d'imposition.",
        )
    )
    page.wait_for_selector(f"#tab-{karim.pk} .unread")

    # The page neither scrolls sideways nor down: the thread scrolls inside its column.
    assert _no_sideways_scroll(page)
    assert page.evaluate("document.documentElement.scrollHeight <= window.innerHeight + 1")
    thread = f"#thread-{marie.pk}"
    assert page.evaluate(
        "(s) => { const b = document.querySelector(s); return b.scrollHeight > b.clientHeight; }",
        thread,
    ), "the long e-mail scrolls inside the thread"
    # The reply box and its send button are in sight without scrolling.
    composer = _box(page, f"#reply-text-{marie.pk}")
    send = _box(page, f"#panel-{marie.pk} form[data-reply] button[type=submit]")
    for box in (composer, send):
        assert box["y"] >= 0
        assert box["y"] + box["height"] <= 720
    # Three columns, side by side: the work, the conversation, the citizen.
    work, middle, side = (
        _box(page, ".work-col"),
        _box(page, f"#panel-{marie.pk} .ws-main"),
        _box(page, f"#citizen-{marie.pk}"),
    )
    assert work["x"] + work["width"] <= middle["x"]
    assert middle["x"] + middle["width"] <= side["x"]
    assert side["x"] + side["width"] <= 1280
    # The offer comes first in the work column, then the conversations.
    assert _box(page, "#offers")["y"] < _box(page, "#tabs")["y"]

    # Each conversation in the list: its channel (a pictogram, and in words for screen
    # readers), the citizen, how long they have waited for an answer, the unread count.
    for interaction in (marie, karim):
        item = page.locator(f"#tab-{interaction.pk}")
        assert item.locator("svg.channel-icon[aria-hidden=true]").count() == 1
        assert "courriel" in item.locator(".visually-hidden").first.inner_text()
        assert str(interaction.contact) in item.inner_text()
        assert "attend une réponse depuis" in item.locator(".conv-wait").inner_text()
    assert page.locator(f"#tab-{karim.pk} .unread").inner_text().startswith("1")
    assert page.locator(f"#tab-{karim.pk}").get_attribute("aria-selected") == "false"
    assert page.locator(f"#tab-{marie.pk}").get_attribute("aria-selected") == "true"
    # The waiting time is live: it counts up while the page is open.
    before = page.inner_text(f"#tab-{marie.pk} .conv-wait")
    page.wait_for_function(
        "([s, b]) => document.querySelector(s).textContent !== b",
        arg=[f"#tab-{marie.pk} .conv-wait", before],
        timeout=5000,
    )
    # Once Alice answers, Marie no longer waits.
    page.fill(f"#reply-text-{marie.pk}", "Bien reçu, je regarde votre dossier.")
    page.click(f"#panel-{marie.pk} form[data-reply] button[type=submit]")
    page.locator(f"#tab-{marie.pk} .conv-wait", has_text="répondu").wait_for()
    feedback = page.wait_for_selector(f"#panel-{marie.pk} form[data-reply] .form-feedback.ok")
    assert feedback.is_visible()
    assert page.evaluate("() => document.activeElement.id") == f"reply-text-{marie.pk}"

    _screenshot(page, "console.png")


def test_at_200_percent_zoom_one_column_at_a_time_with_a_switch(
    centre: dict[str, Any], console_page: Callable[..., Any]
) -> None:
    # 1280×720 at 200 %: 640×360 CSS pixels, each drawn with two device pixels.
    page = console_page("alice", viewport={"width": 640, "height": 360}, device_scale_factor=2)
    switch = page.locator(".view-switch")
    assert switch.is_visible()
    marie = _mail("RSA de mars", "Marie Dupont <marie.dupont@gmail.example>")
    page.wait_for_selector(".offer-card")
    assert _no_sideways_scroll(page)
    page.click("[data-accept]")
    # Accepting shows the conversation, the reply box ready; the list is hidden meanwhile.
    page.wait_for_selector(f"#reply-text-{marie.pk}")
    page.wait_for_function(
        "(id) => document.activeElement && document.activeElement.id === 'reply-text-' + id",
        arg=marie.pk,
    )
    assert page.is_hidden("#tabs")
    assert switch.locator("[data-view=conversation]").get_attribute("aria-pressed") == "true"
    assert _no_sideways_scroll(page)
    _screenshot(page, "console_zoom.png")
    # The citizen record, then the work list, through the switch.
    switch.locator("[data-view=citizen]").click()
    page.wait_for_selector(f"#citizen-{marie.pk}")
    assert page.is_hidden(f"#reply-text-{marie.pk}")
    assert "Marie Dupont" in page.inner_text(f"#citizen-{marie.pk}")
    assert _no_sideways_scroll(page)
    switch.locator("[data-view=work]").click()
    page.wait_for_selector(f"#tab-{marie.pk}")
    assert _no_sideways_scroll(page)
    # Opening a conversation from the list shows it.
    page.click(f"#tab-{marie.pk}")
    page.wait_for_selector(f"#reply-text-{marie.pk}")
    # A dialog fits too.
    open_action(page, marie.pk, "wrap")
    assert _no_sideways_scroll(page)
    dialog = _box(page, f"#wrap-dialog-{marie.pk}")
    assert dialog["x"] >= 0
    assert dialog["x"] + dialog["width"] <= 640
    assert _axe(page) == [], "wrap-up dialog at 200 %"
    page.keyboard.press("Escape")
    assert _axe(page) == [], "conversation at 200 %"


def test_axe_finds_no_violation_with_an_offer_a_conversation_and_each_dialog(
    centre: dict[str, Any], console_page: Callable[..., Any]
) -> None:
    page = console_page("alice", viewport={"width": 1280, "height": 720})
    assert _axe(page) == [], "empty console"
    marie = _mail("RSA de mars", "Marie Dupont <marie.dupont@gmail.example>")
    page.wait_for_selector(".offer-card")
    assert _axe(page) == [], "an offer"
    _accept(page, marie)
    page.wait_for_selector(f"#reply-text-{marie.pk}")
    assert _axe(page) == [], "a conversation open"
    page.click("#prefs-menu summary")
    assert _axe(page) == [], "the preferences open"
    page.click("#prefs-menu summary")
    for action in ("note", "transfer", "wrap"):
        open_action(page, marie.pk, action)
        assert _axe(page) == [], f"the {action} dialog open"
        page.click(f"#{action}-dialog-{marie.pk} [data-close-dialog]")
        page.wait_for_selector(f"#{action}-dialog-{marie.pk}:not([open])", state="attached")
    # A refused action answers in the dialog, in words.
    open_action(page, marie.pk, "transfer")
    page.evaluate(
        "(id) => document.getElementById('transfer-' + id).removeAttribute('required')",
        marie.pk,
    )
    page.click(f"#transfer-dialog-{marie.pk} button[type=submit]")
    error = page.wait_for_selector(f"#transfer-dialog-{marie.pk} .form-feedback.error")
    assert error.is_visible()
    assert error.inner_text()
    assert _axe(page) == [], "the transfer dialog with an error"


def test_closing_a_conversation_with_the_keyboard_moves_to_the_next_one(
    centre: dict[str, Any], console_page: Callable[..., Any]
) -> None:
    page = console_page("alice", viewport={"width": 1280, "height": 720})
    marie = _mail("RSA de mars", "Marie Dupont <marie.dupont@gmail.example>")
    page.wait_for_selector(".offer-card")
    tab_to(page, "[data-accept]")
    page.keyboard.press("Enter")
    page.wait_for_selector(f"#reply-text-{marie.pk}")
    karim = _mail("Attestation de paiement", "Karim Benali <karim.benali@gmail.example>")
    page.wait_for_selector(".offer-card")
    page.keyboard.press("Alt+Shift+A")
    page.wait_for_selector(f"#reply-text-{karim.pk}")
    # Back to Marie's conversation with the arrow keys of the list.
    page.focus(f"#tab-{karim.pk}")
    page.keyboard.press("ArrowUp")
    page.wait_for_function(
        "(id) => document.activeElement && document.activeElement.id === 'tab-' + id",
        arg=marie.pk,
    )
    assert page.is_visible(f"#reply-text-{marie.pk}")
    assert page.is_hidden(f"#reply-text-{karim.pk}")
    # End the conversation, then close it with a code from the wrap-up dialog.
    tab_to(page, f"#panel-{marie.pk} [data-action-form] button[type=submit]")
    page.keyboard.press("Enter")
    page.wait_for_selector(f"#panel-{marie.pk} .workspace[data-status=wrap_up]")
    # the answer stays next to the toolbar, and the focus goes to the next step: closing
    page.wait_for_selector(f"#action-feedback-{marie.pk}:not([hidden])")
    page.wait_for_function(
        "(id) => document.activeElement && "
        "document.activeElement.getAttribute('data-open-dialog') === 'wrap-dialog-' + id",
        arg=marie.pk,
    )
    page.keyboard.press("Enter")
    page.wait_for_selector(f"#wrap-dialog-{marie.pk}[open]")
    page.keyboard.press("End")  # the focus is on the wrap-up code
    tab_to(page, f"#wrap-dialog-{marie.pk} button[type=submit]")
    page.keyboard.press("Enter")
    page.wait_for_selector(f"#tab-{marie.pk}", state="detached")
    # The next conversation is selected and has the focus; what happened is written above it.
    page.wait_for_function(
        "(id) => document.activeElement && document.activeElement.id === 'tab-' + id",
        arg=karim.pk,
    )
    assert page.get_attribute(f"#tab-{karim.pk}", "aria-selected") == "true"
    assert page.is_visible(f"#reply-text-{karim.pk}")
    # Over the socket, the conversation's closing event may come before the action's answer.
    feedback = page.wait_for_selector("#work-feedback:not([hidden])")
    assert feedback.inner_text() == "Interaction close."
    marie.refresh_from_db()
    assert marie.status == "closed"


def test_declining_an_offer_and_changing_channels_answer_beside_them(
    centre: dict[str, Any], console_page: Callable[..., Any]
) -> None:
    page = console_page("alice", viewport={"width": 1280, "height": 720})
    _mail("RSA de mars", "Marie Dupont <marie.dupont@gmail.example>")
    page.wait_for_selector(".offer-card")
    page.click("[data-decline]")
    page.wait_for_selector(".offer-card", state="detached")
    answer = page.locator("#offers-feedback")
    answer.wait_for()  # shown in the offers column, not only to screen readers
    assert answer.inner_text() == "Proposition refusée."
    page.uncheck("#channels-form [value=sms]")
    channels = page.locator("#channels-feedback")
    channels.wait_for()
    assert channels.inner_text() == "Canaux mis à jour."
    # the server took it: its event reaches the console's state
    page.wait_for_function("() => !ConsoleDebug.state().agent.channels.includes('sms')")
