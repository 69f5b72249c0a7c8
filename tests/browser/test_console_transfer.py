"""Transfers in Chromium (issue 15): the note the transferring agent writes reaches the
colleague live, on the offer and then in the thread; a conversation transferred to a queue
goes to someone else than the agent who transferred it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from interactions.models import Message
from routing.models import Offer

from .conftest import open_action
from .test_console import _axe_serious, _email, centre

__all__ = ["centre"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
]


def test_the_transfer_note_reaches_the_colleague_and_a_queue_transfer_goes_to_someone_else(
    centre: dict[str, Any], console_page: Callable[..., Any]
) -> None:
    alice_page = console_page("alice")
    bob_page = console_page("bob")

    # Alice takes an e-mail, then hands it to Bob with a note.
    mail = _email("RSA de mars")
    alice_page.wait_for_selector(".offer-card")
    alice_page.click("[data-accept]")
    alice_page.wait_for_selector(f"#panel-{mail.pk} [data-composer]")
    open_action(alice_page, mail.pk, "transfer")
    alice_page.select_option(f"#transfer-{mail.pk}", f"agent:{centre['bob'].pk}")
    alice_page.fill(f"#transfer-note-{mail.pk}", "Pièce manquante : l’avis d’imposition.")
    alice_page.click(f"#panel-{mail.pk} form[action$='/transfer/'] button[type=submit]")
    alice_page.wait_for_selector(f"#tab-{mail.pk}", state="detached")

    # Bob's offer says who transferred it and shows the note; it is read out with the offer.
    card = bob_page.wait_for_selector(".offer-card")
    text = card.inner_text()
    assert "Transféré par" in text
    assert "Alice Martin" in text
    assert "Pièce manquante : l’avis d’imposition." in text
    bob_page.wait_for_function(
        "() => document.getElementById('announcer').textContent.includes('avis d’imposition')",
        timeout=5000,
    )
    assert _axe_serious(bob_page) == []

    # Once accepted, the note is in his thread, labelled as the transfer note.
    bob_page.click("[data-accept]")
    note = bob_page.locator(f"#thread-{mail.pk} .msg-transfer-note")
    note.wait_for()
    assert "Note de transfert – Alice Martin" in note.inner_text()
    assert "avis d’imposition" in note.inner_text()
    assert _axe_serious(bob_page) == []

    # Bob transfers it to the CAF queue: both are available with room, but it goes to Alice,
    # never back to Bob, with his note and the queue he chose.
    open_action(bob_page, mail.pk, "transfer")
    bob_page.select_option(f"#transfer-{mail.pk}", f"queue:{centre['caf'].pk}")
    bob_page.fill(f"#transfer-note-{mail.pk}", "Pour la cellule RSA")
    bob_page.click(f"#panel-{mail.pk} form[action$='/transfer/'] button[type=submit]")
    bob_page.wait_for_selector(f"#tab-{mail.pk}", state="detached")
    card = alice_page.wait_for_selector(".offer-card")
    text = card.inner_text()
    assert "Bob Durand" in text
    assert "Pour la cellule RSA" in text
    assert bob_page.query_selector(".offer-card") is None
    assert Offer.objects.get(interaction=mail, status="pending").agent_id == centre["alice"].pk
    # Both notes are internal notes by the agents: nothing was sent to the citizen (the only
    # outbound message is the automatic acknowledgement of their e-mail).
    written = Message.objects.filter(interaction=mail, author__isnull=False).order_by("id")
    assert [(m.direction, m.author_id) for m in written] == [
        ("note", centre["alice"].user_id),
        ("note", centre["bob"].user_id),
    ]
