"""The console kept live in Chromium when a live message is lost: an offer written to the outbox
but never published shows on the open console without a reload (console/live.py, the
heartbeat catch-up)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from kernel import events
from routing.models import Offer

from .conftest import PASSWORD, LiveServer
from .test_console import _axe_serious, _email, _in_thread, centre

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
        # The answer to that post is announced too: wait for it, so it does not cover what the
        # test looks for next in the same region.
        page.wait_for_function(
            "() => document.getElementById('status-announcer').textContent.length > 0"
        )
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


RETRYING = (
    "tentative 1 échouée : l’opérateur SMS est injoignable ou ne répond pas ; "
    "nouvel essai dans 30 s"
)
FAILED = "non envoyé après 5 tentatives : l’opérateur SMS est injoignable ou ne répond pas"


def test_a_failed_sms_shows_live_with_its_reason_and_is_sent_again(
    centre: dict[str, Any], fast_console: Callable[..., Any]
) -> None:
    from channels_inbound.models import Endpoint
    from channels_inbound.sms.actions import _set_status
    from channels_inbound.sms.models import OutboundSms
    from contacts.actions import resolve_contact
    from interactions.actions import do_create_interaction, do_record_message
    from interactions.models import Interaction, Message

    def conversation() -> tuple[int, int]:
        Endpoint.objects.create(
            channel="sms", address="+33900000001", name="CAF", queue=centre["caf"]
        )
        contact = resolve_contact("phone", "+33612345678").contact
        interaction = do_create_interaction(
            channel="sms", contact=contact, queue=centre["caf"], subject="SMS", enqueue=False
        )
        Interaction.objects.filter(pk=interaction.pk).update(
            status="assigned", assigned_agent=centre["alice"]
        )
        interaction.refresh_from_db()
        reply = do_record_message(
            interaction=interaction,
            direction="outbound",
            text="Votre dossier est complet.",
            author=centre["alice"].user,
        ).message
        Message.objects.filter(pk=reply.pk).update(delivery_status="pending")
        outbound = OutboundSms.objects.create(
            interaction=interaction,
            message=reply,
            to="+33612345678",
            from_number="+33900000001",
            body=reply.text,
        )
        return interaction.pk, outbound.pk

    interaction_id, outbound_id = _in_thread(conversation)
    page = fast_console("alice")
    thread = f"#thread-{interaction_id}"
    page.wait_for_selector(f"{thread} .delivery-pending")
    assert "Envoi en cours" in page.inner_text(f"{thread} .delivery")

    def change(status: str, reason: str) -> None:
        outbound = OutboundSms.objects.get(pk=outbound_id)
        _set_status(outbound, status, error_code="", error=reason)  # publishes message.status

    # An attempt failed, another is planned: said live, politely.
    _in_thread(lambda: change("pending", RETRYING))
    page.locator(f"{thread} .delivery", has_text="nouvel essai dans 30 s").wait_for()
    assert "Pas encore envoyé" in page.inner_text(f"{thread} .delivery")
    page.wait_for_function(
        "() => document.getElementById('status-announcer').textContent.includes('tentative 1')"
    )
    # The last attempt failed: in words in the thread, and in the alert region.
    _in_thread(lambda: change("failed", FAILED))
    page.locator(f"{thread} .delivery-failed", has_text=FAILED).wait_for()
    assert "Non envoyé" in page.inner_text(f"{thread} .delivery-failed")
    alert = page.locator("#console-alerts .console-alert")
    alert.wait_for()
    assert "n’a pas pu être envoyé" in alert.inner_text()
    assert FAILED in alert.inner_text()
    assert page.get_attribute("#console-alerts", "role") == "alert"
    assert _axe_serious(page) == [], "a failed SMS with its actions"

    # "Send again": a new message, through the normal reply path, handed to the provider.
    page.click(f"{thread} form[data-retry] button")
    page.wait_for_function(
        "() => document.getElementById('status-announcer').textContent.includes('Renvoyé')"
    )
    page.wait_for_function(
        "(sel) => document.querySelectorAll(sel + ' .msg-outbound').length === 2", arg=thread
    )
    again = Message.objects.filter(interaction_id=interaction_id, direction="outbound").latest("id")
    assert again.text == "Votre dossier est complet."
    sms = OutboundSms.objects.get(message=again)
    assert sms.to == "+33612345678"
    assert OutboundSms.objects.get(pk=outbound_id).status == "failed"  # the old one as it was
    page.locator(f"#msg-{again.pk} .delivery").wait_for()
    # The button pressed was re-rendered with the thread: the focus is on the thread, not lost.
    page.wait_for_function("() => document.activeElement.classList.contains('thread-box')")


def test_a_picture_the_provider_could_not_give_is_shown_live_as_unavailable(
    centre: dict[str, Any], fast_console: Callable[..., Any]
) -> None:
    """An MMS picture is fetched after the message arrived: the open thread shows the outcome
    as soon as ``message.media`` is published, without a reload."""
    from channels_inbound import media
    from contacts.actions import resolve_contact
    from interactions.actions import do_create_interaction, do_record_message
    from interactions.models import Interaction, Message

    def mms() -> tuple[int, int]:
        contact = resolve_contact("phone", "+33612345670").contact
        interaction = do_create_interaction(
            channel="sms", contact=contact, queue=centre["caf"], subject="MMS", enqueue=False
        )
        Interaction.objects.filter(pk=interaction.pk).update(
            status="assigned", assigned_agent=centre["alice"]
        )
        interaction.refresh_from_db()
        message = do_record_message(
            interaction=interaction, direction="inbound", text="Voici mon justificatif"
        ).message
        entry = media.pending_entry(
            name="media-1", url="https://api.twilio.com/2010-04-01/M1", content_type="image/jpeg"
        )
        Message.objects.filter(pk=message.pk).update(attachments=[entry])
        return interaction.pk, message.pk

    interaction_id, message_id = _in_thread(mms)
    page = fast_console("alice")
    thread = f"#thread-{interaction_id}"
    page.locator(thread, has_text="Voici mon justificatif").wait_for()
    assert "indisponible" not in page.inner_text(thread)

    def given_up() -> None:
        message = Message.objects.select_related("interaction").get(pk=message_id)
        entry = media._unavailable(
            message.attachments[0], "unreachable", "refused", {"attempts": 5}
        )
        Message.objects.filter(pk=message_id).update(attachments=[entry])
        message.refresh_from_db()
        media._publish(message)

    _in_thread(given_up)
    page.locator(thread, has_text="indisponible").wait_for(timeout=10_000)
    assert "injoignable après 5 tentatives" in page.inner_text(thread)
