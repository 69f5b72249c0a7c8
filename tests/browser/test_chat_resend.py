"""The chat widget keeps what the citizen typed while the server is away (issue 12): the message
shows at once, marked "not sent yet" in words, and goes in (once) when the server is back,
without the citizen typing it again."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from channels_inbound.chat.models import ChatWidget
from interactions.models import Message
from tests.integration.channels.chat_helpers import (
    KEY,
    fresh_rate_limits,  # noqa: F401 - autouse fixture
    make_widget,
)

from .conftest import LiveServer
from .test_chat_widget import _axe_serious, partner_site  # noqa: F401 - fixture

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
]

NOT_SENT_YET = "Pas encore envoyé\u00a0: il partira automatiquement dès que possible."


@pytest.fixture
def queued_widget(partner_site: str) -> ChatWidget:  # noqa: F811 - the fixture imported above
    widget = make_widget(flow=None)  # no bot: the chat is queued at once
    widget.allowed_origins = partner_site
    widget.save()
    return widget


@pytest.fixture
def server(live_server_asgi: LiveServer) -> Iterator[LiveServer]:
    yield live_server_asgi
    if live_server_asgi.process is None or live_server_asgi.process.poll() is not None:
        live_server_asgi.start()  # the next tests need it


def _inbound(text: str) -> list[str | None]:
    return list(
        Message.objects.filter(channel="chat", direction="inbound", text=text).values_list(
            "provider_id", flat=True
        )
    )


def test_a_message_typed_while_the_server_is_down_is_kept_and_sent_once_it_is_back(
    queued_widget: ChatWidget,
    partner_site: str,  # noqa: F811 - the fixture imported above
    server: LiveServer,
    browser: Any,
) -> None:
    context = browser.new_context(locale="fr-FR", viewport={"width": 1200, "height": 900})
    citizen = context.new_page()
    citizen.set_default_timeout(15_000)
    citizen.goto(partner_site)
    citizen.get_by_role("button", name="Discuter avec un conseiller").click()
    citizen.get_by_label("Votre nom").fill("Awa Diallo")
    citizen.get_by_label("Quel est l'objet de votre demande ?").select_option(label="Urbanisme")
    citizen.get_by_role("button", name="Commencer la discussion").click()
    citizen.get_by_role("status").filter(has_text="file d'attente").wait_for()
    log = citizen.get_by_role("log", name="Conversation")
    box = citizen.get_by_label("Votre message")

    # With the server there, a message is shown and acknowledged: no delivery line stays.
    box.fill("Bonjour, j'ai une question sur mon permis.")
    box.press("Enter")
    first = log.locator(".ccw-msg--citizen", has_text="j'ai une question")
    first.wait_for()
    citizen.wait_for_function(
        f"() => !document.querySelector('#ccw-host-{KEY}').shadowRoot"
        ".querySelector('.ccw-msg--unsent')"
    )
    assert first.locator(".ccw-delivery").count() == 0

    # The server goes away (a web process restarted); the citizen writes all the same.
    server.kill()
    citizen.get_by_text("Connexion perdue. Reconnexion en cours…").wait_for()
    box.fill("Le dossier porte le numéro PC 075 2026.")
    citizen.get_by_role("button", name="Envoyer", exact=True).click()
    pending = log.locator(".ccw-msg--citizen", has_text="PC 075 2026")
    pending.get_by_text(NOT_SENT_YET).wait_for()
    assert box.input_value() == ""  # kept in the log, not in the box: nothing to retype
    assert _inbound("Le dossier porte le numéro PC 075 2026.") == []
    assert _axe_serious(citizen) == []

    # The server is back: the widget reconnects and sends it, once, with its client id.
    server.start()
    pending.locator(".ccw-delivery").wait_for(state="detached", timeout=45_000)
    assert "ccw-msg--unsent" not in (pending.get_attribute("class") or "")
    stored = _inbound("Le dossier porte le numéro PC 075 2026.")
    assert len(stored) == 1, stored
    assert len(_inbound("Bonjour, j'ai une question sur mon permis.")) == 1
    # In the order written, each once in the window.
    texts = log.locator(".ccw-msg--citizen .ccw-text").all_inner_texts()
    assert texts == [
        "Bonjour, j'ai une question sur mon permis.",
        "Le dossier porte le numéro PC 075 2026.",
    ]
    context.close()
