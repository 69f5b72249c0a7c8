"""A message that could not be sent: its state and reason in the thread, sent again as a new
message through the normal reply path, or on the citizen's other channel (console/views.py,
``retry_message``); only by the agent holding the conversation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.core import mail
from django.test import Client

from channels_inbound.email.models import EmailThreadEntry
from channels_inbound.models import Endpoint
from channels_inbound.sms.actions import _set_status
from channels_inbound.sms.models import OutboundSms
from configuration.models import Queue
from contacts.actions import do_add_identity
from interactions.models import Interaction, Message

from .test_hardening_console import _client, _sms_interaction, alice
from .test_views import JSON

__all__ = ["alice"]

pytestmark = pytest.mark.django_db

REASON = "non envoyé après 5 tentatives : l’opérateur SMS est injoignable ou ne répond pas"


def _sms_conversation(agent: Any) -> Interaction:
    """An SMS conversation the agent holds, with the centre's SMS number on its queue."""
    interaction: Interaction = _sms_interaction(agent)
    Interaction.objects.filter(pk=interaction.pk).update(subject="Mon RSA")
    interaction.refresh_from_db()
    return interaction


def _failed_reply(alice: Any, interaction: Interaction, capture: Callable[..., Any]) -> Message:
    """Alice's reply, which the provider never took (its retries exhausted)."""
    with capture(execute=False):  # its sending task is not run: it fails below
        response = _client(alice).post(
            f"/console/interactions/{interaction.pk}/reply/",
            {"text": "Votre dossier est complet."},
            headers=JSON,
        )
    assert response.status_code == 200, response.content
    message = Message.objects.get(pk=response.json()["message_id"])
    outbound = OutboundSms.objects.get(message=message)
    outbound.attempts = 5
    _set_status(outbound, "failed", error_code="", error=REASON)
    message.refresh_from_db()
    assert message.delivery_status == "failed"
    return message


def _thread(client: Client, interaction: Interaction) -> str:
    response = client.get(f"/console/interactions/{interaction.pk}/thread/")
    assert response.status_code == 200
    return response.content.decode()


def test_a_failed_sms_shows_why_and_is_sent_again_as_a_new_pending_message(
    alice: Any, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    interaction = _sms_conversation(alice.agent_profile)
    failed = _failed_reply(alice, interaction, django_capture_on_commit_callbacks)
    client = _client(alice)
    thread = _thread(client, interaction)
    assert "Non envoyé" in thread
    assert REASON in thread
    assert f'action="/console/messages/{failed.pk}/retry/"' in thread
    assert "Renvoyer" in thread

    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = client.post(f"/console/messages/{failed.pk}/retry/", headers=JSON)
    assert response.status_code == 200, response.content
    assert response.json()["ok"] is True
    again = Message.objects.get(pk=response.json()["message_id"])
    assert again.pk != failed.pk
    assert (again.text, again.channel, again.author_id) == (failed.text, "sms", alice.pk)
    assert again.delivery_status == "pending"
    sms = OutboundSms.objects.get(message=again)
    assert (sms.status, sms.to, sms.attempts) == ("pending", "+33612345678", 0)
    failed.refresh_from_db()
    assert failed.delivery_status == "failed"  # the failed one stays as it was
    # Its sending was queued after the commit: running it hands the SMS to the provider.
    assert queued
    for callback in queued:
        callback()
    sms.refresh_from_db()
    assert sms.sid
    assert sms.status == "queued"  # the provider has it: still on its way to the phone
    assert "Envoi en cours" in _thread(client, interaction)


def test_only_the_agent_holding_the_conversation_may_send_again(
    alice: Any,
    make_user: Callable[..., Any],
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    interaction = _sms_conversation(alice.agent_profile)
    failed = _failed_reply(alice, interaction, django_capture_on_commit_callbacks)
    url = f"/console/messages/{failed.pk}/retry/"
    bob = make_user("bob")  # an agent of the same organisation who does not hold it
    assert _client(bob).post(url, headers=JSON).status_code == 404
    supervisor = make_user("sophie", "supervisor")
    assert _client(supervisor).post(url, headers=JSON).status_code == 403
    assert _client(alice).post("/console/messages/999999/retry/", headers=JSON).status_code == 404
    # In wrap-up, no more replies: refused, like a reply.
    Interaction.objects.filter(pk=interaction.pk).update(status="wrap_up")
    answer = _client(alice).post(url, headers=JSON)
    assert answer.status_code == 409
    assert "wrap-up" in answer.json()["message"] or "clôture" in answer.json()["message"]
    assert Message.objects.filter(interaction=interaction, direction="outbound").count() == 1


def test_a_message_that_did_not_fail_is_not_sent_again(
    alice: Any, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    interaction = _sms_conversation(alice.agent_profile)
    with django_capture_on_commit_callbacks(execute=False):
        reply = _client(alice).post(
            f"/console/interactions/{interaction.pk}/reply/", {"text": "Bonjour"}, headers=JSON
        )
    pending = reply.json()["message_id"]
    inbound = Message.objects.create(
        interaction=interaction, channel="sms", direction="inbound", text="Merci"
    )
    client = _client(alice)
    for message_id in (pending, inbound.pk):
        answer = client.post(f"/console/messages/{message_id}/retry/", headers=JSON)
        assert answer.status_code == 409
    assert Message.objects.filter(interaction=interaction, direction="outbound").count() == 1
    assert "Renvoyer" not in _thread(client, interaction)
    assert "Envoi en cours" in _thread(client, interaction)


def test_a_failed_sms_goes_by_email_when_the_citizen_has_an_address(
    alice: Any, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    interaction = _sms_conversation(alice.agent_profile)
    assert interaction.contact is not None
    failed = _failed_reply(alice, interaction, django_capture_on_commit_callbacks)
    client = _client(alice)
    assert "par e-mail" not in _thread(client, interaction)  # no address known yet
    refused = client.post(
        f"/console/messages/{failed.pk}/retry/", {"channel": "email"}, headers=JSON
    )
    assert refused.status_code == 400
    do_add_identity(contact=interaction.contact, kind="email", raw="marie@example.fr")
    Endpoint.objects.create(
        channel="email", address="caf@centre.example", name="CAF", queue=Queue.objects.get()
    )
    assert "Envoyer par e-mail à la place" in _thread(client, interaction)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/console/messages/{failed.pk}/retry/", {"channel": "email"}, headers=JSON
        )
    assert response.status_code == 200, response.content
    sent = Message.objects.get(pk=response.json()["message_id"])
    assert (sent.channel, sent.text, sent.author_id) == ("email", failed.text, alice.pk)
    entry = EmailThreadEntry.objects.get(stored_message=sent)
    assert (entry.citizen_address, entry.our_address) == (
        "marie@example.fr",
        "caf@centre.example",
    )
    assert "Mon RSA" in entry.subject
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["marie@example.fr"]
    assert failed.text in mail.outbox[0].body
    sent.refresh_from_db()
    assert sent.delivery_status == "sent"
    thread = _thread(client, interaction)
    assert "Par e-mail" in thread
    assert "Envoyé" in thread


def test_a_failed_email_goes_by_sms_to_the_citizens_number(
    alice: Any, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    interaction = _sms_conversation(alice.agent_profile)
    Interaction.objects.filter(pk=interaction.pk).update(channel="email")
    interaction.refresh_from_db()
    failed = Message.objects.create(
        interaction=interaction,
        channel="email",
        direction="outbound",
        text="Votre attestation est prête.",
        author=alice,
        delivery_status="failed",
    )
    client = _client(alice)
    assert "Envoyer par SMS à la place" in _thread(client, interaction)
    assert "Non envoyé" in _thread(client, interaction)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = client.post(
            f"/console/messages/{failed.pk}/retry/", {"channel": "sms"}, headers=JSON
        )
    assert response.status_code == 200, response.content
    sent = Message.objects.get(pk=response.json()["message_id"])
    assert (sent.channel, sent.text, sent.delivery_status) == ("sms", failed.text, "pending")
    sms = OutboundSms.objects.get(message=sent)
    assert (sms.to, sms.from_number) == ("+33612345678", "+33900000001")
    assert queued
    interaction.refresh_from_db()
    assert interaction.channel == "email"  # the conversation stays what it was
    assert "Par SMS" in _thread(client, interaction)
