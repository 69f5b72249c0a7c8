"""Hardening of the channels (issue 11): chat transcripts only to an address its owner confirmed,
with a per-address rate limit; empty or sender-less e-mail refused at SMTP."""

from __future__ import annotations

import re
import smtplib
from typing import Any

import pytest
from django.core import mail
from django.test import AsyncClient

from channels_inbound.chat.models import ChatWidget
from channels_inbound.chat.strings import widget_strings
from interactions.models import Interaction, Message

from . import email_helpers
from .chat_helpers import (
    connect,
    fresh_rate_limits,  # noqa: F401 - autouse fixture
    make_widget,
    start_chat,
)
from .email_helpers import OUR_ADDRESS, RunningSMTP, make_mail

smtp_server = email_helpers.smtp_server
email_endpoint = email_helpers.email_endpoint

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]

SITE = "https://contact.example.gouv.fr"
AWA = "awa.diallo@example.fr"


@pytest.fixture
def widget(db: Any, settings: Any) -> ChatWidget:
    settings.PUBLIC_BASE_URL = SITE
    return make_widget()


def _link(body: Any) -> str:
    found = re.search(re.escape(SITE) + r"(/chat/transcript/[^/\s]+/)", str(body))
    assert found, body
    return found.group(1)


# --- 6. Chat transcripts ------------------------------------------------------------------------
async def test_a_transcript_goes_only_to_an_address_its_owner_confirmed(
    widget: ChatWidget,
) -> None:
    citizen = await connect()
    await start_chat(citizen)
    await citizen.send(type="transcript", email=AWA)
    frame = await citizen.until("transcript")
    assert frame == {"type": "transcript", "ok": True, "pending": True, "email": AWA}
    # first only a confirmation link, with nothing of the conversation
    assert len(mail.outbox) == 1
    confirmation = mail.outbox[0]
    assert confirmation.to == [AWA]
    assert "Confirmez votre adresse e-mail" in confirmation.subject
    assert "Bonjour, je suis l'assistant" not in confirmation.body
    assert "Awa Diallo" not in confirmation.body  # nothing the visitor typed
    link = _link(confirmation.body)
    # a mail scanner following the link (GET) sends nothing
    page = await AsyncClient().get(link)
    assert page.status_code == 200
    assert AWA in page.content.decode()
    assert len(mail.outbox) == 1
    # the citizen confirms: the conversation goes to that address
    sent = await AsyncClient().post(link)
    assert sent.status_code == 200
    assert len(mail.outbox) == 2
    transcript = mail.outbox[1]
    assert transcript.to == [AWA]
    assert transcript.subject == "Votre conversation avec Mairie d'Exemple"
    assert "Bonjour, je suis l'assistant de la mairie." in transcript.body
    await citizen.close()


async def test_a_transcript_to_an_unrelated_address_is_refused_clearly(
    widget: ChatWidget,
) -> None:
    citizen = await connect()
    await start_chat(citizen)
    await citizen.send(type="transcript", email=AWA)
    await citizen.until("transcript")
    await citizen.send(type="transcript", email="someone.else@example.fr")
    assert (await citizen.until("error"))["code"] == "transcript_address"
    assert all(m.to == [AWA] for m in mail.outbox)
    # the widget shows it in words, French first
    fr = widget_strings("fr")["error_transcript_address"]
    assert fr == (
        "Cette conversation ne peut être envoyée qu’à la première adresse que vous avez indiquée."
    )
    assert widget_strings("en")["error_transcript_address"] == (
        "This conversation can only be sent to the first address you gave."
    )
    # the same address again is fine (another link), whatever its case
    await citizen.send(type="transcript", email=AWA.upper())
    assert (await citizen.until("transcript"))["ok"] is True
    await citizen.close()


async def test_forged_or_expired_confirmation_links_send_nothing(
    widget: ChatWidget, settings: Any
) -> None:
    citizen = await connect()
    await start_chat(citizen)
    await citizen.send(type="transcript", email=AWA)
    await citizen.until("transcript")
    link = _link(mail.outbox[0].body)
    token = link.split("/")[-2]
    forged = link.replace(token, token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB"))
    assert (await AsyncClient().post(forged)).status_code == 404
    settings.CHAT_TRANSCRIPT_CONFIRM_MAX_AGE_SECONDS = -1
    expired = await AsyncClient().post(link)
    assert expired.status_code == 410
    assert "Ce lien a expiré" in expired.content.decode()
    assert len(mail.outbox) == 1
    await citizen.close()


async def test_transcripts_are_rate_limited_per_address(widget: ChatWidget, settings: Any) -> None:
    assert settings.CHAT_TRANSCRIPTS_PER_ADDRESS_PER_HOUR == 3
    victim = "victim@example.fr"
    # four different conversations (and visitors) ask for the same address
    for n in range(4):
        citizen = await connect(ip=f"192.0.2.{20 + n}")
        await start_chat(citizen)
        await citizen.send(type="transcript", email=victim)
        frame = await citizen.until("transcript" if n < 3 else "error")
        if n == 3:
            assert frame["code"] == "transcript_address_limit"
        await citizen.close()
    assert [m.to for m in mail.outbox] == [[victim]] * 3
    assert widget_strings("fr")["error_transcript_address_limit"].startswith(
        "Trop d’e-mails ont été envoyés à cette adresse"
    )
    # confirming the same link again and again: at most 3 transcripts an hour too
    link = _link(mail.outbox[0].body)
    statuses = [(await AsyncClient().post(link)).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    assert len(mail.outbox) == 6
    # another address is not affected
    citizen = await connect(ip="192.0.2.40")
    await start_chat(citizen)
    await citizen.send(type="transcript", email=AWA)
    assert (await citizen.until("transcript"))["ok"] is True
    await citizen.close()


# --- 10. Empty or sender-less e-mail refused at SMTP -------------------------------------------
def _deliver(server: RunningSMTP, raw: bytes, sender: str = "marie@example.fr") -> tuple[int, str]:
    with smtplib.SMTP(server.host, server.port, timeout=60) as client:
        client.ehlo("relay.caf.example.fr")
        client.mail(sender)
        code, reply = client.rcpt(OUR_ADDRESS)
        assert code == 250, reply
        try:
            code, reply = client.data(raw)
        except smtplib.SMTPDataError as refused:
            error = refused.smtp_error
            return refused.smtp_code, error.decode() if isinstance(error, bytes) else str(error)
    return code, reply.decode()


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"", "empty"),
        (b"   \r\n\r\n \t \r\n", "empty"),
        (
            f"To: {OUR_ADDRESS}\r\nSubject: Bonjour\r\n\r\nMa demande d'APL.\r\n".encode(),
            "no sender address",
        ),
        (
            f"From: <>\r\nTo: {OUR_ADDRESS}\r\nSubject: Bonjour\r\n\r\nMa demande.\r\n".encode(),
            "no sender address",
        ),
        (
            f"From: marie@example.fr\r\nTo: {OUR_ADDRESS}\r\n\r\n  \r\n".encode(),
            "neither a subject nor any content",
        ),
    ],
)
def test_an_empty_or_sender_less_mail_is_refused_at_smtp(
    smtp_server: RunningSMTP, raw: bytes, words: str
) -> None:
    code, text = _deliver(smtp_server, raw)
    assert code == 550, text
    assert "5.6.0" in text
    assert words in text  # English
    assert "Message refuse" in text  # and French (folded to ASCII)
    assert not Interaction.objects.exists()
    assert not Message.objects.exists()


def test_a_subject_only_mail_or_a_normal_one_still_goes_through(
    smtp_server: RunningSMTP,
) -> None:
    subject_only = (
        f"From: marie@example.fr\r\nTo: {OUR_ADDRESS}\r\nSubject: Rappelez-moi\r\n\r\n"
    ).encode()
    assert _deliver(smtp_server, subject_only)[0] == 250
    assert _deliver(smtp_server, make_mail().as_bytes())[0] == 250
    assert Message.objects.filter(direction="inbound").count() == 2
