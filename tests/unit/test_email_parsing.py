"""E-mail parsing, loop detection, sanitising and attachment checks on captured messages (pure)."""

from __future__ import annotations

import io
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

from channels_inbound.email.attachments import (
    DOCX,
    ODT,
    PDF,
    PNG,
    AttachmentLimits,
    check_attachments,
    safe_filename,
    sniff_type,
)
from channels_inbound.email.automatic import automatic_reason
from channels_inbound.email.outbound import reply_subject
from channels_inbound.email.parsing import ParsedPart, message_ids, parse_email
from channels_inbound.email.sanitize import render_email_html, sanitize_email_html
from channels_inbound.email.threads import case_references_in

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "email"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


class InertChecker(HTMLParser):
    """Collects everything in a piece of HTML that could run, load or restyle something."""

    FORBIDDEN_TAGS = frozenset(
        {"script", "style", "base", "meta", "link", "svg", "math", "form", "input", "button"}
        | {"iframe", "object", "embed", "textarea", "select", "frame", "frameset"}
    )

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.FORBIDDEN_TAGS:
            self.problems.append(f"<{tag}>")
        for name, value in attrs:
            value = (value or "").strip().lower()
            if name.startswith("on") or name in {"style", "class", "id", "srcset", "action"}:
                self.problems.append(f"{tag}[{name}]")
            if name in {"href", "src"} and not value.startswith(("http://", "https://", "mailto:")):
                self.problems.append(f"{tag}[{name}={value}]")
            if tag == "img" and name == "src":
                self.problems.append("img[src] loads something")

    handle_startendtag = handle_starttag


def inert_problems(markup: str) -> list[str]:
    checker = InertChecker()
    checker.feed(markup)
    checker.close()
    return checker.problems


def test_gmail_reply_is_parsed_with_the_modern_policy() -> None:
    parsed = parse_email(fixture("gmail_reply.eml"))
    assert parsed.message_id == "CAF-reply-2@mail.gmail.example"
    assert parsed.in_reply_to == ["ack-1@contact.localhost"]
    assert parsed.references == ["CAF-root-1@mail.gmail.example", "ack-1@contact.localhost"]
    assert parsed.subject == "Re: Accusé de réception : Demande d'APL"
    assert parsed.from_address == "marie.dupont@gmail.example"
    assert parsed.display_name == "Marie Dupont"
    assert "contact@caf.example.fr" in parsed.recipients
    assert "numéro d'allocataire : 1234567. Merci d'avance 🙂" in parsed.text
    assert "gmail_quote" in parsed.html
    assert parsed.date is not None
    assert parsed.date.utcoffset() is not None
    assert parsed.parts == []
    assert automatic_reason(parsed) is None


def test_display_name_never_becomes_the_sender() -> None:
    parsed = parse_email(fixture("display_name_spoof.eml"))
    assert parsed.from_address == "attacker@evil.example"
    assert parsed.display_name == "marie.dupont@gmail.example"


def test_a_missing_message_id_gets_a_stable_digest() -> None:
    raw = b"From: a@example.org\r\nTo: contact@caf.example.fr\r\nSubject: x\r\n\r\nhello\r\n"
    first, again = parse_email(raw), parse_email(raw)
    assert first.message_id_generated
    assert first.message_id == again.message_id
    assert first.message_id.startswith("sha256-")


def test_message_ids_without_brackets_and_duplicates() -> None:
    assert message_ids("<a@b> <c@d>\r\n <a@b>") == ["a@b", "c@d"]
    assert message_ids("bare@example.org") == ["bare@example.org"]
    assert message_ids("not an id") == []


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("outlook_autoreply.eml", "auto-submitted: auto-generated"),
        ("list_mail.eml", "precedence: bulk"),
    ],
)
def test_machine_mail_is_recognised(name: str, reason: str) -> None:
    assert automatic_reason(parse_email(fixture(name))) == reason


def _mail(headers: str, sender: str = "Jean <jean@example.org>") -> bytes:
    return (
        f"From: {sender}\r\nTo: contact@caf.example.fr\r\nSubject: x\r\n"
        f"Message-ID: <x@example.org>\r\n{headers}\r\nbody\r\n"
    ).encode()


@pytest.mark.parametrize(
    ("headers", "sender", "expected"),
    [
        ("Auto-Submitted: auto-replied\r\n", "jean@example.org", "auto-submitted: auto-replied"),
        ("Auto-Submitted: no\r\n", "jean@example.org", None),
        ("Precedence: list\r\n", "jean@example.org", "precedence: list"),
        ("Precedence: junk\r\n", "jean@example.org", "precedence: junk"),
        ("List-Id: <l.example.org>\r\n", "jean@example.org", "mailing list (list-id)"),
        ("X-Auto-Response-Suppress: OOF\r\n", "jean@example.org", "x-auto-response-suppress"),
        ("Return-Path: <>\r\n", "jean@example.org", "null sender"),
        ("", "MAILER-DAEMON@mx.example.org", "robot sender"),
        ("", "no-reply@impots.example", "robot sender"),
        ("", "contact@caf.example.fr", "one of our own addresses"),
        ("", "jean@example.org", None),
    ],
)
def test_loop_headers(headers: str, sender: str, expected: str | None) -> None:
    parsed = parse_email(_mail(headers, sender))
    assert automatic_reason(parsed, our_addresses=["contact@caf.example.fr"]) == expected


def test_null_envelope_sender_over_smtp_is_a_bounce() -> None:
    parsed = parse_email(_mail(""))
    assert automatic_reason(parsed, envelope_sender="", via_smtp=True) == "null sender"
    assert automatic_reason(parsed, envelope_sender="jean@example.org", via_smtp=True) is None


def test_malicious_html_fixture_is_inert() -> None:
    parsed = parse_email(fixture("malicious_html.eml"))
    assert [p.content_id for p in parsed.parts] == ["logo@example.org"]
    stored = sanitize_email_html(parsed.html, content_ids={"logo@example.org": 0})
    assert inert_problems(stored) == []
    lowered = stored.lower()
    for needle in ("alert", "javascript", "evil.example", "onerror", "onload", "<base", "fetch("):
        assert needle not in lowered, needle
    # The text survives, the tracking pixel is kept aside, the inline image mapped.
    assert "<b>justificatif</b>" in stored
    assert 'data-src="https://tracker.example/pixel.gif?id=42"' in stored
    assert 'data-attachment="0"' in stored
    assert '<a href="https://www.service-public.example/particuliers"' in stored
    # Even revealed for an agent who asked, only the image addresses become sources.
    revealed = render_email_html(
        stored, reveal_remote_images=True, attachment_url=lambda i: f"/console/attachments/{i}"
    )
    assert 'src="https://tracker.example/pixel.gif?id=42"' in revealed
    assert 'src="/console/attachments/0"' in revealed
    assert [p for p in inert_problems(revealed) if p != "img[src] loads something"] == [
        "img[src=/console/attachments/0]"
    ]
    assert "alert" not in revealed.lower()
    assert " src=" not in render_email_html(stored)


@pytest.mark.parametrize(
    "payload",
    [
        '<img src=x onerror=alert(1)//">',
        "<svg><animate onbegin=alert(1) attributeName=x>",
        '<a href="&#106;avascript:alert(1)">x</a>',
        '<a href="java\tscript:alert(1)">x</a>',
        "<base href=//evil.example/><a href=page>x</a>",
        '<div style="behavior:url(x.htc)">x</div>',
        '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
        '<img src="https://x.example/a.png" data-src="javascript:alert(1)">',
        '<img data-attachment="1" src="cid:nope">',
        '<iframe srcdoc="<script>alert(1)</script>"></iframe>',
        '<a href="/admin/">relative</a>',
        "<details open ontoggle=alert(1)>",
        '<math><mi xlink:href="javascript:alert(1)">x</mi></math>',
        "<style>@import 'https://evil.example/x.css';</style>",
    ],
)
def test_known_xss_vectors_come_out_inert(payload: str) -> None:
    stored = sanitize_email_html(payload)
    assert inert_problems(stored) == []
    assert inert_problems(render_email_html(stored)) == []
    assert "alert" not in stored.lower() or "&lt;" in stored  # only ever as escaped text


def _docx() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document/>")
    return buffer.getvalue()


def _odt() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.text")
        archive.writestr("content.xml", "<office:document-content/>")
    return buffer.getvalue()


def test_types_come_from_the_content() -> None:
    assert sniff_type(b"%PDF-1.7\n...") == PDF
    assert sniff_type(b"\x89PNG\r\n\x1a\n....") == PNG
    assert sniff_type(_docx()) == DOCX
    assert sniff_type(_odt()) == ODT
    assert sniff_type(b"MZ\x90\x00\x03") == "application/x-executable"
    assert sniff_type(b"\x7fELF\x02\x01") == "application/x-executable"
    assert sniff_type(b"<html><script>alert(1)</script>") == "text/html"
    assert sniff_type("Bonjour, voici ma réponse.".encode()) == "text/plain"


LIMITS = AttachmentLimits(
    max_bytes=1000, max_count=2, allowed_types=frozenset({PDF, PNG, DOCX, ODT, "text/plain"})
)


def test_attachment_decisions() -> None:
    parts = [
        ParsedPart("avis.pdf", "application/pdf", b"%PDF-1.4 ok"),
        ParsedPart("facture.pdf", "application/pdf", b"MZ\x90\x00 an exe"),
        ParsedPart("photo.png", "application/octet-stream", b"%PDF-1.4 not a png"),
        ParsedPart("setup.exe", "application/pdf", b"%PDF-1.4"),
        ParsedPart("gros.pdf", "application/pdf", b"%PDF-" + b"x" * 2000),
        ParsedPart("page.html", "text/html", b"<html></html>"),
        ParsedPart("cv.docx", "application/octet-stream", _docx()),
        ParsedPart("lettre.odt", ODT, _odt()),
    ]
    decisions = {d.name: d.refused for d in check_attachments(parts, LIMITS)}
    assert decisions == {
        "avis.pdf": None,
        "facture.pdf": "type_not_allowed",
        "photo.png": "type_mismatch",
        "setup.exe": "dangerous_name",
        "gros.pdf": "too_large",
        "page.html": "dangerous_name",
        "cv.docx": None,
        "lettre.odt": "too_many",
    }


def test_safe_filenames() -> None:
    assert safe_filename("../../etc/passwd") == "passwd"
    assert safe_filename("C:\\Users\\x\\avis d'imposition.pdf") == "avis d'imposition.pdf"
    assert safe_filename("\x00\x1b") == "piece-jointe"


def test_case_reference_in_subject_and_reply_subject() -> None:
    assert case_references_in("Re: APL [DOS-2026-000123] suite") == ["DOS-2026-000123"]
    assert case_references_in("Re: APL [dos-2026-000123]") == ["DOS-2026-000123"]
    assert case_references_in("DOS-2026-000123 without brackets") == []
    assert reply_subject("RE: Re: Demande d'APL", "DOS-2026-000123") == (
        "Re: Demande d'APL [DOS-2026-000123]"
    )
    assert reply_subject("Demande [DOS-2026-000123]", "DOS-2026-000123") == (
        "Re: Demande [DOS-2026-000123]"
    )


def test_raw_8bit_headers_and_nul_characters_become_storable_text() -> None:
    raw = (
        'From: "Élodie Rivière" <elodie@example.org>\r\n'
        "To: contact@caf.example.fr\r\nSubject: Dossier n° 12\r\n"
        "Message-ID: <8bit@example.org>\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\nBonjour\x00 à vous\r\n"
    ).encode()
    parsed = parse_email(raw)
    assert parsed.display_name == "Élodie Rivière"
    assert parsed.subject == "Dossier n° 12"
    assert parsed.text.strip() == "Bonjour à vous"
    for value in (parsed.display_name, parsed.subject, parsed.text):
        value.encode("utf-8")  # no lone surrogates left
