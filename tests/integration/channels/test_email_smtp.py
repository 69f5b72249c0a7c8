"""E-mail in over real SMTP (smtplib -> our aiosmtpd server -> PostgreSQL) and replies out."""

from __future__ import annotations

import os
import smtplib
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from django.core import mail
from django.db import OperationalError, connection

from channels_inbound.email.actions import do_send_email_reply, render_email_html
from channels_inbound.email.models import EmailAcknowledgement
from channels_inbound.models import Endpoint
from contacts.actions import do_add_identity
from contacts.models import Case, Contact
from interactions.models import Interaction, Message
from tests.unit.test_email_parsing import inert_problems

from . import email_helpers
from .email_helpers import (
    OUR_ADDRESS,
    RunningSMTP,
    fixture_bytes,
    free_port,
    make_mail,
    msgid,
)

# The shared fixtures (the channels conftest belongs to every channel's tests).
email_endpoint = email_helpers.email_endpoint
smtp_server = email_helpers.smtp_server

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def send(server: RunningSMTP, msg: EmailMessage | bytes, *, sender: str | None = None) -> str:
    """Deliver like a relay does; returns the server's final reply text."""
    raw = msg.as_bytes(policy=policy.SMTP) if isinstance(msg, EmailMessage) else msg
    if sender is None:
        parsed = message_from_bytes(raw, policy=policy.default)
        sender = parsed["From"].addresses[0].addr_spec
    with smtplib.SMTP(server.host, server.port, timeout=60) as client:
        client.ehlo("relay.caf.example.fr")
        client.mail(sender)
        code, reply = client.rcpt(OUR_ADDRESS)
        assert code == 250, reply
        code, reply = client.data(raw)
        assert code == 250, reply
    return reply.decode()


@pytest.fixture
def media(settings: Any, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    return Path(settings.MEDIA_ROOT)


def sent_mail() -> list[Any]:
    return list(mail.outbox)


def test_a_three_message_thread_ends_as_one_interaction(
    smtp_server: RunningSMTP, make_user: Any, settings: Any
) -> None:
    settings.EMAIL_DOMAIN = "caf.example.fr"
    # given: a citizen writes for the first time
    first = make_mail(body="Bonjour,\nOù en est ma demande d'APL ?\nMarie")
    reply = send(smtp_server, first)
    assert "recorded" in reply
    interaction = Interaction.objects.get()
    case = Case.objects.get()
    assert interaction.case == case
    assert interaction.external_ref == msgid(first)
    assert interaction.contact is not None
    assert interaction.contact.display_name == "Marie Dupont"
    # then: one acknowledgement, French first, with the reference and the announced delay
    (ack,) = sent_mail()
    assert ack.to == ["marie.dupont@gmail.example"]
    assert f"[{case.reference}]" in ack.subject
    assert ack.extra_headers["Auto-Submitted"] == "auto-replied"
    assert ack.extra_headers["In-Reply-To"] == f"<{msgid(first)}>"
    assert ack.body.index("Nous avons bien reçu") < ack.body.index("We have received")
    assert "5 jours ouvrés" in ack.body
    assert "5 working days" in ack.body
    assert case.reference in ack.body

    # when: an agent answers
    agent = make_user("agent1")
    outbound = do_send_email_reply(
        interaction_id=interaction.pk, author_id=agent.pk, text="Bonjour Madame,\nC'est en cours."
    )
    answer = sent_mail()[-1]
    outbound.refresh_from_db()
    assert outbound.delivery_status == "sent"
    assert outbound.provider_id is not None
    assert outbound.provider_id.endswith("@caf.example.fr")
    assert answer.extra_headers["Message-ID"] == f"<{outbound.provider_id}>"
    assert answer.extra_headers["In-Reply-To"] == f"<{msgid(first)}>"
    assert answer.extra_headers["References"] == f"<{msgid(first)}>"
    assert answer.subject == f"Re: Demande d'APL [{case.reference}]"
    assert answer.from_email == f"CAF du Rhône <{OUR_ADDRESS}>"
    assert "Bonjour Madame,\nC'est en cours." in answer.body
    assert "> Où en est ma demande d'APL ?" in answer.body  # the quote, in the plain-text part
    ((html, mimetype),) = answer.alternatives
    assert mimetype == "text/html"
    assert "<blockquote>" in html
    assert "C&#x27;est en cours." in html or "C'est en cours." in html

    # the citizen answers the agent's reply, from a client that keeps the thread headers
    second = make_mail(
        subject=f"Re: Demande d'APL [{case.reference}]",
        body="Merci ! Voici mon numéro allocataire : 1234567.",
        in_reply_to=outbound.provider_id,
        references=[msgid(first), outbound.provider_id],
    )
    send(smtp_server, second)
    # and once more from a webmail that drops them: the case reference in the subject is enough
    third = make_mail(subject=f"Complément [{case.reference}]", body="J'oubliais : RIB joint.")
    send(smtp_server, third)

    assert Interaction.objects.count() == 1
    texts = list(
        Message.objects.filter(interaction=interaction, direction="inbound").values_list(
            "text", flat=True
        )
    )
    assert len(texts) == 3
    assert texts[1].startswith("Merci !")
    assert Message.objects.filter(interaction=interaction, direction="outbound").count() == 2
    assert len(sent_mail()) == 2  # no second acknowledgement for the replies


def test_the_same_message_id_twice_makes_one_message(smtp_server: RunningSMTP) -> None:
    msg = make_mail()
    assert "recorded (message" in send(smtp_server, msg)
    assert "already recorded" in send(smtp_server, msg)
    # A relay that re-sends the same Message-ID with other bytes (new Received: lines) too.
    msg["X-Relay-Retry"] = "1"
    assert "already recorded" in send(smtp_server, msg)
    assert Message.objects.filter(direction="inbound").count() == 1
    assert Interaction.objects.count() == 1
    assert len(sent_mail()) == 1


def test_concurrent_deliveries_of_one_message_make_one_message(
    smtp_server: RunningSMTP,
) -> None:
    msg = make_mail(attachments=[("avis.pdf", "application/pdf", b"%PDF-1.4 avis")])
    with ThreadPoolExecutor(max_workers=4) as pool:
        replies = list(pool.map(lambda _: send(smtp_server, msg), range(4)))
    assert sum("already recorded" not in reply for reply in replies) == 1
    assert Message.objects.filter(direction="inbound").count() == 1
    assert Interaction.objects.count() == 1
    assert len(sent_mail()) == 1


def test_a_loop_of_auto_replies_is_not_answered(smtp_server: RunningSMTP) -> None:
    # given: an Outlook out-of-office (Auto-Submitted) answering again and again
    for n in range(3):
        raw = fixture_bytes(
            "outlook_autoreply.eml",
            **{"AM0PR02MB1234ABCD5678EF90": f"AM0PR02MB1234ABCD5678EF9{n}"},
        )
        send(smtp_server, raw)
    # a mailing list, and a bounce with the null reverse-path
    send(smtp_server, fixture_bytes("list_mail.eml"))
    bounce = make_mail(sender="Mail Delivery System <mailer-daemon@mx.example.org>")
    send(smtp_server, bounce, sender="")
    assert Message.objects.filter(direction="inbound").count() == 5
    assert sent_mail() == []
    assert not EmailAcknowledgement.objects.exists()

    # and: a naive auto-responder without any header, answering each of our mails
    robot = "Accueil <accueil@mairie-naive.example>"
    send(smtp_server, make_mail(sender=robot, subject="Bonjour"))
    for _ in range(4):
        (ack, *_rest) = sent_mail()
        echo = make_mail(sender=robot, subject=f"Re: {ack.subject}", body="Message bien reçu.")
        send(smtp_server, echo)
        send(smtp_server, make_mail(sender=robot, subject="Nouveau sujet sans référence"))
    # then: one acknowledgement that day, whatever the robot sends
    assert len(sent_mail()) == 1
    assert EmailAcknowledgement.objects.count() == 1


def test_an_out_of_office_does_not_reopen_a_closed_conversation(
    smtp_server: RunningSMTP,
) -> None:
    first = make_mail(sender="Marie Dupont <marie.dupont@mairie.example>")
    send(smtp_server, first)
    interaction = Interaction.objects.get()
    Interaction.objects.filter(pk=interaction.pk).update(status="closed")
    out_of_office = fixture_bytes(
        "outlook_autoreply.eml", **{"ack-1@contact.localhost": msgid(first)}
    )
    send(smtp_server, out_of_office)
    interaction.refresh_from_db()
    assert interaction.status == "closed"
    assert interaction.messages.filter(direction="inbound").count() == 2
    # while the citizen's own reply does reopen it
    send(
        smtp_server,
        make_mail(sender="marie.dupont@mairie.example", in_reply_to=msgid(first)),
    )
    interaction.refresh_from_db()
    assert interaction.status == "queued"
    assert Interaction.objects.count() == 1


def test_malicious_html_is_stored_inert(smtp_server: RunningSMTP, media: Path) -> None:
    send(smtp_server, fixture_bytes("malicious_html.eml"))
    message = Message.objects.get(direction="inbound")
    assert inert_problems(message.html) == []
    for needle in ("alert", "javascript", "evil.example", "<script", "onerror", "<svg", "<base"):
        assert needle not in message.html.lower(), needle
    assert "Session expirée" in message.html  # the overlay's text remains, as plain text
    assert 'data-src="https://tracker.example/pixel.gif?id=42"' in message.html
    (logo,) = message.attachments
    assert logo["content_type"] == "image/png"
    assert logo["content_id"] == "logo@example.org"
    assert (media / logo["storage_path"]).read_bytes().startswith(b"\x89PNG")
    shown = render_email_html(message.html, attachment_url=lambda i: f"/console/files/{i}")
    assert 'src="/console/files/0"' in shown
    assert 'tracker.example/pixel.gif?id=42"' not in shown.split("data-src=")[0]
    assert [p for p in inert_problems(shown) if "img[src" not in p] == []


def thirty_megabyte_mail() -> EmailMessage:
    return make_mail(
        subject="Mon dossier complet",
        attachments=[("dossier.pdf", "application/pdf", b"%PDF-1.7\n" + os.urandom(30 * 2**20))],
    )


def test_a_30_mb_attachment_is_refused_with_a_clear_bounce(smtp_server: RunningSMTP) -> None:
    raw = thirty_megabyte_mail().as_bytes(policy=policy.SMTP)
    # given a relay that announces the size (smtplib does, since we advertise SIZE)
    with (
        smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=120) as client,
        pytest.raises(smtplib.SMTPSenderRefused) as refused,
    ):
        client.sendmail("marie.dupont@gmail.example", [OUR_ADDRESS], raw)
    assert refused.value.smtp_code == 552
    text = refused.value.smtp_error.decode()
    assert "Message refuse" in text
    assert "over the size limit of 25 MB" in text
    # and one that does not: refused after DATA, same clear text
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=120) as client:
        client.ehlo("relay.example")
        client.mail("marie.dupont@gmail.example")
        client.rcpt(OUR_ADDRESS)
        code, data_reply = client.data(raw)
    assert code == 552
    assert "5.3.4" in data_reply.decode()
    assert "25 MB" in data_reply.decode()
    assert not Message.objects.exists()
    assert not Interaction.objects.exists()


def test_an_attachment_over_the_per_file_limit_is_bounced_by_name(
    smtp_server: RunningSMTP, settings: Any, media: Path
) -> None:
    settings.EMAIL_MAX_ATTACHMENT_BYTES = 1024 * 1024
    msg = make_mail(attachments=[("scan.pdf", "application/pdf", b"%PDF-1.4" + b"0" * 2**21)])
    with (
        smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=60) as client,
        pytest.raises(smtplib.SMTPDataError) as refused,
    ):
        client.sendmail(
            "marie.dupont@gmail.example", [OUR_ADDRESS], msg.as_bytes(policy=policy.SMTP)
        )
    assert refused.value.smtp_code == 552
    error = refused.value.smtp_error
    error = error.decode() if isinstance(error, bytes) else error
    assert 'the attachment "scan.pdf" (2 MB) is over the limit of 1 MB per file' in error
    assert not Message.objects.exists()
    assert not list(media.rglob("*.pdf")) if media.exists() else True


def test_attachments_are_checked_against_their_content(
    smtp_server: RunningSMTP, media: Path
) -> None:
    msg = make_mail(
        attachments=[
            ("avis.pdf", "application/pdf", b"%PDF-1.4\n1 0 obj\n"),
            ("facture.pdf", "application/pdf", b"MZ\x90\x00\x03 this is a Windows program"),
            ("photo.jpg", "image/jpeg", b"%PDF-1.4 a PDF called .jpg"),
        ]
    )
    send(smtp_server, msg)
    message = Message.objects.get(direction="inbound")
    stored, exe, mismatch = message.attachments
    assert stored["name"] == "avis.pdf"
    assert stored["size"] == len(b"%PDF-1.4\n1 0 obj\n")
    assert (media / stored["storage_path"]).read_bytes() == b"%PDF-1.4\n1 0 obj\n"
    assert exe["refused"] == "type_not_allowed"
    assert exe["content_type"] == "application/x-executable"
    assert "storage_path" not in exe
    assert mismatch["refused"] == "type_mismatch"
    (ack,) = sent_mail()
    assert "facture.pdf : ce type de fichier n'est pas accepté" in ack.body
    assert "photo.jpg : the content of the file does not match its type" in ack.body


def test_a_display_name_spoof_does_not_match_another_citizen(smtp_server: RunningSMTP) -> None:
    marie = Contact.objects.create(display_name="Marie Dupont")
    do_add_identity(contact=marie, kind="email", raw="marie.dupont@gmail.example")
    case = Case.objects.create(reference="DOS-2026-000042", contact=marie, subject="APL")
    send(smtp_server, make_mail(subject=f"APL [{case.reference}]"))
    maries = Interaction.objects.get()
    assert maries.contact == marie

    spoof = fixture_bytes(
        "display_name_spoof.eml",
        **{"Subject: Changement de RIB": f"Subject: Changement de RIB [{case.reference}]"},
    )
    send(smtp_server, spoof, sender="attacker@evil.example")
    spoofed = Interaction.objects.exclude(pk=maries.pk).get()
    assert spoofed.contact != marie
    assert spoofed.contact is not None
    assert list(spoofed.contact.identities.values_list("value", flat=True)) == [
        "attacker@evil.example"
    ]
    assert spoofed.case != case  # knowing a reference does not join someone else's case
    assert maries.messages.filter(direction="inbound").count() == 1
    acks = {m.to[0] for m in sent_mail()}
    assert acks == {"marie.dupont@gmail.example", "attacker@evil.example"}


def test_an_unknown_recipient_is_refused_at_rcpt(smtp_server: RunningSMTP) -> None:
    with (
        smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=30) as client,
        pytest.raises(smtplib.SMTPRecipientsRefused) as refused,
    ):
        client.sendmail(
            "marie.dupont@gmail.example",
            ["personne@caf.example.fr"],
            make_mail().as_bytes(policy=policy.SMTP),
        )
    ((code, text),) = refused.value.recipients.values()
    assert code == 550
    assert b"Unknown recipient" in text


def test_a_temporary_failure_answers_451_and_the_retry_is_recorded(
    smtp_server: RunningSMTP, monkeypatch: pytest.MonkeyPatch
) -> None:
    from channels_inbound.email import smtpd

    real = smtpd.do_ingest_email

    def database_down(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("connection to server at 127.0.0.1 failed")

    monkeypatch.setattr(smtpd, "do_ingest_email", database_down)
    msg = make_mail()
    with (
        smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=30) as client,
        pytest.raises(smtplib.SMTPDataError) as deferred,
    ):
        client.sendmail(
            "marie.dupont@gmail.example", [OUR_ADDRESS], msg.as_bytes(policy=policy.SMTP)
        )
    assert deferred.value.smtp_code == 451
    assert not Message.objects.exists()
    monkeypatch.setattr(smtpd, "do_ingest_email", real)
    send(smtp_server, msg)  # the relay's retry
    assert Message.objects.filter(provider_id=msgid(msg)).count() == 1


def test_the_smtp_server_command_serves_the_relay(email_endpoint: Endpoint) -> None:
    """``manage.py smtp_server`` as its own process, on the test database."""
    port = free_port()
    root = Path(__file__).resolve().parents[3]
    settings_dict = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "contactcentre.settings_test",
        "DATABASE_URL": (
            f"postgres://{settings_dict['USER']}@{settings_dict['HOST']}:"
            f"{settings_dict['PORT'] or 5432}/{settings_dict['NAME']}"
        ),
        "REDIS_URL": "",  # acknowledgements sent inline, to the console backend
        "EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend",
    }
    server = subprocess.Popen(
        [sys.executable, "manage.py", "smtp_server", "--host", "127.0.0.1", "--port", str(port)],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                smtplib.SMTP("127.0.0.1", port, timeout=2).quit()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.fail("the smtp_server command did not start")
                time.sleep(0.2)
        reply = send(RunningSMTP("127.0.0.1", port), make_mail(subject="Par la commande"))
        assert "recorded" in reply
        assert Interaction.objects.get().subject == "Par la commande"
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    assert server.returncode == 0, output.decode()
    assert b"SMTP server listening" in output
    assert b"Auto-Submitted: auto-replied" in output  # the console backend printed the ack
