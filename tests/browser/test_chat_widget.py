"""The web chat widget in Chromium, embedded on a partner site (another origin), with the agent
in the real console: pre-chat form, the bot's buttons, the hand-over and routing to the agent,
messages and typing both ways, a reload that keeps the conversation, and axe-core on the
widget in each of its states."""

from __future__ import annotations

import functools
import http.server
import re
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from channels_inbound.chat.models import ChatWidget
from interactions.models import Interaction
from tests.integration.channels.chat_helpers import (
    KEY,
    fresh_rate_limits,  # noqa: F401 - autouse fixture
    make_widget,
)

from .conftest import LiveServer, _free_port

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
]

PARTNER_PAGE = """<!DOCTYPE html>
<html lang="{lang}">
<head><meta charset="utf-8"><title>Mairie d'Exemple</title></head>
<body>
  <header><p>Mairie d'Exemple</p></header>
  <main><h1>Mairie d'Exemple</h1>
    <p>Horaires, démarches et actualités de la commune.</p></main>
  <script src="{script}" data-widget="{key}" data-lang="{lang}" defer></script>
</body>
</html>
"""


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def partner_site(tmp_path: Path, live_server_asgi: LiveServer) -> Iterator[str]:
    """A mairie's website on another origin (``http://localhost:<port>``) embedding the
    widget with the documented snippet."""
    script = f"{live_server_asgi.url}/static/chat/widget.js"
    for name, lang in (("index.html", "fr"), ("en.html", "en")):
        (tmp_path / name).write_text(
            PARTNER_PAGE.format(script=script, key=KEY, lang=lang), encoding="utf-8"
        )
    port = _free_port()
    handler = functools.partial(_Quiet, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://localhost:{port}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def chat_widget(partner_site: str, make_user: Callable[..., Any]) -> ChatWidget:
    widget = make_widget()
    widget.allowed_origins = partner_site  # only the partner site (and our own pages)
    widget.save()
    from agents.models import AgentSkill
    from configuration.models import Skill

    claire = make_user("claire", first_name="Claire", last_name="Martin")
    AgentSkill.objects.create(
        agent=claire.agent_profile, skill=Skill.objects.get(code="etat-civil"), level=4
    )
    return widget


def _axe_serious(page: Any) -> list[str]:
    """Serious and critical axe-core violations inside the widget (its shadow root)."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page, context={"include": [[f"#ccw-host-{KEY}"]]})
    return [
        f"{v['id']} ({v['impact']}): "
        f"{[(n['target'], n.get('failureSummary')) for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v.get("impact") in {"serious", "critical"}
    ]


def test_a_citizen_passes_the_bot_chats_with_an_agent_and_keeps_it_across_a_reload(
    chat_widget: ChatWidget,
    partner_site: str,
    browser: Any,
    console_page: Callable[..., Any],
) -> None:
    agent_page = console_page("claire")
    context = browser.new_context(locale="fr-FR", viewport={"width": 1200, "height": 900})
    citizen = context.new_page()
    citizen.set_default_timeout(15_000)
    citizen.goto(partner_site)

    # The launcher is a real, labelled button; the window opens with focus on the first field.
    launcher = citizen.get_by_role("button", name="Discuter avec un conseiller")
    launcher.click()
    dialog = citizen.get_by_role("dialog", name="Mairie d'Exemple")
    dialog.wait_for()
    name = citizen.get_by_label("Votre nom")
    assert name.evaluate("el => el.getRootNode().activeElement === el")
    assert _axe_serious(citizen) == []

    # Sending the form empty marks the field, in words.
    dialog.get_by_role("button", name="Commencer la discussion").click()
    assert name.get_attribute("aria-invalid") == "true"
    assert dialog.get_by_text("Ce champ est obligatoire.").first.is_visible()

    # Pre-chat form: name and topic.
    name.fill("Awa Diallo")
    citizen.get_by_label("Quel est l'objet de votre demande ?").select_option(label="État civil")
    dialog.get_by_role("button", name="Commencer la discussion").click()

    # The bot greets, asks with buttons (the same flow engine as the phone's SVI).
    log = citizen.get_by_role("log", name="Conversation")
    log.get_by_text("Bonjour, je suis l'assistant de la mairie.").wait_for()
    choices = citizen.get_by_role("group", name="Choisissez une réponse")
    first_choice = choices.get_by_role("button", name="Un acte de naissance")
    first_choice.wait_for()
    assert first_choice.evaluate("el => el.getRootNode().activeElement === el")
    assert _axe_serious(citizen) == []
    first_choice.click()
    choices.get_by_role("button", name="Pour moi").click()

    # Handed over: queued, position shown, then routed to Claire, who sees the offer live.
    log.get_by_text("Je vous mets en relation avec un conseiller.").wait_for()
    citizen.get_by_role("status").filter(has_text="file d'attente").wait_for()
    assert _axe_serious(citizen) == []
    interaction = Interaction.objects.get(channel="chat")
    assert interaction.required_skills == {"etat-civil": 3}
    card = agent_page.wait_for_selector(".offer-card")
    assert "État civil" in card.inner_text()
    assert "Awa Diallo" in card.inner_text()  # the name the visitor gave, never their token
    agent_page.click("[data-accept]")
    composer = f"#panel-{interaction.pk} [data-composer]"
    agent_page.wait_for_selector(composer)
    # The citizen reads "conseiller", never an internal word.
    log.get_by_text("Un conseiller vous répond\u00a0: Claire.").wait_for()

    # Agent -> citizen, with "Claire est en train d'écrire…" while she types.
    agent_page.type(composer, "Bonjour Madame Diallo, ")
    citizen.get_by_text("Claire est en train d'écrire…").wait_for()
    agent_page.type(composer, "je regarde votre demande.")
    agent_page.click(f"#panel-{interaction.pk} form[data-reply] button[type=submit]")
    log.get_by_text("Bonjour Madame Diallo, je regarde votre demande.").wait_for()

    # Citizen -> agent, with the typing indicator in the console.
    box = citizen.get_by_label("Votre message")
    box.type("C'est pour un acte de naissance ")
    agent_page.wait_for_function(
        "(id) => document.getElementById('typing-' + id).textContent.trim() !== ''",
        arg=interaction.pk,
    )
    box.type("de mon fils, né en 2015.")
    box.press("Enter")
    log.get_by_text("C'est pour un acte de naissance de mon fils, né en 2015.").wait_for()
    agent_page.locator(f"#thread-{interaction.pk} .msg-inbound", has_text="de mon fils").wait_for()
    # In the console, the citizen's messages carry the name given in the pre-chat form.
    assert (
        agent_page.locator(f"#thread-{interaction.pk} .msg-inbound strong").first.inner_text()
        == "Awa Diallo"
    )
    assert _axe_serious(citizen) == []

    # Every message of the widget shows when it was written: a <time datetime> (ISO 8601) with
    # the hour and minute in French; the citizen's own message is stamped with the time it was
    # sent.
    stamps = log.locator(".ccw-msg time.ccw-time").evaluate_all(
        "els => els.map(e => [e.getAttribute('datetime'), e.textContent,"
        " e.closest('.ccw-msg').className])"
    )
    assert len(stamps) >= 5, stamps
    for iso, shown, _kind in stamps:
        assert datetime.fromisoformat(iso.replace("Z", "+00:00")).tzinfo is not None
        assert re.fullmatch(r"\d{2}:\d{2}", shown), shown
    sent = [iso for iso, _shown, kind in stamps if "ccw-msg--citizen" in kind]
    assert sent, stamps
    written = datetime.fromisoformat(sent[-1].replace("Z", "+00:00"))
    assert abs((datetime.now(UTC) - written).total_seconds()) < 120
    assert not re.search(r"\bagents?\b", log.inner_text(), re.IGNORECASE), log.inner_text()

    # The citizen reloads the page: the window reopens with the whole conversation.
    citizen.reload()
    log = citizen.get_by_role("log", name="Conversation")
    for text in (
        "Bonjour, je suis l'assistant de la mairie.",
        "Bonjour Madame Diallo, je regarde votre demande.",
        "C'est pour un acte de naissance de mon fils, né en 2015.",
    ):
        log.get_by_text(text).wait_for()
    assert citizen.get_by_label("Votre message").is_visible()
    # ...and it goes on, both ways.
    agent_page.fill(composer, "Je vous l'envoie par courrier.")
    agent_page.click(f"#panel-{interaction.pk} form[data-reply] button[type=submit]")
    log.get_by_text("Je vous l'envoie par courrier.").wait_for()
    citizen.get_by_label("Votre message").fill("Merci beaucoup !")
    citizen.get_by_role("button", name="Envoyer", exact=True).click()
    thread = agent_page.locator(f"#thread-{interaction.pk} .msg-inbound")
    thread.filter(has_text="Merci beaucoup").wait_for()
    assert _axe_serious(citizen) == []

    # Keyboard: Escape closes the window and gives focus back to the launcher.
    citizen.get_by_label("Votre message").press("Escape")
    assert citizen.get_by_role("dialog").count() == 0
    assert launcher.evaluate("el => el.getRootNode().activeElement === el")

    stored = list(interaction.messages.order_by("id").values_list("direction", "text"))
    assert stored[1:] == [
        ("outbound", "Bonjour Madame Diallo, je regarde votre demande."),
        ("inbound", "C'est pour un acte de naissance de mon fils, né en 2015."),
        ("outbound", "Je vous l'envoie par courrier."),
        ("inbound", "Merci beaucoup !"),
    ]
    assert Interaction.objects.filter(channel="chat").count() == 1
    context.close()


def wait_in_english(browser: Any, partner_site: str) -> tuple[Any, Any]:
    """A visitor of the English page opens the widget, fills the pre-chat form and waits in the
    queue: (their browser context, the page)."""
    context = browser.new_context(locale="en-GB")
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(f"{partner_site}/en.html")
    page.get_by_role("button", name="Chat with an adviser").click()
    page.get_by_label("Your name").fill("Sam Taylor")
    page.get_by_label("What is your request about?").select_option(label="Civil status")
    page.get_by_role("button", name="Start the conversation").click()
    page.get_by_role("button", name="Autre chose").click()  # the flow's own (French) text
    page.get_by_role("status").filter(has_text="queue").wait_for()
    return context, page


def test_the_widget_in_english_and_its_ended_state_pass_axe(
    chat_widget: ChatWidget, partner_site: str, browser: Any
) -> None:
    context, page = wait_in_english(browser, partner_site)
    page.get_by_role("button", name="End the conversation").click()
    page.get_by_text("The conversation is over.").wait_for()
    assert page.get_by_role("button", name="Start a new conversation").evaluate(
        "el => el.getRootNode().activeElement === el"
    )
    page.get_by_role("button", name="Receive this conversation by e-mail").click()
    page.get_by_label("Your e-mail address").fill("sam@example.org")
    page.get_by_role("button", name="Send me the conversation").click()
    # Double opt-in: a link to confirm the address goes first, nothing of the conversation yet.
    page.get_by_text(
        "To receive the conversation, open the link we have just sent to sam@example.org."
    ).wait_for()
    assert _axe_serious(page) == []
    assert Interaction.objects.get(channel="chat").status == "abandoned"
    context.close()
