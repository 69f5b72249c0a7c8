"""Shared set-up of the e-mail channel tests: our mailbox endpoint, a running SMTP server on a
free port, a real IMAP mailbox on the test dovecot (.ci/services-dovecot.sh), mail builders."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from channels_inbound.models import Endpoint
from configuration.models import Queue

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "email"
OUR_ADDRESS = "contact@caf.example.fr"
CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

IMAP_HOST = os.environ.get("TEST_IMAP_HOST", "127.0.0.1")
IMAP_PORT = int(os.environ.get("TEST_IMAP_PORT", "10143"))
IMAP_USER = os.environ.get("TEST_IMAP_USER", "cctest")
IMAP_PASSWORD = os.environ.get("TEST_IMAP_PASSWORD", "cctest-password")


def fixture_bytes(name: str, **replace: str) -> bytes:
    """A captured .eml with CRLF line ends (what travels over SMTP)."""
    text = (FIXTURES / name).read_bytes()
    for old, new in replace.items():
        text = text.replace(old.encode(), new.encode())
    return b"\r\n".join(text.splitlines()) + b"\r\n"


def make_mail(
    *,
    sender: str = "Marie Dupont <marie.dupont@gmail.example>",
    subject: str = "Demande d'APL",
    body: str = "Bonjour, où en est ma demande d'APL ?",
    message_id: str | None = None,
    in_reply_to: str | None = None,
    references: list[str] | None = None,
    headers: dict[str, str] | None = None,
    html: str | None = None,
    attachments: list[tuple[str, str, bytes]] | None = None,
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = f"CAF Contact <{OUR_ADDRESS}>"
    msg["Subject"] = subject
    msg["Date"] = format_datetime(timezone.now())
    msg["Message-ID"] = f"<{message_id or uuid.uuid4().hex + '@mail.gmail.example'}>"
    if in_reply_to:
        msg["In-Reply-To"] = f"<{in_reply_to}>"
    if references:
        msg["References"] = " ".join(f"<{r}>" for r in references)
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    for filename, ctype, content in attachments or []:
        maintype, subtype = ctype.split("/", 1)
        msg.add_attachment(content, maintype=maintype, subtype=subtype, filename=filename)
    return msg


def msgid(msg: EmailMessage) -> str:
    return str(msg["Message-ID"]).strip("<>")


@pytest.fixture
def email_endpoint(db: object) -> Endpoint:
    queue = Queue.objects.create(code="caf-mail", name="CAF e-mail", sla_target_seconds=86400)
    return Endpoint.objects.create(
        channel="email", address=OUR_ADDRESS, name="CAF du Rhône", queue=queue
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class RunningSMTP:
    host: str
    port: int


@pytest.fixture
def smtp_server(email_endpoint: Endpoint) -> Iterator[RunningSMTP]:
    """Our SMTP server (the code manage.py smtp_server runs) on a free loopback port."""
    from channels_inbound.email.smtpd import build_controller

    port = free_port()
    controller = build_controller("127.0.0.1", port, workers=2)
    controller.start()
    try:
        yield RunningSMTP("127.0.0.1", port)
    finally:
        controller.stop()
        controller.handler.close()


def imap_problem() -> str | None:
    from imapclient import IMAPClient

    try:
        client = IMAPClient(IMAP_HOST, port=IMAP_PORT, ssl=False, timeout=5)
        client.login(IMAP_USER, IMAP_PASSWORD)
        client.logout()
    except Exception as exc:
        return f"the test IMAP server {IMAP_HOST}:{IMAP_PORT} does not answer: {exc!r}"
    return None


@dataclass(frozen=True)
class MailboxFolder:
    folder: str

    def client(self) -> Any:
        from imapclient import IMAPClient

        client = IMAPClient(IMAP_HOST, port=IMAP_PORT, ssl=False, timeout=30)
        client.login(IMAP_USER, IMAP_PASSWORD)
        return client

    def append(self, raw: bytes | EmailMessage, folder: str | None = None) -> None:
        data = raw.as_bytes() if isinstance(raw, EmailMessage) else raw
        client = self.client()
        try:
            client.append(folder or self.folder, data)
        finally:
            client.logout()


@pytest.fixture
def imap_mailbox() -> Iterator[MailboxFolder]:
    """A fresh folder on the test dovecot; under CI=true a missing server fails the test."""
    problem = imap_problem()
    if problem:
        if CI:
            pytest.fail(f"{problem} (.ci/services-dovecot.sh starts it)")
        pytest.skip(f"{problem}: run .ci/services-dovecot.sh")
    mailbox = MailboxFolder(f"cc-test-{uuid.uuid4().hex[:12]}")
    client = mailbox.client()
    client.create_folder(mailbox.folder)
    client.logout()
    try:
        yield mailbox
    finally:
        client = mailbox.client()
        for name in (mailbox.folder, f"{mailbox.folder}-done"):
            if client.folder_exists(name):
                client.delete_folder(name)
        client.logout()
