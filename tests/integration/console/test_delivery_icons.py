"""Issue 15, truthful states: each outbound message of the thread says its delivery state in
French words with a pictogram beside them (a clock, a tick, two ticks, a warning sign; hidden
from screen readers, who hear the words), and a failed one offers *Renvoyer*."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from interactions.models import Message
from tests.integration.test_admin_scope import verified
from tests.integration.test_api_scope import Body, caf

__all__ = ["caf"]

pytestmark = pytest.mark.django_db


def answers_in_every_state(caf: Body) -> dict[str, int]:
    """The colleague's answers in their SMS conversation, one per delivery state."""
    return {
        status: Message.objects.create(
            interaction=caf.interaction,
            direction="outbound",
            text=f"Réponse {status}",
            author=caf.colleague,
            delivery_status=status,
            channel="sms",
        ).pk
        for status in ("queued", "sent", "delivered", "failed")
    }


def test_each_delivery_state_is_in_french_words_with_its_pictogram(caf: Body) -> None:
    sent = answers_in_every_state(caf)
    client = Client(HTTP_ACCEPT_LANGUAGE="fr")
    verified(client, caf.colleague)
    page = client.get(f"/console/interactions/{caf.interaction.pk}/").content.decode()

    def line(pk: int) -> tuple[str, str, str]:
        found = re.search(
            rf'<p class="delivery delivery-(\w+)" id="delivery-{pk}"[^>]*>'
            r'<span class="delivery-icon" aria-hidden="true">([^<]+)</span> '
            r'<span class="delivery-label">([^<]+)</span>',
            page,
        )
        assert found, pk
        kind, icon, label = found.groups()
        return kind, icon, label

    assert line(sent["queued"]) == ("pending", "\u25f7", "Envoi en cours…")
    assert line(sent["sent"]) == ("sent", "\u2713", "Envoyé")
    assert line(sent["delivered"]) == ("delivered", "\u2713\u2713", "Remis")
    assert line(sent["failed"]) == ("failed", "\u26a0", "Non envoyé")
    assert page.count(">Renvoyer</button>") == 1  # the failed one only
