"""The agent console in Chromium: two agents, live offers, replies, wrap-up, a server killed
mid-flow, a keyboard-only run, and axe-core on every console page."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from agents.models import AgentSkill
from channels_inbound.email.actions import do_ingest_email
from channels_inbound.models import Endpoint
from configuration.models import Queue, QueueSkill, Skill
from console.models import CannedResponse, WrapUpCode
from console.state import build_snapshot
from interactions.models import Interaction
from routing.models import Offer
from tests.integration.channels.email_helpers import OUR_ADDRESS, make_mail

from .conftest import LiveServer, open_action, tab_to

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def centre(make_user: Callable[..., Any]) -> dict[str, Any]:
    """A CAF mailbox needing the "rsa" skill at level 2; Alice (level 5) and Bob (level 3)."""
    rsa = Skill.objects.create(code="rsa", name="RSA")
    caf = Queue.objects.create(code="caf", name="CAF – RSA")
    QueueSkill.objects.create(queue=caf, skill=rsa, min_level=2)
    Queue.objects.create(code="mairie", name="Mairie – état civil")
    Endpoint.objects.create(channel="email", address=OUR_ADDRESS, name="CAF", queue=caf)
    WrapUpCode.objects.create(code="answered", label="Réponse apportée")
    CannedResponse.objects.create(
        title="Délai", text="Votre dossier est en cours de traitement.", language="fr"
    )
    alice = make_user("alice", first_name="Alice", last_name="Martin")
    bob = make_user("bob", first_name="Bob", last_name="Durand")
    AgentSkill.objects.create(agent=alice.agent_profile, skill=rsa, level=5)
    AgentSkill.objects.create(agent=bob.agent_profile, skill=rsa, level=3)
    return {"alice": alice.agent_profile, "bob": bob.agent_profile, "caf": caf}


def _email(subject: str, body: str = "Bonjour, où en est mon RSA ?") -> Interaction:
    """A citizen's e-mail arrives (ingested, then routed, in this process)."""

    def ingest() -> int:
        from django.db import connection

        try:
            raw = make_mail(subject=subject, body=body).as_bytes()
            return do_ingest_email(raw, recipients=[OUR_ADDRESS]).interaction_id
        finally:
            connection.close()

    # In a thread of its own: Playwright's event loop runs in this one, and publishing
    # events after commit uses async_to_sync, which refuses to run beside a running loop.
    with ThreadPoolExecutor(max_workers=1) as pool:
        interaction_id = pool.submit(ingest).result(timeout=30)
    return Interaction.objects.get(pk=interaction_id)


def _axe_serious(page: Any) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v.get("impact") in {"serious", "critical"}
    ]


def test_two_agents_offer_accept_reply_decline_reconnect_wrap_up(
    centre: dict[str, Any], console_page: Callable[..., Any], live_server_asgi: LiveServer
) -> None:
    alice_page = console_page("alice")
    bob_page = console_page("bob")

    # An e-mail arrives: it is offered to Alice, the more competent, who sees it live.
    first = _email("RSA de mars")
    card = alice_page.wait_for_selector(".offer-card")
    assert "RSA de mars" in card.inner_text()
    assert "CAF – RSA" in card.inner_text()
    # Announced to screen readers (written a moment after the region is cleared).
    alice_page.wait_for_function(
        "() => document.getElementById('announcer').textContent.length > 0",
        timeout=5000,
    )
    assert bob_page.query_selector(".offer-card") is None
    countdown = alice_page.inner_text("[data-countdown]")
    assert int(countdown.split()[0]) > 0

    # She accepts: the offer leaves, a tab opens on the conversation, and she replies.
    alice_page.click("[data-accept]")
    alice_page.wait_for_selector(f"#panel-{first.pk} [data-composer]")
    assert alice_page.query_selector(".offer-card") is None
    alice_page.fill(f"#panel-{first.pk} [data-composer]", "Bonjour, votre dossier avance.")
    alice_page.click(f"#panel-{first.pk} form[data-reply] button[type=submit]")
    alice_page.locator(f"#thread-{first.pk} .msg-outbound", has_text="votre dossier").wait_for()
    reply = first.messages.get(direction="outbound", author__isnull=False)
    assert reply.text == "Bonjour, votre dossier avance."
    assert reply.provider_id  # an e-mail Message-ID: sent through do_send_email_reply
    shot = Path(settings.DATA_DIR) / "console.png"
    alice_page.screenshot(path=str(shot), full_page=True)
    if os.environ.get("CONSOLE_SCREENSHOT"):
        (ROOT / "docs" / "img").mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, ROOT / "docs" / "img" / "console.png")

    # The server dies mid-flow; while it is down a second e-mail is offered to Alice.
    live_server_asgi.kill()
    alice_page.wait_for_selector("#console[data-connected=false]")
    second = _email("Attestation de paiement")
    assert Offer.objects.get(interaction=second, status="pending").agent_id == centre["alice"].pk
    live_server_asgi.start()
    alice_page.wait_for_selector("#console[data-connected=true]", timeout=30_000)
    alice_page.wait_for_selector(".offer-card")
    # What the reconnected console holds is what a fresh page load would show.
    state = alice_page.evaluate("ConsoleDebug.state()")
    fresh = build_snapshot(centre["alice"])
    assert sorted(state["offers"]) == sorted(fresh["offers"])
    assert sorted(state["interactions"]) == sorted(fresh["interactions"])
    assert state["agent"]["state"] == fresh["agent"]["state"] == "available"

    # Alice declines the second one: it goes to Bob, live.
    alice_page.click("[data-decline]")
    bob_card = bob_page.wait_for_selector(".offer-card")
    assert "Attestation de paiement" in bob_card.inner_text()
    alice_page.wait_for_selector(".offer-card", state="detached")

    # Alice wraps up the first one with a code and notes (in the wrap-up dialog): its tab closes.
    open_action(alice_page, first.pk, "wrap")
    alice_page.select_option(f"#code-{first.pk}", label="Réponse apportée")
    alice_page.fill(f"#wrap-notes-{first.pk}", "Dossier complet")
    alice_page.click(f"#panel-{first.pk} form[action$='/close/'] button[type=submit]")
    alice_page.wait_for_selector(f"#tab-{first.pk}", state="detached")
    first.refresh_from_db()
    assert first.status == "closed"
    code = first.wrap_up.code
    assert code is not None
    assert code.code == "answered"
    assert first.wrap_up.notes == "Dossier complet"


def test_offer_disappears_when_it_times_out(
    centre: dict[str, Any], console_page: Callable[..., Any], settings: Any
) -> None:
    settings.ROUTING_OFFER_TIMEOUTS = {**settings.ROUTING_OFFER_TIMEOUTS, "email": 3}
    page = console_page("alice")
    _email("Bientôt expiré")
    page.wait_for_selector(".offer-card")
    page.wait_for_selector(".offer-card", state="detached", timeout=8_000)
    assert "(0)" in page.inner_text("#offer-count")


def test_keyboard_only_whole_flow(
    centre: dict[str, Any], browser: Any, live_server_asgi: LiveServer
) -> None:
    context = browser.new_context(locale="fr-FR", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        # log in with the keyboard
        page.goto(f"{live_server_asgi.url}/accounts/login/?next=/console/")
        # The username field has the focus once the page is ready (autofocus): typing before
        # that lost the first keys on a loaded machine.
        page.wait_for_function("() => document.activeElement?.name === 'username'")
        page.keyboard.type("alice")
        page.keyboard.press("Tab")
        page.keyboard.type("pw-Test-2026!")
        page.keyboard.press("Enter")
        page.wait_for_selector("#console[data-connected=true]")
        # go available: the status list, then its button
        tab_to(page, "#state-select")
        page.keyboard.press("Home")
        tab_to(page, "#state-form button[type=submit]")
        page.keyboard.press("Enter")
        page.wait_for_selector("#state-label.state-available")
        # an offer arrives; reach Accept with Tab and press Enter
        interaction = _email("Changement d'adresse")
        page.wait_for_selector(".offer-card")
        tab_to(page, "[data-accept]")
        page.keyboard.press("Enter")
        page.wait_for_selector(f"#panel-{interaction.pk} [data-composer]")
        # a canned response, then a few words, then send
        tab_to(page, f"#panel-{interaction.pk} [data-insert-canned]")
        page.keyboard.press("Enter")
        page.keyboard.type(" Cordialement.")
        assert "en cours de traitement" in page.input_value(f"#reply-text-{interaction.pk}")
        tab_to(page, f"#panel-{interaction.pk} form[data-reply] button[type=submit]")
        page.keyboard.press("Enter")
        page.locator(f"#thread-{interaction.pk} .msg-outbound", has_text="Cordialement").wait_for()
        # after sending, the focus is back in the reply box
        page.wait_for_function(
            "(id) => document.activeElement && document.activeElement.id === 'reply-text-' + id",
            arg=interaction.pk,
        )
        # an internal note: its button opens a dialog with the focus in the note
        tab_to(page, f"[data-open-dialog='note-dialog-{interaction.pk}']")
        page.keyboard.press("Enter")
        page.wait_for_function(
            "(id) => document.activeElement && document.activeElement.id === 'note-text-' + id",
            arg=interaction.pk,
        )
        page.keyboard.type("Appeler la mairie")
        page.keyboard.press("Tab")
        page.keyboard.press("Enter")
        page.wait_for_selector(f"#thread-{interaction.pk} .msg-note")
        # the dialog closed, its answer is written next to the toolbar, the focus is back in
        # the reply box
        page.wait_for_selector(f"#note-dialog-{interaction.pk}:not([open])", state="attached")
        assert page.inner_text(f"#action-feedback-{interaction.pk}")
        page.wait_for_function(
            "(id) => document.activeElement && document.activeElement.id === 'reply-text-' + id",
            arg=interaction.pk,
        )
        # the transfer dialog opens and Escape closes it without transferring
        tab_to(page, f"[data-open-dialog='transfer-dialog-{interaction.pk}']", backwards=True)
        page.keyboard.press("Enter")
        page.wait_for_selector(f"#transfer-dialog-{interaction.pk}[open]")
        assert page.evaluate("() => document.activeElement.id") == f"transfer-{interaction.pk}"
        page.keyboard.press("Escape")
        page.wait_for_selector(f"#transfer-dialog-{interaction.pk}:not([open])", state="attached")
        # cancelled: the focus is back on the button that opened it
        page.wait_for_function(
            "(id) => document.activeElement && "
            "document.activeElement.getAttribute('data-open-dialog') === 'transfer-dialog-' + id",
            arg=interaction.pk,
        )
        # wrap-up code with the keyboard, notes, close
        tab_to(page, f"[data-open-dialog='wrap-dialog-{interaction.pk}']")
        page.keyboard.press("Enter")
        page.wait_for_selector(f"#wrap-dialog-{interaction.pk}[open]")
        tab_to(page, f"#code-{interaction.pk}")
        page.keyboard.press("End")
        tab_to(page, f"#wrap-notes-{interaction.pk}")
        page.keyboard.type("Fait")
        tab_to(page, f"#panel-{interaction.pk} form[action$='/close/'] button[type=submit]")
        page.keyboard.press("Enter")
        page.wait_for_selector(f"#tab-{interaction.pk}", state="detached")
        interaction.refresh_from_db()
        assert interaction.status == "closed"
        assert interaction.wrap_up.code is not None
        # the shortcut works too, and can be turned off
        second = _email("Autre question")
        page.wait_for_selector(".offer-card")
        page.keyboard.press("Alt+Shift+A")
        page.wait_for_selector(f"#panel-{second.pk}")
        tab_to(page, "#prefs-menu summary")
        page.keyboard.press("Enter")
        tab_to(page, "#pref-shortcuts")
        page.keyboard.press("Space")
        assert page.evaluate("localStorage.getItem('cc.shortcuts')") == "off"
        focus_visible = page.evaluate(
            "getComputedStyle(document.activeElement).outlineStyle !== 'none'"
        )
        assert focus_visible
    finally:
        context.close()


def test_axe_finds_no_serious_violation_on_console_pages(
    centre: dict[str, Any], console_page: Callable[..., Any], live_server_asgi: LiveServer
) -> None:
    page = console_page("alice")
    assert _axe_serious(page) == [], "empty console"
    interaction = _email("Question RSA")
    page.wait_for_selector(".offer-card")
    assert _axe_serious(page) == [], "console with an offer"
    page.click("[data-accept]")
    page.wait_for_selector(f"#panel-{interaction.pk} [data-composer]")
    assert _axe_serious(page) == [], "console with a workspace"
    page.goto(f"{live_server_asgi.url}/console/settings/")
    assert _axe_serious(page) == [], "telework settings"
    page.fill("#id_telework_phone", "06 12 34 56 78")
    page.click("form button[type=submit].primary")
    page.wait_for_selector("#id_telework_phone")
    centre["alice"].refresh_from_db()
    assert centre["alice"].telework_phone == "+33612345678"
    page.fill("#id_telework_phone", "12")
    page.click("form button[type=submit].primary")
    page.wait_for_selector("#phone-error")
    assert _axe_serious(page) == [], "telework settings with an error"
    page.goto(f"{live_server_asgi.url}/accounts/otp/enrol/")
    assert _axe_serious(page) == [], "second-factor enrolment"
    page.context.clear_cookies()
    page.goto(f"{live_server_asgi.url}/accounts/login/")
    assert _axe_serious(page) == [], "login"


def test_page_zoomed_to_200_percent_keeps_everything_reachable(
    centre: dict[str, Any], console_page: Callable[..., Any]
) -> None:
    page = console_page("alice")
    page.set_viewport_size({"width": 640, "height": 500})  # 1280 px at 200 %
    _email("Zoom")
    page.wait_for_selector(".offer-card")
    overflow = page.evaluate("document.documentElement.scrollWidth > window.innerWidth + 1")
    assert not overflow, "horizontal scrolling at 200 % zoom"
    page.click("[data-accept]")
    page.wait_for_selector("[data-composer]")
    assert not page.evaluate("document.documentElement.scrollWidth > window.innerWidth + 1")


def test_sms_composer_counts_characters_and_segments(
    centre: dict[str, Any], console_page: Callable[..., Any]
) -> None:
    page = console_page("alice")

    def arrive() -> int:
        from django.db import connection

        from contacts.actions import resolve_contact
        from interactions.actions import do_create_interaction

        try:
            contact = resolve_contact("phone", "+33612345678").contact
            return do_create_interaction(
                channel="sms", contact=contact, queue=centre["caf"], subject="SMS"
            ).pk
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        interaction_id = pool.submit(arrive).result(timeout=30)
    card = page.wait_for_selector(".offer-card")
    assert "+33612345678" in card.inner_text()  # an unnamed citizen shows their number
    page.click("[data-accept]")
    composer = page.wait_for_selector(f"#reply-text-{interaction_id}")
    counter = f"#counter-{interaction_id}"
    composer.fill("a" * 160)
    assert page.inner_text(counter).endswith(": 1 (GSM-7)")
    composer.fill("a" * 161)
    assert page.inner_text(counter).endswith(": 2 (GSM-7)")
    composer.fill("Merci 🙂")  # an emoji: the whole SMS is UCS-2 (70 characters a segment)
    assert page.inner_text(counter).endswith(": 1 (UCS-2)")
    composer.fill("é" * 70 + "€")  # é is GSM-7; € takes two units
    assert page.inner_text(counter).endswith(": 1 (GSM-7)")
    composer.fill("Une question\u00a0?")  # a non-breaking space goes out as a plain one
    assert page.inner_text(counter).endswith(": 1 (GSM-7)")


def test_a_status_picked_and_not_yet_sent_survives_a_live_update(
    centre: dict[str, Any], console_page: Callable[..., Any]
) -> None:
    from agents.presence import do_set_channels

    # given: Alice, offline, picks "available" in the status control, and has not pressed the
    # button yet (a keyboard user tabs from the list to the button)
    page = console_page("alice", available=False)
    page.select_option("#state-select", "available")
    page.focus("#state-form button[type=submit]")

    # when: a live update of her presence arrives meanwhile (here: her channels, changed in
    # another tab), and she presses the button
    def without_sms() -> None:
        from django.db import connection

        try:
            do_set_channels(agent=centre["alice"], channels=["voice", "chat", "email"])
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(without_sms).result(timeout=30)
    page.wait_for_function(
        "() => !document.querySelector('[data-channel-toggle][value=sms]').checked"
    )
    assert page.input_value("#state-select") == "available"  # her choice is still there
    page.keyboard.press("Enter")

    # then: she is available (before, the update put "offline" back in the list, and the
    # button sent that)
    page.wait_for_selector("#state-label.state-available")


def test_the_status_control_shows_a_state_the_agent_cannot_pick_and_never_blank(
    centre: dict[str, Any], console_page: Callable[..., Any]
) -> None:
    from agents.models import AgentProfile, AgentState, PauseReason
    from agents.presence import do_set_agent_state

    page = console_page("alice")
    pickable = page.eval_on_selector_all(
        "#state-select option:not([disabled])", "(options) => options.map((o) => o.value)"
    )
    assert "paused:lunch" in pickable
    assert "paused:supervisor" not in pickable
    assert "paused:missed" not in pickable

    def pause_by_supervisor() -> None:
        from django.db import connection

        try:
            agent = AgentProfile.objects.get(user__username="alice")
            do_set_agent_state(agent=agent, state=AgentState.PAUSED, reason=PauseReason.SUPERVISOR)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(pause_by_supervisor).result(timeout=30)
    page.wait_for_selector("#state-label.state-paused")
    assert page.input_value("#state-select") == "paused:supervisor"
    shown = page.eval_on_selector(
        "#state-select", "(s) => s.options[s.selectedIndex] && s.options[s.selectedIndex].text"
    )
    assert "superviseur" in shown
    # choosing it by hand is refused by the server, in words
    answer = page.evaluate(
        """() => {
            const data = new FormData(document.getElementById("state-form"));
            data.set("state", "paused:supervisor");
            return fetch("/console/state/", {method: "POST", body: data,
                headers: {"Accept": "application/json"}, credentials: "same-origin"})
                .then((r) => r.json().then((body) => [r.status, body.message]));
        }"""
    )
    assert answer[0] == 400
    assert "superviseur" in answer[1]


def test_email_subject_is_edited_in_the_composer(
    centre: dict[str, Any], console_page: Callable[..., Any]
) -> None:
    from channels_inbound.email.models import EmailThreadEntry

    page = console_page("alice")
    interaction = _email("RSA d'avril")
    assert interaction.case is not None
    reference = interaction.case.reference
    page.wait_for_selector(".offer-card")
    page.click("[data-accept]")
    subject = f"#reply-subject-{interaction.pk}"
    text = f"#reply-text-{interaction.pk}"
    send = f"#panel-{interaction.pk} form[data-reply] button[type=submit]"
    page.wait_for_selector(subject)
    assert page.input_value(subject) == f"Re: RSA d'avril [{reference}]"
    page.fill(text, "Bonjour, nous avons bien reçu vos pièces.")
    # Too long once the case reference is added back: refused, and nothing typed is lost.
    page.fill(subject, "x" * 250)
    page.click(send)
    # Functions, not expression strings: Playwright evaluates those with eval(), which the
    # Content-Security-Policy refuses.
    page.wait_for_function(
        "() => document.getElementById('announcer').textContent.includes('trop long')"
    )
    assert page.input_value(text) == "Bonjour, nous avons bien reçu vos pièces."
    assert page.input_value(subject) == "x" * 250
    # ... and shown in words next to the form, not only to screen readers
    refused = page.wait_for_selector(
        f"#panel-{interaction.pk} form[data-reply] .form-feedback.error"
    )
    assert "trop long" in refused.inner_text()
    # Enter in the subject moves on to the reply, it does not send.
    page.fill(subject, "Votre RSA : pièces reçues")
    page.press(subject, "Enter")
    assert page.evaluate("document.activeElement.id") == f"reply-text-{interaction.pk}"
    assert not interaction.messages.filter(direction="outbound", author__isnull=False).exists()
    page.click(send)
    page.locator(f"#thread-{interaction.pk} .msg-outbound", has_text="vos pièces").wait_for()
    sent = page.wait_for_selector(f"#panel-{interaction.pk} form[data-reply] .form-feedback.ok")
    assert "envoyée" in sent.inner_text()
    assert page.evaluate("() => document.activeElement.id") == f"reply-text-{interaction.pk}"
    reply = interaction.messages.get(direction="outbound", author__isnull=False)
    entry = EmailThreadEntry.objects.get(stored_message=reply)
    assert entry.subject == f"Votre RSA : pièces reçues [{reference}]"
    assert entry.references  # threaded on the citizen's message, whatever the subject
    # After sending, the composer proposes the default subject again.
    assert page.input_value(subject) == f"Re: RSA d'avril [{reference}]"


def test_a_wrong_identity_is_removed_with_the_keyboard_and_the_draft_stays(
    centre: dict[str, Any], console_page: Callable[..., Any]
) -> None:
    from contacts.actions import do_add_identity, find_contact

    page = console_page("alice")
    interaction = _email("Changement de numéro")
    assert interaction.contact is not None
    do_add_identity(contact=interaction.contact, kind="phone", raw="06 12 34 56 78")
    page.wait_for_selector(".offer-card")
    page.click("[data-accept]")
    text = f"#reply-text-{interaction.pk}"
    page.wait_for_selector(text)
    page.fill(text, "Bonjour, c'est corrigé.")
    side = f"#citizen-{interaction.pk}"
    tab_to(page, f"{side} details.citizen-edit summary")
    page.keyboard.press("Enter")
    remove = f"{side} button[aria-label='Retirer +33612345678 (numéro de téléphone)']"
    # The address the e-mail came from has no button: the conversation replies to it.
    assert page.query_selector(f"{side} button[aria-label^='Retirer marie']") is None
    assert _axe_serious(page) == [], "citizen panel with its corrections open"
    tab_to(page, remove)
    page.keyboard.press("Enter")
    page.wait_for_selector(remove, state="detached")
    page.wait_for_function(
        "() => document.getElementById('status-announcer').textContent.includes('Identité retirée')"
    )
    assert "+33612345678" not in page.inner_text(side)
    assert find_contact("phone", "0612345678") is None
    # Only the citizen panel was reloaded: the draft reply is still there, the corrections
    # stay open and the focus stays in the panel.
    assert page.input_value(text) == "Bonjour, c'est corrigé."
    assert page.query_selector(f"{side} details.citizen-edit[open]") is not None
    assert page.evaluate("document.activeElement.tagName") == "SUMMARY"


def _in_thread(work: Callable[[], Any]) -> Any:
    """Run ``work`` in a thread with its own connection (events published after commit use
    async_to_sync, which refuses to run beside Playwright's loop)."""

    def run() -> Any:
        from django.db import connection

        try:
            return work()
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result(timeout=30)


def test_a_chat_the_citizen_left_shows_a_notice_and_disables_the_composer(
    centre: dict[str, Any], console_page: Callable[..., Any]
) -> None:
    from channels_inbound.chat.actions import do_end_chat
    from channels_inbound.chat.models import ChatSession, ChatState, ChatWidget
    from interactions.actions import do_create_interaction

    def assigned_chat() -> tuple[int, Any]:
        interaction = do_create_interaction(
            channel="chat", contact=None, queue=centre["caf"], subject="Tchat", enqueue=False
        )
        Interaction.objects.filter(pk=interaction.pk).update(
            status="assigned", assigned_agent=centre["alice"]
        )
        endpoint = Endpoint.objects.create(
            channel="chat", address="widget-caf", name="CAF", queue=centre["caf"]
        )
        widget = ChatWidget.objects.create(endpoint=endpoint, title="CAF")
        session = ChatSession.objects.create(
            widget=widget, visitor_id="v1", state=ChatState.HANDED_OVER, interaction=interaction
        )
        return interaction.pk, session.pk

    interaction_id, session_id = _in_thread(assigned_chat)
    page = console_page("alice")
    composer = page.wait_for_selector(f"#reply-text-{interaction_id}")
    assert page.is_hidden(f"#chat-ended-{interaction_id}")
    composer.fill("Une dernière précision")

    _in_thread(lambda: do_end_chat(session_id=session_id))
    notice = page.wait_for_selector(f"#chat-ended-{interaction_id}", state="visible")
    assert "quitté ce chat" in notice.inner_text()
    assert page.is_disabled(f"#reply-text-{interaction_id}")
    assert page.is_disabled(f"#panel-{interaction_id} form[data-reply] button[type=submit]")
    assert page.input_value(f"#reply-text-{interaction_id}") == "Une dernière précision"
    # The announcement is written a moment after the region is cleared, so screen readers
    # read it out again: wait for it rather than reading the region at once.
    page.wait_for_function(
        "() => document.getElementById('announcer').textContent.includes('quitté ce chat')",
        timeout=5000,
    )


def test_an_accept_answered_500_keeps_the_offer_card(
    centre: dict[str, Any], console_page: Callable[..., Any]
) -> None:
    """Over the socket (the console's way while it is open): a failed answer leaves the offer
    shown, the console re-reads its state, and the agent can take it again."""
    page = console_page("alice")
    failing = {"on": True}
    actions: list[dict[str, Any]] = []

    def through(ws: Any) -> None:  # the real server behind, but a 500 for actions while failing
        server = ws.connect_to_server()

        def from_page(message: str | bytes) -> None:
            data = json.loads(message)
            if data.get("type") == "action":
                actions.append(data)
                if failing["on"]:
                    answer = {"status": 500, "ok": False, "message": "Server Error"}
                    ws.send(json.dumps({"type": "answer", "ref": data["ref"], **answer}))
                    return
            server.send(message)

        ws.on_message(from_page)

    page.route_web_socket("**/ws/console/", through)
    page.evaluate("ConsoleDebug.dropSocket()")  # it reconnects through the route
    page.wait_for_selector("#console[data-connected=true]")
    _email("RSA d'avril")
    page.wait_for_selector(".offer-card")
    with page.expect_response("**/console/snapshot/") as snapshot:
        page.click("[data-accept]")
    assert snapshot.value.status == 200
    page.wait_for_timeout(300)  # the fresh state rendered
    assert page.query_selector(".offer-card") is not None  # still pending: still shown
    assert len(page.evaluate("ConsoleDebug.state()")["offers"]) == 1
    failing["on"] = False
    page.click("[data-accept]")  # the agent can still take it
    page.wait_for_selector(".offer-card", state="detached")
    assert Offer.objects.get(agent=centre["alice"].pk).status == "accepted"
    assert [a["action"] for a in actions] == ["accept", "accept"]  # both over the socket


def test_without_its_socket_the_console_acts_over_http(
    centre: dict[str, Any], console_page: Callable[..., Any]
) -> None:
    """The socket down (a proxy that refuses it, a reconnection under way): the actions are
    posts to the endpoints, and a 500 there keeps the offer card too."""
    page = console_page("alice")
    _email("RSA d'avril")
    page.wait_for_selector(".offer-card")
    # No socket can open any more in this page: the console stays on its HTTP endpoints.
    page.evaluate("() => { window.WebSocket = function () { throw new Error('refused'); }; }")
    page.evaluate("ConsoleDebug.dropSocket()")
    page.wait_for_selector("#console[data-connected=false]")
    page.route("**/accept/", lambda route: route.fulfill(status=500, body="Server Error"))
    with page.expect_response("**/console/snapshot/") as snapshot:
        page.click("[data-accept]")
    assert snapshot.value.status == 200
    page.wait_for_timeout(300)  # the fresh state rendered
    assert page.query_selector(".offer-card") is not None
    page.unroute("**/accept/")
    with page.expect_response("**/accept/") as accepted:
        page.click("[data-accept]")
    assert accepted.value.status == 200
    assert Offer.objects.get(agent=centre["alice"].pk).status == "accepted"


def test_a_message_in_a_background_tab_is_marked_unread_and_counted_in_the_title(
    centre: dict[str, Any], console_page: Callable[..., Any]
) -> None:
    from interactions.actions import do_record_message

    page = console_page("alice")
    first = _email("RSA de mars")
    page.click("[data-accept]")
    page.wait_for_selector(f"#panel-{first.pk} [data-composer]")
    second = _email("Attestation de paiement")
    page.wait_for_selector(".offer-card")
    page.click("[data-accept]")
    page.wait_for_selector(f"#thread-{second.pk} .msg-inbound", state="attached")
    page.click(f"#tab-{first.pk}")  # the agent works on the first conversation

    def citizen_writes() -> None:
        from django.db import connection

        try:
            do_record_message(
                interaction=Interaction.objects.get(pk=second.pk),
                direction="inbound",
                text="J'ajoute mon avis d'imposition.",
            )
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(citizen_writes).result(timeout=30)
    badge = page.wait_for_selector(f"#tab-{second.pk} .unread")
    assert badge.inner_text().startswith("1")
    # screen readers hear it with the tab's name
    assert "nouveau message" in page.inner_text(f"#tab-{second.pk} .unread .visually-hidden")
    assert page.title().startswith("(1) ")
    assert page.query_selector(f"#tab-{first.pk} .unread") is None
    # Opening the tab reads it: the marker and the count in the title go.
    page.click(f"#tab-{second.pk}")
    page.wait_for_selector(f"#tab-{second.pk} .unread", state="detached")
    assert not page.title().startswith("(")


def test_desktop_notifications_are_off_until_the_agent_turns_them_on(
    centre: dict[str, Any], console_page: Callable[..., Any]
) -> None:
    page = console_page("alice")
    page.click("#prefs-menu summary")  # the preferences menu
    assert not page.is_checked("#pref-notify")  # off by default: the browser is not asked
    page.context.grant_permissions(["notifications"])
    page.check("#pref-notify")
    page.wait_for_function("() => window.localStorage.getItem('cc.notify') === 'on'")
    assert page.is_checked("#pref-notify")
    page.reload()
    page.wait_for_selector("#console[data-connected=true]")
    page.click("#prefs-menu summary")
    assert page.is_checked("#pref-notify")  # remembered in this browser
    page.uncheck("#pref-notify")
    assert page.evaluate("() => window.localStorage.getItem('cc.notify')") == "off"
