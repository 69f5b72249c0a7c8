"""One received e-mail, from raw bytes to a recorded message (the SMTP server and the IMAP
poller both end here, and this ends in :func:`channels_inbound.ingest.do_ingest_message`).

Steps: parse; find our endpoint among the recipients; return at once for a Message-ID already
recorded; check the attachments against their content and the limits (an oversized one is a
permanent refusal the SMTP server turns into a 552 bounce); store the accepted files; sanitise
the HTML; then, in one transaction, thread, ingest, index the Message-ID, attach or open the
case, and record the acknowledgement (at most one per sender per day, by a unique constraint)
and the refused-attachments notice, sent after commit.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from channels_inbound.hooks import acknowledgement_lines
from channels_inbound.ingest import InboundMessage, IngestError, do_ingest_message
from channels_inbound.models import Endpoint
from contacts.actions import find_contact
from contacts.identity import InvalidIdentity
from contacts.models import Contact
from interactions.actions import do_record_message
from interactions.channels import Channel
from interactions.lifecycle import Status
from interactions.models import Interaction, Message

from .attachments import (
    AttachmentLimits,
    check_attachments,
    delete_stored,
    oversized,
    store_attachments,
)
from .automatic import automatic_reason
from .models import EmailAcknowledgement, EmailThreadEntry
from .outbound import (
    acknowledgement_content,
    ascii_text,
    do_record_outbound_email,
    megabytes,
    our_addresses,
    refused_notice_content,
)
from .parsing import ParsedEmail, parse_email
from .sanitize import sanitize_email_html
from .threads import do_open_case, find_thread

logger = logging.getLogger(__name__)


class EmailRefused(Exception):
    """A permanent refusal, with the SMTP code and the (ASCII) text the sender's server gets."""

    def __init__(self, code: int, enhanced: str, text: str) -> None:
        self.code = code
        self.enhanced = enhanced
        self.text = text
        super().__init__(f"{code} {enhanced} {text}")

    def smtp_reply(self) -> str:
        lines = [line for line in self.text.splitlines() if line.strip()] or ["refused"]
        head = [f"{self.code}-{self.enhanced} {line}" for line in lines[:-1]]
        return "\r\n".join([*head, f"{self.code} {self.enhanced} {lines[-1]}"])


@dataclass(frozen=True)
class EmailIngestResult:
    interaction_id: int
    message_id: int
    created: bool  # False: this Message-ID was already recorded
    new_interaction: bool = False
    automatic: str | None = None  # why no acknowledgement may be sent, if machine-sent
    acknowledged: bool = False
    refused: list[dict[str, Any]] = field(default_factory=list)


def bilingual_ascii(message: str, params: dict[str, Any]) -> str:
    """The same sentence in French then English, folded to ASCII for an SMTP reply."""
    lines = []
    for language in ("fr", "en"):
        with translation.override(language):
            lines.append(ascii_text(_(message) % params))
    return "\n".join(lines)


def too_large_message(size: int | None = None) -> EmailRefused:
    limit = megabytes(settings.EMAIL_MAX_MESSAGE_BYTES)
    if size is None:
        text = bilingual_ascii(
            gettext_noop(
                "Message refused: it is over the size limit of %(max)s MB. "
                "Send smaller attachments, or several messages."
            ),
            {"max": limit},
        )
    else:
        text = bilingual_ascii(
            gettext_noop(
                "Message refused: its size (%(size)s MB) is over the limit of %(max)s MB. "
                "Send smaller attachments, or several messages."
            ),
            {"size": megabytes(size), "max": limit},
        )
    return EmailRefused(552, "5.3.4", text)


def too_large_attachment(name: str, size: int) -> EmailRefused:
    return EmailRefused(
        552,
        "5.3.4",
        bilingual_ascii(
            gettext_noop(
                'Message refused: the attachment "%(name)s" (%(size)s MB) is over the limit of '
                "%(max)s MB per file."
            ),
            {
                "name": name[:60],
                "size": megabytes(size),
                "max": megabytes(settings.EMAIL_MAX_ATTACHMENT_BYTES),
            },
        ),
    )


def endpoint_among(addresses: Iterable[str]) -> Endpoint | None:
    wanted = [a.strip().strip("<>").lower() for a in addresses if a and a.strip()]
    if not wanted:
        return None
    found = {
        e.address: e
        for e in Endpoint.objects.select_related("queue").filter(
            channel=Channel.EMAIL, active=True, address__in=wanted
        )
    }
    for address in wanted:
        if address in found:
            return found[address]
    return None


def _existing(message_id: str) -> Message | None:
    return Message.objects.filter(channel=Channel.EMAIL, provider_id=message_id).first()


def do_ingest_email(
    raw: bytes,
    *,
    recipients: Iterable[str],
    envelope_sender: str | None = None,
    via_smtp: bool = False,
    extra_refused: list[dict[str, Any]] | None = None,
) -> EmailIngestResult:
    """Record one received e-mail. Raises :class:`EmailRefused` (permanent: bounce it) and
    :class:`IngestError` (no endpoint among ``recipients``); anything else is temporary."""
    if via_smtp and len(raw) > settings.EMAIL_MAX_MESSAGE_BYTES:
        raise too_large_message(len(raw))
    parsed = parse_email(raw)
    recipients = list(recipients)
    endpoint = endpoint_among(recipients)
    if endpoint is None and not via_smtp:
        endpoint = endpoint_among(parsed.recipients)
    if endpoint is None:
        raise IngestError(f"no active email endpoint among {recipients!r}")
    existing = _existing(parsed.message_id)
    if existing is not None:
        return EmailIngestResult(existing.interaction_id, existing.pk, False)
    decisions = check_attachments(parsed.parts, AttachmentLimits.from_settings())
    too_big = oversized(decisions)
    if via_smtp and too_big:
        raise too_large_attachment(too_big[0].name, too_big[0].size)
    entries, content_ids = store_attachments(decisions, directory=settings.EMAIL_ATTACHMENTS_DIR)
    entries += extra_refused or []
    try:
        html = sanitize_email_html(parsed.html, content_ids=content_ids)
        automatic = automatic_reason(
            parsed,
            envelope_sender=envelope_sender,
            via_smtp=via_smtp,
            our_addresses=our_addresses(),
            our_domain=settings.EMAIL_DOMAIN,
        )
        result = _record(parsed, endpoint, html, entries, automatic)
    except BaseException:
        delete_stored(entries)
        raise
    if not result.created:
        delete_stored(entries)  # a concurrent delivery of the same Message-ID won
    return result


def _sender_contact(parsed: ParsedEmail, organisation_id: int) -> Contact | None:
    if not parsed.from_address:
        return None
    try:
        return find_contact("email", parsed.from_address, organisation_id=organisation_id)
    except InvalidIdentity:
        return None


@transaction.atomic
def _record(
    parsed: ParsedEmail,
    endpoint: Endpoint,
    html: str,
    attachments: list[dict[str, Any]],
    automatic: str | None,
) -> EmailIngestResult:
    org_id = endpoint.organisation_id
    match = find_thread(parsed, _sender_contact(parsed, org_id), org_id)
    if automatic and match.interaction is not None and match.interaction.status == Status.CLOSED:
        # An out-of-office answering our last reply is kept with the thread but does not
        # reopen a closed conversation (a citizen's own reply does).
        return _record_on_closed(parsed, endpoint, html, attachments, automatic, match.interaction)
    ingested = do_ingest_message(
        InboundMessage(
            channel=Channel.EMAIL,
            sender=parsed.from_address,
            recipient=endpoint.address,
            text=parsed.text,
            html=html,
            provider_id=parsed.message_id,
            subject=parsed.subject,
            display_name=parsed.display_name,
            thread_ref=match.thread_ref,
            attachments=attachments,
        ),
        queue=endpoint.queue,
    )
    if not ingested.created:
        return EmailIngestResult(ingested.interaction.pk, ingested.message.pk, False)
    interaction = ingested.interaction
    entry, _created = EmailThreadEntry.objects.get_or_create(
        message_id=parsed.message_id,
        defaults={
            "interaction": interaction,
            "stored_message": ingested.message,
            "direction": EmailThreadEntry.Direction.INBOUND,
            "citizen_address": parsed.from_address or "",
            "our_address": endpoint.address,
            "subject": parsed.subject,
            "references": " ".join(parsed.references or parsed.in_reply_to),
            "sent_at": parsed.date,
        },
    )
    reference = _case_reference(interaction, match.case, parsed)
    refused = [a for a in attachments if a.get("refused")]
    acknowledged = False
    if (
        automatic is None
        and settings.EMAIL_ACKNOWLEDGEMENT
        and ingested.new_interaction
        and parsed.from_address
        and reference
    ):
        acknowledged = _acknowledge(interaction, entry, endpoint, parsed, reference, refused)
    if refused and not acknowledged and automatic is None and parsed.from_address:
        subject, text = refused_notice_content(
            subject=parsed.subject, reference=reference, refused=refused
        )
        do_record_outbound_email(
            interaction=interaction,
            to=parsed.from_address,
            our_address=endpoint.address,
            subject=subject,
            text=text,
            in_reply_to=entry,
            automatic=True,
        )
    if automatic:
        logger.info("e-mail %s is automatic (%s): not answered", parsed.message_id, automatic)
    return EmailIngestResult(
        interaction_id=interaction.pk,
        message_id=ingested.message.pk,
        created=True,
        new_interaction=ingested.new_interaction,
        automatic=automatic,
        acknowledged=acknowledged,
        refused=refused,
    )


def _record_on_closed(
    parsed: ParsedEmail,
    endpoint: Endpoint,
    html: str,
    attachments: list[dict[str, Any]],
    automatic: str,
    interaction: Interaction,
) -> EmailIngestResult:
    recorded = do_record_message(
        interaction=interaction,
        direction="inbound",
        text=parsed.text,
        html=html,
        provider_id=parsed.message_id,
        attachments=attachments,
    )
    if recorded.created:
        EmailThreadEntry.objects.get_or_create(
            message_id=parsed.message_id,
            defaults={
                "interaction": interaction,
                "stored_message": recorded.message,
                "direction": EmailThreadEntry.Direction.INBOUND,
                "citizen_address": parsed.from_address or "",
                "our_address": endpoint.address,
                "subject": parsed.subject,
                "references": " ".join(parsed.references or parsed.in_reply_to),
                "sent_at": parsed.date,
            },
        )
    return EmailIngestResult(
        interaction_id=interaction.pk,
        message_id=recorded.message.pk,
        created=recorded.created,
        automatic=automatic,
    )


def _case_reference(interaction: Interaction, named: Any, parsed: ParsedEmail) -> str:
    """The case of the interaction: the one it has, the one the subject names, or a new one
    for a citizen writing about something new."""
    if interaction.case_id is not None:
        return str(interaction.case.reference) if interaction.case else ""
    if interaction.contact is None:
        return ""
    case = named or do_open_case(contact=interaction.contact, subject=parsed.subject or "E-mail")
    Interaction.objects.filter(pk=interaction.pk).update(case=case)
    interaction.case = case
    return str(case.reference)


def _acknowledge(
    interaction: Interaction,
    entry: EmailThreadEntry,
    endpoint: Endpoint,
    parsed: ParsedEmail,
    reference: str,
    refused: list[dict[str, Any]],
) -> bool:
    address = parsed.from_address or ""
    try:
        with transaction.atomic():
            ack = EmailAcknowledgement.objects.create(
                address=address, day=timezone.localdate(), interaction=interaction
            )
    except IntegrityError:
        return False  # this sender already had today's acknowledgement
    subject, text = acknowledgement_content(
        subject=parsed.subject,
        reference=reference,
        refused=refused,
        signature=endpoint.name,
        extra_lines=acknowledgement_lines(interaction),  # e.g. "Follow my request"
    )
    message = do_record_outbound_email(
        interaction=interaction,
        to=address,
        our_address=endpoint.address,
        subject=subject,
        text=text,
        in_reply_to=entry,
        automatic=True,
    )
    EmailAcknowledgement.objects.filter(pk=ack.pk).update(message_id=message.provider_id or "")
    return True
