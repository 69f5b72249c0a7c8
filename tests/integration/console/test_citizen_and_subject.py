"""Two corrections an agent makes from the console: the subject of an e-mail reply (edited in
the composer, checked, threading kept), and a wrong identity removed from the citizen panel."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from django.core import mail
from django.test import Client

from channels_inbound.email.actions import do_ingest_email
from channels_inbound.email.models import EmailThreadEntry
from channels_inbound.models import Endpoint
from configuration.models import Queue
from contacts.actions import (
    IdentityRemovalRefused,
    do_add_identity,
    do_merge_contacts,
    do_remove_identity,
    find_contact,
    resolve_contact,
)
from contacts.models import Contact, ContactIdentity, IdentityRemoval
from interactions.models import Interaction, Message
from tests.integration.channels.email_helpers import OUR_ADDRESS, make_mail, msgid

pytestmark = pytest.mark.django_db

JSON = {"accept": "application/json"}


@pytest.fixture
def alice(make_user: Callable[..., Any]) -> Any:
    return make_user("alice", first_name="Alice")


@pytest.fixture
def alice_client(alice: Any) -> Client:
    client = Client()
    client.force_login(alice)
    return client


# --------------------------------------------------------------------------- e-mail subject


@pytest.fixture
def citizen_mail(alice: Any) -> tuple[Interaction, str]:
    """Marie's e-mail, handled by Alice: (the interaction, the Message-ID it arrived with)."""
    queue = Queue.objects.create(code="caf-mail", name="CAF e-mail")
    Endpoint.objects.create(channel="email", address=OUR_ADDRESS, name="CAF du Rhône", queue=queue)
    first = make_mail(subject="Demande d'APL", body="Bonjour, où en est ma demande d'APL ?")
    result = do_ingest_email(first.as_bytes(), recipients=[OUR_ADDRESS])
    Interaction.objects.filter(pk=result.interaction_id).update(
        status="assigned", assigned_agent=alice.agent_profile
    )
    interaction = Interaction.objects.select_related("case").get(pk=result.interaction_id)
    assert interaction.case is not None
    mail.outbox.clear()
    return interaction, msgid(first)


def _reply(
    client: Client, interaction: Interaction, capture: Callable[..., Any], **data: str
) -> Any:
    with capture(execute=True):  # the mail leaves once the reply is committed
        return client.post(f"/console/interactions/{interaction.pk}/reply/", data, headers=JSON)


def test_the_composer_proposes_the_subject_in_an_editable_field(
    citizen_mail: tuple[Interaction, str], alice_client: Client
) -> None:
    interaction, _ = citizen_mail
    assert interaction.case is not None
    page = alice_client.get(f"/console/interactions/{interaction.pk}/").content.decode()
    field = re.search(r'<input type="text" id="reply-subject-\d+" name="subject"[^>]*>', page)
    assert field is not None
    assert f'value="Re: Demande d&#x27;APL [{interaction.case.reference}]"' in field.group()
    assert 'maxlength="255"' in field.group()
    assert f'<label for="reply-subject-{interaction.pk}">Objet</label>' in page
    assert "La référence du dossier" in page  # the hint says the reference stays


def test_the_edited_subject_is_sent_and_the_thread_headers_are_kept(
    citizen_mail: tuple[Interaction, str],
    alice_client: Client,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    interaction, first_id = citizen_mail
    assert interaction.case is not None
    reference = interaction.case.reference
    response = _reply(
        alice_client,
        interaction,
        django_capture_on_commit_callbacks,
        subject="  Votre APL : dossier complet  ",
        text="Bonjour Madame,\nVotre dossier est complet.",
    )
    assert response.status_code == 200, response.content
    (sent,) = mail.outbox
    # Stripped, and the case reference the agent left out is added back at the end.
    assert sent.subject == f"Votre APL : dossier complet [{reference}]"
    assert sent.extra_headers["In-Reply-To"] == f"<{first_id}>"
    assert sent.extra_headers["References"] == f"<{first_id}>"
    assert sent.to == ["marie.dupont@gmail.example"]
    assert "Votre dossier est complet." in sent.body
    # The agent sees in the interaction what went out.
    entry = EmailThreadEntry.objects.get(stored_message_id=response.json()["message_id"])
    assert entry.subject == sent.subject

    # A subject that keeps the reference (anywhere, any case) is sent as written.
    _reply(
        alice_client,
        interaction,
        django_capture_on_commit_callbacks,
        subject=f"[{reference.lower()}] Pièce manquante",
        text="Il manque votre RIB.",
    )
    assert mail.outbox[-1].subject == f"[{reference.lower()}] Pièce manquante"
    assert mail.outbox[-1].extra_headers["In-Reply-To"] == f"<{first_id}>"


def test_without_a_subject_the_proposed_one_is_sent(
    citizen_mail: tuple[Interaction, str],
    alice_client: Client,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    interaction, first_id = citizen_mail
    assert interaction.case is not None
    response = _reply(
        alice_client, interaction, django_capture_on_commit_callbacks, text="C'est en cours."
    )
    assert response.status_code == 200, response.content
    (sent,) = mail.outbox
    assert sent.subject == f"Re: Demande d'APL [{interaction.case.reference}]"
    assert sent.extra_headers["In-Reply-To"] == f"<{first_id}>"


@pytest.mark.parametrize(
    ("subject", "error"),
    [
        ("   ", "L’objet est vide"),
        ("Votre APL\r\nBcc: victime@example.fr", "sur une seule ligne"),
        ("Votre APL\nX-Injected: 1", "sur une seule ligne"),
        ("x" * 256, "L’objet est trop long\u00a0: 255 caractères au plus"),
        ("x" * 250, "référence du dossier comprise"),  # 250 + " [DOS-…]" does not fit
    ],
)
def test_a_bad_subject_is_refused_and_nothing_is_sent(
    citizen_mail: tuple[Interaction, str],
    alice_client: Client,
    django_capture_on_commit_callbacks: Callable[..., Any],
    subject: str,
    error: str,
) -> None:
    interaction, _ = citizen_mail
    outbound = Message.objects.filter(interaction=interaction, direction="outbound")
    before = outbound.count()  # the acknowledgement
    response = _reply(
        alice_client,
        interaction,
        django_capture_on_commit_callbacks,
        subject=subject,
        text="Bonjour Madame,",
    )
    assert response.status_code == 400
    body = response.json()
    assert body["ok"] is False  # the console keeps the form as typed when ok is false
    assert error in body["message"]
    assert mail.outbox == []
    assert outbound.count() == before
    assert not outbound.filter(author__isnull=False).exists()
    interaction.refresh_from_db()
    assert interaction.status == "assigned"  # still the agent's, the reply can be sent again


def test_the_subject_is_ignored_on_other_channels(
    alice: Any, alice_client: Client, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    from interactions.actions import do_create_interaction

    queue = Queue.objects.create(code="caf", name="CAF")
    Endpoint.objects.create(channel="sms", address="+33900000001", name="CAF", queue=queue)
    contact = resolve_contact("phone", "+33612345678").contact
    interaction = do_create_interaction(channel="sms", contact=contact, queue=queue, enqueue=False)
    Interaction.objects.filter(pk=interaction.pk).update(
        status="assigned", assigned_agent=alice.agent_profile
    )
    response = alice_client.post(
        f"/console/interactions/{interaction.pk}/reply/",
        {"text": "Bonjour", "subject": "a\r\nb"},
        headers=JSON,
    )
    assert response.status_code == 200, response.content
    assert Message.objects.get(interaction=interaction, direction="outbound").text == "Bonjour"


# --------------------------------------------------------------------------- removing identities


def _panel(client: Client, contact_id: int) -> str:
    response = client.get(f"/console/citizens/{contact_id}/")
    assert response.status_code == 200
    return response.content.decode()


def _remove(client: Client, contact_id: int, identity_id: int) -> Any:
    return client.post(
        f"/console/citizens/{contact_id}/identities/{identity_id}/remove/", headers=JSON
    )


def test_a_wrong_number_is_removed_from_the_panel_and_no_longer_finds_the_citizen(
    citizen_mail: tuple[Interaction, str], alice: Any, alice_client: Client
) -> None:
    interaction, _ = citizen_mail
    marie = interaction.contact
    assert marie is not None
    wrong = do_add_identity(contact=marie, kind="phone", raw="06 12 34 56 78")
    page = _panel(alice_client, marie.pk)
    assert 'aria-label="Retirer +33612345678 (numéro de téléphone)"' in page
    # the address Marie wrote from is what the open conversation replies to: no button
    assert 'aria-label="Retirer marie.dupont@gmail.example' not in page
    assert "une conversation en cours l’utilise" in page

    response = _remove(alice_client, marie.pk, wrong.pk)
    assert response.status_code == 200, response.content
    assert response.json()["message"].startswith("Identité retirée\u00a0: +33612345678.")
    assert "+33612345678" not in _panel(alice_client, marie.pk)
    assert find_contact("phone", "06 12 34 56 78") is None
    # The next contact from that number is somebody else's record, not Marie's.
    other = resolve_contact("phone", "06 12 34 56 78")
    assert other.created
    assert other.contact != marie
    # Marie's record and history stay; the removal is audited.
    assert Interaction.objects.filter(contact=marie).count() == 1
    assert find_contact("email", "marie.dupont@gmail.example") == marie
    (removal,) = IdentityRemoval.objects.all()
    assert (removal.contact, removal.kind, removal.value) == (marie, "phone", "+33612345678")
    assert removal.removed_by == alice
    # Removed twice (another tab, a colleague): refused, said plainly.
    again = _remove(alice_client, marie.pk, wrong.pk)
    assert again.status_code == 404
    assert again.json()["code"] == "not_found"
    assert "n’est plus sur cette fiche" in again.json()["message"]


def test_the_address_an_open_conversation_came_in_on_cannot_be_removed(
    citizen_mail: tuple[Interaction, str], alice: Any, alice_client: Client
) -> None:
    interaction, _ = citizen_mail
    marie = interaction.contact
    assert marie is not None
    address = marie.identities.get(kind="email")
    response = _remove(alice_client, marie.pk, address.pk)
    assert response.status_code == 409
    assert (response.json()["ok"], response.json()["code"]) == (False, "in_use")
    assert "conversation en cours" in response.json()["message"]
    assert ContactIdentity.objects.filter(pk=address.pk, contact=marie).exists()
    assert not IdentityRemoval.objects.exists()
    # Once the conversation is closed, it can go (here through the action: the console only
    # shows citizens an agent is serving).
    Interaction.objects.filter(pk=interaction.pk).update(status="closed")
    do_remove_identity(contact_id=marie.pk, identity_id=address.pk, actor_id=alice.pk)
    assert find_contact("email", "marie.dupont@gmail.example") is None
    assert Contact.objects.filter(pk=marie.pk).exists()


def test_another_citizens_identity_cannot_be_removed(
    citizen_mail: tuple[Interaction, str], alice_client: Client
) -> None:
    interaction, _ = citizen_mail
    marie = interaction.contact
    assert marie is not None
    paul = resolve_contact("phone", "+33699999999").contact
    assert paul is not None
    pauls_number = paul.identities.get()
    response = _remove(alice_client, marie.pk, pauls_number.pk)
    assert response.status_code == 400
    assert "appartient à un autre usager" in response.json()["message"]
    assert ContactIdentity.objects.filter(pk=pauls_number.pk, contact=paul).exists()
    # Nor through Paul's own record: Alice is not serving him.
    assert _remove(alice_client, paul.pk, pauls_number.pk).status_code == 404
    assert ContactIdentity.objects.filter(pk=pauls_number.pk).exists()


def test_an_sms_conversation_keeps_the_number_its_replies_go_to(
    alice: Any, alice_client: Client
) -> None:
    from interactions.actions import do_create_interaction

    queue = Queue.objects.create(code="caf", name="CAF")
    paul = resolve_contact("phone", "+33611111111").contact
    assert paul is not None
    first = paul.identities.get()
    second = do_add_identity(contact=paul, kind="phone", raw="+33622222222")
    # An SMS interaction with no SMS from Paul yet replies to his first number.
    interaction = do_create_interaction(channel="sms", contact=paul, queue=queue, enqueue=False)
    Interaction.objects.filter(pk=interaction.pk).update(
        status="assigned", assigned_agent=alice.agent_profile
    )
    assert _remove(alice_client, paul.pk, first.pk).status_code == 409
    assert _remove(alice_client, paul.pk, second.pk).status_code == 200
    assert list(paul.identities.values_list("value", flat=True)) == ["+33611111111"]


def test_a_merged_record_is_corrected_on_the_kept_one(alice: Any) -> None:
    kept = resolve_contact("email", "kept@example.fr").contact
    tombstone = resolve_contact("email", "old@example.fr").contact
    assert kept is not None
    assert tombstone is not None
    identity = tombstone.identities.get()
    do_merge_contacts(target=kept, source=tombstone)
    with pytest.raises(IdentityRemovalRefused) as refused:
        do_remove_identity(contact_id=tombstone.pk, identity_id=identity.pk, actor_id=alice.pk)
    assert refused.value.code == "merged"
    do_remove_identity(contact_id=kept.pk, identity_id=identity.pk, actor_id=alice.pk)
    assert list(kept.identities.values_list("value", flat=True)) == ["kept@example.fr"]
