"""E-mail in from a real IMAP mailbox (Debian's dovecot, started by .ci/services-dovecot.sh)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core import mail
from django.core.management import call_command

from channels_inbound.email.imap import ImapSettings, poll_mailbox
from channels_inbound.email.models import ImapMailboxState
from channels_inbound.models import Endpoint
from contacts.actions import do_add_identity
from contacts.models import Contact
from interactions.models import Interaction, Message
from tests.unit.test_email_parsing import inert_problems

from . import email_helpers
from .email_helpers import (
    IMAP_HOST,
    IMAP_PASSWORD,
    IMAP_PORT,
    IMAP_USER,
    OUR_ADDRESS,
    MailboxFolder,
    fixture_bytes,
    make_mail,
    msgid,
)

email_endpoint = email_helpers.email_endpoint
imap_mailbox = email_helpers.imap_mailbox

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def config(mailbox: MailboxFolder, *, move: bool = False) -> ImapSettings:
    return ImapSettings(
        host=IMAP_HOST,
        port=IMAP_PORT,
        user=IMAP_USER,
        password=IMAP_PASSWORD,
        ssl=False,
        folder=mailbox.folder,
        processed_folder=f"{mailbox.folder}-done" if move else "",
        endpoint_address=OUR_ADDRESS,
    )


def flags(mailbox: MailboxFolder, folder: str | None = None) -> list[tuple[bytes, ...]]:
    client = mailbox.client()
    try:
        client.select_folder(folder or mailbox.folder, readonly=True)
        uids = client.search(["ALL"])
        return [data[b"FLAGS"] for _, data in sorted(client.fetch(uids, ["FLAGS"]).items())]
    finally:
        client.logout()


def test_a_three_message_thread_from_imap_ends_as_one_interaction(
    email_endpoint: Endpoint, imap_mailbox: MailboxFolder
) -> None:
    # given: the first message, then Gmail's reply to our acknowledgement, then a third one
    root = make_mail(message_id="CAF-root-1@mail.gmail.example", subject="Demande d'APL")
    imap_mailbox.append(root)
    imap_mailbox.append(fixture_bytes("gmail_reply.eml"))
    third = make_mail(
        subject="Re: Demande d'APL",
        body="Et mon RIB ?",
        in_reply_to="CAF-reply-2@mail.gmail.example",
        references=["CAF-root-1@mail.gmail.example", "CAF-reply-2@mail.gmail.example"],
    )
    imap_mailbox.append(third)
    # when
    outcome = poll_mailbox(config(imap_mailbox))
    # then
    assert (outcome.ingested, outcome.duplicates, outcome.failed) == (3, 0, 0)
    interaction = Interaction.objects.get()
    assert interaction.external_ref == "CAF-root-1@mail.gmail.example"
    inbound = interaction.messages.filter(direction="inbound")
    assert [m.provider_id for m in inbound] == [
        "CAF-root-1@mail.gmail.example",
        "CAF-reply-2@mail.gmail.example",
        msgid(third),
    ]
    assert "1234567" in inbound[1].text
    assert inert_problems(inbound[1].html) == []
    assert len(mail.outbox) == 1  # one acknowledgement, for the first message
    # every processed message is flagged \Seen, and the next pass finds nothing new
    assert all(b"\\Seen" in f for f in flags(imap_mailbox))
    again = poll_mailbox(config(imap_mailbox))
    assert (again.ingested, again.duplicates) == (0, 0)
    state = ImapMailboxState.objects.get()
    assert state.last_uid == 3
    assert state.last_polled_at is not None


def test_the_same_message_id_twice_makes_one_message(
    email_endpoint: Endpoint, imap_mailbox: MailboxFolder
) -> None:
    msg = make_mail()
    imap_mailbox.append(msg)
    imap_mailbox.append(msg)  # e.g. delivered to the mailbox twice by a forwarding rule
    outcome = poll_mailbox(config(imap_mailbox))
    assert (outcome.ingested, outcome.duplicates) == (1, 1)
    assert Message.objects.filter(direction="inbound").count() == 1


def test_a_uidvalidity_change_rescans_without_duplicates(
    email_endpoint: Endpoint, imap_mailbox: MailboxFolder
) -> None:
    first, second = make_mail(subject="Premier"), make_mail(subject="Second")
    imap_mailbox.append(first)
    imap_mailbox.append(second)
    assert poll_mailbox(config(imap_mailbox)).ingested == 2
    before = ImapMailboxState.objects.get().uidvalidity
    # when: the folder is rebuilt (a restore, a migration): new UIDVALIDITY, UIDs restart at 1
    client = imap_mailbox.client()
    client.delete_folder(imap_mailbox.folder)
    client.create_folder(imap_mailbox.folder)
    client.logout()
    imap_mailbox.append(first)
    imap_mailbox.append(second)
    imap_mailbox.append(make_mail(subject="Troisième"))
    outcome = poll_mailbox(config(imap_mailbox))
    # then: the folder is read again, the known messages are no-ops, the new one is recorded
    assert outcome.rescanned
    assert (outcome.ingested, outcome.duplicates) == (1, 2)
    state = ImapMailboxState.objects.get()
    assert state.uidvalidity != before
    assert state.rescans == 1
    assert state.last_uid == 3
    assert Message.objects.filter(direction="inbound").count() == 3


def test_processed_messages_can_be_moved_to_a_folder(
    email_endpoint: Endpoint, imap_mailbox: MailboxFolder
) -> None:
    imap_mailbox.append(make_mail())
    imap_mailbox.append(fixture_bytes("list_mail.eml"))
    outcome = poll_mailbox(config(imap_mailbox, move=True))
    assert outcome.ingested == 2
    assert flags(imap_mailbox) == []
    assert len(flags(imap_mailbox, f"{imap_mailbox.folder}-done")) == 2
    assert len(mail.outbox) == 1  # the newsletter got no acknowledgement


def test_imap_auto_replies_and_spoofs(
    email_endpoint: Endpoint, imap_mailbox: MailboxFolder
) -> None:
    marie = Contact.objects.create(display_name="Marie Dupont")
    do_add_identity(contact=marie, kind="email", raw="marie.dupont@gmail.example")
    imap_mailbox.append(fixture_bytes("outlook_autoreply.eml"))
    imap_mailbox.append(fixture_bytes("display_name_spoof.eml"))
    poll_mailbox(config(imap_mailbox))
    spoof = Message.objects.get(provider_id="spoof-1@evil.example").interaction
    assert spoof.contact != marie
    assert spoof.contact is not None
    assert spoof.contact.identities.get().value == "attacker@evil.example"
    assert [m.to for m in mail.outbox] == [["attacker@evil.example"]]  # not the auto-reply


def test_a_large_attachment_in_a_mailbox_is_refused_with_a_notice(
    email_endpoint: Endpoint, imap_mailbox: MailboxFolder, settings: Any, tmp_path: Path
) -> None:
    settings.MEDIA_ROOT = tmp_path
    settings.EMAIL_MAX_ATTACHMENT_BYTES = 100_000
    settings.EMAIL_MAX_MESSAGE_BYTES = 1_000_000
    big = make_mail(
        subject="Pièces",
        attachments=[
            ("avis.pdf", "application/pdf", b"%PDF-1.4 small"),
            ("scan.pdf", "application/pdf", b"%PDF-1.4" + b"0" * 200_000),
        ],
    )
    huge = make_mail(
        subject="Énorme",
        sender="Jean Martin <jean.martin@example.org>",
        attachments=[("video.pdf", "application/pdf", b"%PDF-1.4" + b"0" * 2_000_000)],
    )
    imap_mailbox.append(big)
    imap_mailbox.append(huge)
    outcome = poll_mailbox(config(imap_mailbox))
    assert outcome.ingested == 2
    kept, refused = Message.objects.get(provider_id=msgid(big)).attachments
    assert "storage_path" in kept
    assert refused["refused"] == "too_large"
    stub = Message.objects.get(provider_id=msgid(huge))
    assert "n'a pas été importé" in stub.text
    assert stub.attachments[0]["refused"] == "message_too_large"
    ack_big, ack_huge = sorted(mail.outbox, key=lambda m: m.to[0])[::-1]
    body = ack_big.body.replace("\xa0", " ").replace("\u202f", " ")
    assert "scan.pdf : le fichier dépasse 0.1 Mo" in body
    assert "the message is larger than 1 MB" in ack_huge.body


def test_the_imap_poll_command(
    email_endpoint: Endpoint, imap_mailbox: MailboxFolder, settings: Any, capsys: Any
) -> None:
    settings.IMAP_HOST = IMAP_HOST
    settings.IMAP_PORT = IMAP_PORT
    settings.IMAP_USER = IMAP_USER
    settings.IMAP_PASSWORD = IMAP_PASSWORD
    settings.IMAP_SSL = False
    settings.IMAP_FOLDER = imap_mailbox.folder
    settings.IMAP_ENDPOINT_ADDRESS = OUR_ADDRESS
    imap_mailbox.append(make_mail())
    call_command("imap_poll", "--once")
    assert "1 new" in capsys.readouterr().out
    assert Message.objects.filter(direction="inbound").count() == 1
