"""E-mail robustness (issue 12): bodies in an undeclared or wrong charset, and the whole thread
in the ``References`` of our replies."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.core import mail

from channels_inbound.email.actions import do_send_email_reply
from channels_inbound.email.inbound import do_ingest_email
from channels_inbound.email.parsing import parse_email
from interactions.models import Interaction, Message

from . import email_helpers
from .email_helpers import OUR_ADDRESS, make_mail, msgid

email_endpoint = email_helpers.email_endpoint

FRENCH = "Réponse à votre dossier : l’attestation coûte 0 €, merci."


def raw_mail(body: bytes, *, content_type: str, encoding: str = "8bit") -> tuple[bytes, str]:
    message_id = f"{uuid.uuid4().hex}@mail.wanadoo.example"
    head = (
        "From: Marie Dupont <marie.dupont@wanadoo.example>\r\n"
        f"To: {OUR_ADDRESS}\r\n"
        "Subject: Dossier APL\r\n"
        "Date: Thu, 03 Dec 2026 09:00:00 +0100\r\n"
        f"Message-ID: <{message_id}>\r\n"
        "MIME-Version: 1.0\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Transfer-Encoding: {encoding}\r\n"
        "\r\n"
    ).encode("ascii")
    return head + body + b"\r\n", message_id


CP1252 = FRENCH.encode("cp1252")


@pytest.mark.parametrize(
    ("content_type", "body", "encoding"),
    [
        pytest.param("text/plain", CP1252, "8bit", id="8bit-no-charset"),
        pytest.param("text/plain; format=flowed", CP1252, "8bit", id="8bit-no-charset-flowed"),
        pytest.param(
            "text/plain",
            b"R=E9ponse =E0 votre dossier : l=92attestation co=FBte 0 =80, merci.",
            "quoted-printable",
            id="qp-no-charset",
        ),
        pytest.param('text/plain; charset="x-no-such-charset"', CP1252, "8bit", id="unknown"),
        pytest.param("text/plain; charset=utf-8", CP1252, "8bit", id="utf8-declared-cp1252"),
        pytest.param("text/plain; charset=us-ascii", CP1252, "8bit", id="ascii-declared"),
        pytest.param("text/plain; charset=iso-8859-1", CP1252, "8bit", id="latin1-declared"),
    ],
)
def test_an_undeclared_or_wrong_charset_reads_as_windows_1252(
    content_type: str, body: bytes, encoding: str
) -> None:
    raw, _ = raw_mail(body, content_type=content_type, encoding=encoding)
    parsed = parse_email(raw)
    assert parsed.text.strip() == FRENCH
    assert "\ufffd" not in parsed.text


def test_declared_charsets_and_undeclared_utf8_are_still_honoured() -> None:
    raw, _ = raw_mail(FRENCH.encode("utf-8"), content_type="text/plain")
    assert parse_email(raw).text.strip() == FRENCH  # undeclared but valid UTF-8
    raw, _ = raw_mail(
        "Привет, où en est mon dossier ?".encode("koi8-r", "replace"),
        content_type="text/plain; charset=koi8-r",
    )
    assert parse_email(raw).text.strip().startswith("Привет")
    raw, _ = raw_mail(FRENCH.encode("utf-8"), content_type="text/plain; charset=utf-8")
    assert parse_email(raw).text.strip() == FRENCH


def test_an_html_only_mail_without_charset_reads_as_windows_1252() -> None:
    raw, _ = raw_mail(b"<html><body><p>" + CP1252 + b"</p></body></html>", content_type="text/html")
    parsed = parse_email(raw)
    assert FRENCH in parsed.html
    assert parsed.text.strip() == FRENCH


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_8bit_cp1252_mail_is_stored_as_french_text(email_endpoint: Any) -> None:
    raw, message_id = raw_mail(CP1252, content_type="text/plain")
    result = do_ingest_email(raw, recipients=[OUR_ADDRESS])
    stored = Message.objects.get(pk=result.message_id)
    assert stored.provider_id == message_id
    assert stored.text.strip() == FRENCH
    assert "\ufffd" not in stored.text


def _references(header: str) -> list[str]:
    return [item.strip("<>") for item in header.split()]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("citizen_sends_references", [True, False])
def test_our_replies_carry_the_whole_thread_in_references(
    email_endpoint: Any, make_user: Any, settings: Any, citizen_sends_references: bool
) -> None:
    settings.EMAIL_DOMAIN = "caf.example.fr"
    agent = make_user("agent1")
    # 1. the citizen writes
    first = make_mail(body="Bonjour, où en est ma demande ?")
    do_ingest_email(first.as_bytes(), recipients=[OUR_ADDRESS])
    interaction = Interaction.objects.get()
    # 2. the agent answers
    reply = do_send_email_reply(interaction_id=interaction.pk, author_id=agent.pk, text="En cours.")
    assert reply.provider_id is not None
    answer = mail.outbox[-1]
    assert _references(answer.extra_headers["References"]) == [msgid(first)]
    # 3. the citizen answers our reply; some mailers send In-Reply-To alone, no References
    second = make_mail(
        subject="Re: Demande d'APL",
        body="Merci, et pour le mois prochain ?",
        in_reply_to=reply.provider_id,
        references=[msgid(first), reply.provider_id] if citizen_sends_references else None,
    )
    do_ingest_email(second.as_bytes(), recipients=[OUR_ADDRESS])
    assert Interaction.objects.count() == 1
    # 4. the agent answers again: References = the parent's References + the parent's id
    last = do_send_email_reply(interaction_id=interaction.pk, author_id=agent.pk, text="Oui.")
    answer = mail.outbox[-1]
    assert answer.extra_headers["Message-ID"] == f"<{last.provider_id}>"
    assert answer.extra_headers["In-Reply-To"] == f"<{msgid(second)}>"
    assert _references(answer.extra_headers["References"]) == [
        msgid(first),
        reply.provider_id,
        msgid(second),
    ]
