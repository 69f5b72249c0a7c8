"""axe-core on every state of the web chat widget (issue 15), on the partner page that embeds
it, whatever the impact: closed launcher, pre-chat form, its validation errors, the bot's
choices, waiting in the queue with the position, the adviser joined, messages both ways with
their times, an error, the connection lost and back, the conversation ended by the adviser with
the "follow my request" link and the survey (its error and its thanks), and a citizen who leaves
(in English). The whole page is checked, so landmark rules see the widget beside the page's own
banner (a second banner landmark once came from the window's title bar)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from channels_inbound.chat.actions import do_send_chat_message
from channels_inbound.chat.models import ChatWidget
from interactions.actions import do_transition_interaction
from interactions.lifecycle import Status
from interactions.models import Interaction
from surveys.models import SurveySettings
from tests.browser import test_chat_widget as chat
from tests.integration.channels.chat_helpers import (
    KEY,
    fresh_rate_limits,  # noqa: F401 - autouse fixture
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
]

partner_site = chat.partner_site
chat_widget = chat.chat_widget

HOST = f"#ccw-host-{KEY}"


def _axe(page: Any) -> list[str]:
    """Every axe-core violation on the whole page (the partner's and the widget's shadow root)."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [
        f"{v['id']} ({v['impact']}): "
        f"{[(n['target'], n.get('failureSummary')) for n in v['nodes']][:3]}"
        for v in results.response["violations"]
    ]


def _check(page: Any, state: str) -> None:
    # the widget is on the page and axe reached into its shadow root
    assert page.locator(HOST).count() == 1
    assert _axe(page) == [], state


def _widget_text(page: Any, selector: str) -> str:
    return str(
        page.evaluate(
            "([host, s]) => { const n = document.querySelector(host).shadowRoot.querySelector(s);"
            " return n ? n.textContent : ''; }",
            [HOST, selector],
        )
    )


class _Sockets:
    """The widget's WebSocket through Playwright: passed to the server, or refused (closed with
    1013 as a server restarting does) to show the lost connection."""

    def __init__(self) -> None:
        self.refuse = False
        self.routes: list[Any] = []

    def __call__(self, route: Any) -> None:
        if self.refuse:
            route.close(code=1013, reason="restarting")
            return
        route.connect_to_server()
        self.routes.append(route)

    def drop(self) -> None:
        self.refuse = True
        self.routes[-1].close(code=1013, reason="restarting")


def test_every_state_of_the_widget_passes_axe_with_no_violation(
    chat_widget: ChatWidget, partner_site: str, browser: Any, make_user: Callable[..., Any]
) -> None:
    SurveySettings.objects.create(queue=chat_widget.endpoint.queue, enabled=True)
    claire = make_user("claire.axe", first_name="Claire")
    context = browser.new_context(locale="fr-FR", viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    sockets = _Sockets()
    page.route_web_socket(re.compile(r"/ws/chat/"), sockets)
    page.goto(partner_site)

    # Closed: only the launcher.
    launcher = page.get_by_role("button", name="Discuter avec un conseiller")
    launcher.wait_for()
    assert page.get_by_role("dialog").count() == 0
    _check(page, "closed launcher")

    # The pre-chat form, then its errors (both fields, in words, each tied to its field).
    launcher.click()
    dialog = page.get_by_role("dialog", name="Mairie d'Exemple")
    dialog.wait_for()
    assert page.get_by_role("banner").count() == 1  # the partner's header; the widget adds none
    _check(page, "pre-chat form")
    dialog.get_by_role("button", name="Commencer la discussion").click()
    name = page.get_by_label("Votre nom")
    topic = page.get_by_label("Quel est l'objet de votre demande ?")
    assert name.get_attribute("aria-invalid") == "true"
    assert topic.get_attribute("aria-invalid") == "true"
    assert dialog.get_by_text("Ce champ est obligatoire.").first.is_visible()
    _check(page, "pre-chat validation errors")

    # The bot's choices.
    name.fill("Awa Diallo")
    topic.select_option(label="État civil")
    dialog.get_by_role("button", name="Commencer la discussion").click()
    other = page.get_by_role("group", name="Choisissez une réponse").get_by_role(
        "button", name="Autre chose"
    )
    other.wait_for()
    _check(page, "bot choices")

    # Waiting in the queue, with the position.
    other.click()
    page.get_by_role("status").filter(has_text="Vous êtes le prochain").wait_for()
    _check(page, "waiting with position")

    # The adviser joins and writes; the citizen answers: messages both ways with their times.
    interaction = Interaction.objects.get(channel="chat")
    for status in (Status.OFFERED, Status.ASSIGNED):
        interaction = do_transition_interaction(
            interaction=interaction, to=status, extra={"assigned_agent": claire.agent_profile}
        )
    log = page.get_by_role("log", name="Conversation")
    log.get_by_text("Un conseiller vous répond\u00a0: Claire.").wait_for()
    _check(page, "adviser joined")
    do_send_chat_message(
        interaction_id=interaction.pk, author_id=claire.pk, text="Bonjour, que puis-je faire ?"
    )
    log.get_by_text("Bonjour, que puis-je faire ?").wait_for()
    page.get_by_label("Votre message").fill("Un acte de naissance, s'il vous plaît.")
    page.get_by_label("Votre message").press("Enter")
    log.locator(".ccw-msg--citizen:not(.ccw-msg--unsent)").filter(
        has_text="Un acte de naissance"
    ).wait_for()
    assert log.locator("time.ccw-time").count() >= 4
    _check(page, "messages both ways")

    # An error: the transcript form refuses a wrong address, in words, on the field.
    page.get_by_role("button", name="Recevoir cette conversation par e-mail").click()
    address = page.get_by_label("Votre adresse e-mail")
    address.fill("awa@")
    page.get_by_role("button", name="M'envoyer la conversation").click()
    page.get_by_role("alert").filter(has_text="Saisissez une adresse e-mail valide.").wait_for()
    assert address.get_attribute("aria-invalid") == "true"
    _check(page, "error")

    # The connection drops: "reconnecting" is said; then it comes back, the message goes.
    sockets.drop()
    page.get_by_role("status").filter(has_text="Reconnexion").wait_for()
    assert "Reconnexion" in _widget_text(page, ".ccw-status")
    _check(page, "reconnecting")
    sockets.refuse = False
    page.wait_for_function(
        "(host) => !document.querySelector(host).shadowRoot.querySelector('.ccw-status')"
        ".textContent.includes('Reconnexion')",
        arg=HOST,
        timeout=30_000,
    )
    _check(page, "reconnected")

    # The adviser ends it: "over", the follow-my-request link and the survey.
    do_transition_interaction(interaction=interaction, to=Status.WRAP_UP, reason="agent_ended")
    page.get_by_text("La conversation est terminée.").wait_for()
    follow = page.get_by_role("link", name="Suivez votre demande en ligne")
    follow.wait_for()
    assert "/suivi/" in (follow.get_attribute("href") or "")
    page.get_by_role(
        "group", name="Êtes-vous satisfait de la réponse que vous avez reçue\u00a0?"
    ).wait_for()
    _check(page, "ended: follow link and survey")

    # The survey sent without a score: its error; then the thanks.
    send = page.locator(HOST).get_by_role("button", name="Envoyer ma note")
    send.click()
    page.get_by_text("Choisissez une note de 1 à 5.").wait_for()
    _check(page, "survey error")
    page.get_by_role("radio", name="5 sur 5\u00a0: très satisfait").check()
    send.click()
    page.get_by_role("status").filter(has_text="Merci pour votre réponse.").wait_for()
    _check(page, "survey thanks")
    context.close()


def test_a_citizen_who_leaves_sees_an_accessible_end_in_english(
    chat_widget: ChatWidget, partner_site: str, browser: Any
) -> None:
    context, page = chat.wait_in_english(browser, partner_site)
    _check(page, "waiting (English)")
    page.get_by_role("button", name="End the conversation").click()
    page.get_by_text("The conversation is over.").wait_for()
    page.get_by_role("link", name="Follow your request online").wait_for()
    assert Interaction.objects.get(channel="chat").status == Status.ABANDONED
    _check(page, "citizen left (English)")

    # The check sees into the widget's shadow root: a picture without a text alternative there
    # is reported.
    page.evaluate(
        "(host) => document.querySelector(host).shadowRoot.querySelector('.ccw-ended')"
        ".appendChild(Object.assign(document.createElement('img'), {src: 'data:,'}))",
        HOST,
    )
    assert any(v.startswith("image-alt") for v in _axe(page))
    context.close()
