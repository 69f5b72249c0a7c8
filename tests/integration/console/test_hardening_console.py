"""Hardening of the console (issue 11): SMS replies within the provider's limit, and no open
redirect through the forms' ``next``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from channels_inbound.models import Endpoint
from channels_inbound.sms.models import OutboundSms
from contacts.actions import resolve_contact
from interactions.models import Message

from .test_views import JSON, _assigned

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(make_user: Callable[..., Any]) -> Any:
    return make_user("alice", first_name="Alice")


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _sms_interaction(agent: Any) -> Any:
    contact = resolve_contact("phone", "+33612345678").contact
    interaction = _assigned(agent, "sms", contact)
    assert interaction.queue is not None
    Endpoint.objects.create(
        channel="sms", address="+33900000001", name="CAF", queue=interaction.queue
    )
    return interaction


def test_an_sms_reply_over_the_provider_limit_is_refused_clearly(alice: Any, settings: Any) -> None:
    assert settings.SMS_MAX_OUTBOUND_CHARS == 1600  # Twilio's limit
    interaction = _sms_interaction(alice.agent_profile)
    client = _client(alice)
    too_long = "a" * 1601
    response = client.post(
        f"/console/interactions/{interaction.pk}/reply/", {"text": too_long}, headers=JSON
    )
    assert response.status_code == 400
    body = response.json()
    assert body["ok"] is False
    assert "1600" in body["message"]
    assert "1601" in body["message"]
    assert "SMS" in body["message"]
    assert "caractères" in body["message"]  # French first
    # nothing was recorded or sent (the console keeps the text in the composer on a 400)
    assert not Message.objects.filter(interaction=interaction, direction="outbound").exists()
    assert not OutboundSms.objects.exists()
    # in English for an English-speaking agent
    english = client.post(
        f"/console/interactions/{interaction.pk}/reply/",
        {"text": too_long},
        headers={**JSON, "accept-language": "en"},
    )
    assert "at most 1600 characters" in english.json()["message"]
    # an emoji counts two, as the provider and the console's counter count it
    emoji = client.post(
        f"/console/interactions/{interaction.pk}/reply/",
        {"text": "a" * 1599 + "😀"},
        headers=JSON,
    )
    assert emoji.status_code == 400
    # exactly the limit goes out
    ok = client.post(
        f"/console/interactions/{interaction.pk}/reply/", {"text": "a" * 1600}, headers=JSON
    )
    assert ok.status_code == 200, ok.content
    assert OutboundSms.objects.get().body == "a" * 1600


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example", "/\\evil.example"])
def test_console_forms_never_redirect_off_site(alice: Any, target: str) -> None:
    response = _client(alice).post("/console/state/", {"state": "available", "next": target})
    assert response.status_code == 302
    assert response["Location"] == "/console/"


def test_console_forms_keep_a_relative_next(alice: Any) -> None:
    response = _client(alice).post(
        "/console/state/", {"state": "available", "next": "/console/?tab=2"}
    )
    assert response["Location"] == "/console/?tab=2"
