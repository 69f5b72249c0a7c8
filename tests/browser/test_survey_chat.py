"""The satisfaction survey in the chat window (issue 14), in Chromium: a citizen finishes a
chat and rates it with the keyboard only; the survey state of the widget passes axe-core with
no violation at all."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from channels_inbound.chat.models import ChatWidget
from interactions.actions import do_transition_interaction
from interactions.lifecycle import Status
from interactions.models import Interaction
from supervision.models import SatisfactionResponse
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


def _axe_all(page: Any) -> list[str]:
    """Every axe-core violation inside the widget (its shadow root), whatever its impact."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page, context={"include": [[f"#ccw-host-{KEY}"]]})
    return [
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
    ]


def _focused(locator: Any) -> bool:
    return bool(locator.evaluate("el => el.getRootNode().activeElement === el"))


def test_a_citizen_finishes_a_chat_and_rates_it_with_the_keyboard(
    chat_widget: ChatWidget, partner_site: str, browser: Any, make_user: Callable[..., Any]
) -> None:
    # given the mairie's queue asks the survey
    SurveySettings.objects.create(queue=chat_widget.endpoint.queue, enabled=True)
    claire = make_user("claire.survey", first_name="Claire").agent_profile
    context = browser.new_context(locale="fr-FR")
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(partner_site)
    # the citizen starts a chat, keyboard only
    launcher = page.get_by_role("button", name="Discuter avec un conseiller")
    launcher.focus()
    page.keyboard.press("Enter")
    name = page.get_by_label("Votre nom")
    name.wait_for()
    page.keyboard.type("Awa Diallo")
    page.get_by_label("Quel est l'objet de votre demande ?").select_option(label="État civil")
    page.get_by_role("button", name="Commencer la discussion").press("Enter")
    other = page.get_by_role("button", name="Autre chose")
    other.wait_for()
    other.press("Enter")
    page.get_by_role("status").filter(has_text="file d'attente").wait_for()
    # when an agent answers, then ends the conversation
    interaction = Interaction.objects.get(channel="chat")
    for status in (Status.OFFERED, Status.ASSIGNED):
        interaction = do_transition_interaction(
            interaction=interaction, to=status, extra={"assigned_agent": claire}
        )
    page.get_by_text("Un conseiller vous répond\u00a0: Claire.").wait_for()
    page.get_by_label("Votre message").focus()
    do_transition_interaction(interaction=interaction, to=Status.WRAP_UP, reason="agent_ended")
    # then the window shows the survey, the first score has the focus
    page.get_by_text("La conversation est terminée.").wait_for()
    survey = page.get_by_role(
        "group", name="Êtes-vous satisfait de la réponse que vous avez reçue\u00a0?"
    )
    survey.wait_for()
    first = page.get_by_role("radio", name="1 sur 5\u00a0: très insatisfait")
    page.wait_for_function(
        "() => { const h = document.querySelector('[id^=ccw-host-]'); const a = h && h.shadowRoot"
        " && h.shadowRoot.activeElement; return !!a && a.name === 'ccw-score'; }"
    )
    assert _focused(first)
    assert _axe_all(page) == []
    # the citizen chooses 4 with the arrow keys, writes a comment and sends, keyboard only
    page.keyboard.press("Space")
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    assert page.get_by_role("radio", name="4 sur 5\u00a0: satisfait").is_checked()
    page.keyboard.press("Tab")
    assert _focused(page.get_by_label("Votre commentaire (facultatif)"))
    page.keyboard.type("Réponse rapide et claire.")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    thanks = page.get_by_role("status").filter(has_text="Merci pour votre réponse.")
    thanks.wait_for()
    assert _focused(thanks)
    assert _axe_all(page) == []
    answer = SatisfactionResponse.objects.get(interaction=interaction)
    assert (answer.score, answer.comment) == (4, "Réponse rapide et claire.")
    context.close()
