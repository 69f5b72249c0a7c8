"""Mail we send: the acknowledgement, the refused-attachments notice, agents' replies.

Every outbound e-mail is first an outbound ``Message`` of its interaction (``provider_id`` is its
Message-ID) with an :class:`EmailThreadEntry` holding the headers; :func:`send_outbound_message`
builds the MIME message from those rows and sends it with Django's mail framework, so a retry
sends the same mail and agents see in the interaction exactly what went out.

Citizen-facing text is French first with the English version below it, as many French
administrations do; both come from the gettext catalogues (``translation.override``).
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Iterable, Sequence
from email.headerregistry import Address
from email.utils import format_datetime, make_msgid
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import transaction
from django.utils import timezone, translation
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from channels_inbound.hooks import AcknowledgementLine
from channels_inbound.models import Endpoint
from interactions.actions import do_record_message
from interactions.channels import Channel
from interactions.models import Interaction, Message
from kernel import instruments

from .models import EmailThreadEntry
from .sanitize import plain_text_to_html

logger = logging.getLogger(__name__)

DELIVERY_QUEUED = "queued"
DELIVERY_SENT = "sent"
DELIVERY_FAILED = "failed"


def new_message_id() -> str:
    """A fresh Message-ID on our domain, without brackets."""
    return make_msgid(domain=settings.EMAIL_DOMAIN).strip("<>")


def ascii_text(text: str) -> str:
    """SMTP replies are ASCII: French accents folded, anything else dropped."""
    folded = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in folded if ord(ch) < 128 and (ch.isprintable() or ch == " "))


def megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f}".rstrip("0").rstrip(".")


def refusal_text(code: str) -> str:
    if code == "too_large":
        return _("the file is larger than %(max)s MB") % {
            "max": megabytes(settings.EMAIL_MAX_ATTACHMENT_BYTES)
        }
    if code == "message_too_large":
        return _("the message is larger than %(max)s MB: its content was not imported") % {
            "max": megabytes(settings.EMAIL_MAX_MESSAGE_BYTES)
        }
    if code == "too_many":
        return _("too many attachments (at most %(count)s per message)") % {
            "count": settings.EMAIL_MAX_ATTACHMENTS
        }
    if code == "type_mismatch":
        return _("the content of the file does not match its type")
    return _("this type of file is not accepted")


def accepted_formats_text() -> str:
    return _(
        "Accepted files: PDF, PNG, JPEG, GIF, ODT, DOCX and plain text; at most %(size)s MB "
        "per file and %(count)s files per message."
    ) % {
        "size": megabytes(settings.EMAIL_MAX_ATTACHMENT_BYTES),
        "count": settings.EMAIL_MAX_ATTACHMENTS,
    }


def _refused_section(refused: list[dict[str, Any]]) -> str:
    if not refused:
        return ""
    lines = [_("The following attachments were not accepted:")]
    lines += [f"- {entry['name']} : {refusal_text(str(entry['refused']))}" for entry in refused]
    lines.append(accepted_formats_text())
    return "\n".join(lines)


def _acknowledgement_body(
    *,
    subject: str,
    reference: str,
    delay: str,
    refused: list[dict[str, Any]],
    signature: str,
    extra_lines: Sequence[AcknowledgementLine] = (),
) -> str:
    parts = [
        _("Hello,"),
        _('We have received your message "%(subject)s".') % {"subject": subject or "—"},
        _("It is registered under the reference %(reference)s. We will answer within %(delay)s.")
        % {"reference": reference, "delay": delay},
        _(
            "To add something to your request, reply to this message and keep [%(reference)s] "
            "in the subject."
        )
        % {"reference": reference},
    ]
    parts += [line for line in (render() for render in extra_lines) if line]
    section = _refused_section(refused)
    if section:
        parts.append(section)
    parts.append(_("This acknowledgement was sent automatically.") + "\n" + signature)
    return "\n\n".join(parts)


def acknowledgement_content(
    *,
    subject: str,
    reference: str,
    refused: list[dict[str, Any]],
    signature: str,
    extra_lines: Sequence[AcknowledgementLine] = (),
) -> tuple[str, str]:
    """(subject, text) of the acknowledgement: French, then English; ``extra_lines`` are the
    sentences the channel hooks add (e.g. "Follow my request"), rendered in both languages."""
    with translation.override("fr"):
        french = _acknowledgement_body(
            subject=subject,
            reference=reference,
            delay=settings.EMAIL_ACK_REPLY_DELAY_FR,
            refused=refused,
            signature=signature,
            extra_lines=extra_lines,
        )
        title_fr = _("Acknowledgement of receipt")
    with translation.override("en"):
        english = _acknowledgement_body(
            subject=subject,
            reference=reference,
            delay=settings.EMAIL_ACK_REPLY_DELAY_EN,
            refused=refused,
            signature=signature,
            extra_lines=extra_lines,
        )
        title_en = _("Acknowledgement of receipt")
    title = f"{title_fr} / {title_en}: {subject}".strip() if subject else f"{title_fr} / {title_en}"
    return f"{title[:200]} [{reference}]", f"{french}\n\n— English version —\n\n{english}"


def _notice_body(*, subject: str, reference: str, refused: list[dict[str, Any]]) -> str:
    return "\n\n".join(
        [
            _("Hello,"),
            _('We have received your message "%(subject)s" (reference %(reference)s).')
            % {"subject": subject or "—", "reference": reference},
            _refused_section(refused),
            _("This message was sent automatically."),
        ]
    )


def refused_notice_content(
    *, subject: str, reference: str, refused: list[dict[str, Any]]
) -> tuple[str, str]:
    with translation.override("fr"):
        french = _notice_body(subject=subject, reference=reference, refused=refused)
        title_fr = _("Attachments not accepted")
    with translation.override("en"):
        english = _notice_body(subject=subject, reference=reference, refused=refused)
        title_en = _("Attachments not accepted")
    tag = f" [{reference}]" if reference else ""
    return f"{title_fr} / {title_en}{tag}", f"{french}\n\n— English version —\n\n{english}"


def reply_subject(subject: str, reference: str) -> str:
    base = subject.strip()
    while base.lower().startswith(("re:", "re :", "tr:", "fw:", "fwd:")):
        base = base.split(":", 1)[1].strip()
    if reference and f"[{reference}]".lower() not in base.lower():
        base = f"{base} [{reference}]".strip()
    return f"Re: {base}"[:255]


def quote(text: str) -> str:
    return "\n".join(f"> {line}" if line else ">" for line in text.strip().splitlines())


def do_record_outbound_email(
    *,
    interaction: Interaction,
    to: str,
    our_address: str,
    subject: str,
    text: str,
    html: str = "",
    in_reply_to: EmailThreadEntry | None = None,
    author: User | None = None,
    automatic: bool = False,
) -> Message:
    """Record an outbound e-mail (message + headers) and send it once the transaction commits."""
    from .threads import references_for_reply

    message_id = new_message_id()
    references = references_for_reply(in_reply_to) if in_reply_to is not None else []
    with transaction.atomic():
        recorded = do_record_message(
            interaction=interaction,
            direction="outbound",
            text=text,
            html=html,
            provider_id=message_id,
            author=author,
        )
        message = recorded.message
        message.delivery_status = DELIVERY_QUEUED
        message.save(update_fields=["delivery_status"])
        EmailThreadEntry.objects.create(
            message_id=message_id,
            interaction=interaction,
            stored_message=message,
            direction=EmailThreadEntry.Direction.OUTBOUND,
            citizen_address=to,
            our_address=our_address,
            subject=subject[:255],
            references=" ".join(references),
            auto_submitted=automatic,
        )
        transaction.on_commit(lambda: _enqueue_send(message.pk), robust=True)
    return message


def _enqueue_send(message_id: int) -> None:
    from .tasks import send_email_message

    send_email_message.delay(message_id)


def _sender_name(our_address: str) -> str:
    endpoint = Endpoint.objects.filter(channel=Channel.EMAIL, address=our_address).first()
    return endpoint.name if endpoint is not None else ""


def build_email(message: Message, entry: EmailThreadEntry) -> EmailMultiAlternatives:
    """The MIME message for a recorded outbound e-mail: a plain-text part, an HTML part, our
    Message-ID and the thread headers; an agent's reply quotes the message it answers."""
    text = message.text
    html = message.html or plain_text_to_html(message.text)
    references = [r for r in entry.references.split() if r]
    headers: dict[str, str] = {
        "Message-ID": f"<{entry.message_id}>",
        "Date": format_datetime(timezone.now()),
    }
    if references:
        headers["In-Reply-To"] = f"<{references[-1]}>"
        headers["References"] = " ".join(f"<{r}>" for r in references)
    if entry.auto_submitted:
        headers["Auto-Submitted"] = "auto-replied"
        headers["X-Auto-Response-Suppress"] = "All"
        headers["X-Loop"] = settings.EMAIL_DOMAIN
    elif references:
        answered = (
            EmailThreadEntry.objects.select_related("stored_message")
            .filter(message_id=references[-1])
            .first()
        )
        if (
            answered is not None
            and answered.stored_message is not None
            and answered.stored_message.text
        ):
            with translation.override(message.interaction.language or "fr"):
                when = date_format(
                    timezone.localtime(answered.sent_at or answered.stored_message.created_at),
                    "DATETIME_FORMAT",
                )
                intro = _("On %(date)s, %(who)s wrote:") % {
                    "date": when,
                    "who": answered.citizen_address
                    if answered.direction == EmailThreadEntry.Direction.INBOUND
                    else answered.our_address,
                }
            previous = answered.stored_message.text
            text = f"{text.rstrip()}\n\n{intro}\n{quote(previous)}\n"
            quoted = plain_text_to_html(previous)
            html = f"{html}<p>{_escape(intro)}</p><blockquote>{quoted}</blockquote>"
    email = EmailMultiAlternatives(
        subject=entry.subject,
        body=text,
        from_email=str(
            Address(display_name=_sender_name(entry.our_address), addr_spec=entry.our_address)
        ),
        to=[entry.citizen_address],
        headers=headers,
    )
    email.attach_alternative(f"<!doctype html><html><body>{html}</body></html>", "text/html")
    return email


def _escape(text: str) -> str:
    from html import escape

    return escape(text)


def send_outbound_message(message_id: int) -> bool:
    """Send one recorded outbound e-mail; ``False`` when it had already gone."""
    message = Message.objects.select_related("interaction").get(pk=message_id)
    if message.delivery_status == DELIVERY_SENT:
        return False
    entry = EmailThreadEntry.objects.get(stored_message=message)
    email = build_email(message, entry)
    with get_connection(fail_silently=False) as connection:
        connection.send_messages([email])
    Message.objects.filter(pk=message.pk).update(delivery_status=DELIVERY_SENT)
    instruments.outbound_sent(Channel.EMAIL)
    EmailThreadEntry.objects.filter(pk=entry.pk).update(sent_at=timezone.now())
    _publish_status(message.pk, DELIVERY_SENT, attempts=0, reason="")
    return True


def _publish_status(message_id: int, status: str, *, attempts: int, reason: str) -> None:
    """``message.status`` to the assigned agent's console and the supervisors (as for SMS)."""
    from kernel import event_catalogue
    from kernel.events import SUPERVISORS_GROUP, agent_group, publish

    row = Message.objects.filter(pk=message_id).values("interaction_id").first()
    if row is None:
        return
    groups = [SUPERVISORS_GROUP]
    agent_id = (
        Interaction.objects.filter(pk=row["interaction_id"])
        .values_list("assigned_agent_id", flat=True)
        .first()
    )
    if agent_id:
        groups.append(agent_group(agent_id))
    publish(
        *event_catalogue.message_status(
            message_id=message_id,
            interaction_id=row["interaction_id"],
            channel=Channel.EMAIL,
            status=status,
            attempts=attempts,
            reason=reason,
        ),
        groups=groups,
    )


def note_retry(message_id: int, *, attempt: int, countdown: float, error: str) -> None:
    """An attempt failed and another follows: the agent is told why (in French)."""
    with translation.override(settings.LANGUAGE_CODE):
        reason = _(
            "attempt %(attempt)s failed: the mail server is unreachable or refused the message;"
            " retrying in %(s)s s"
        ) % {"attempt": attempt, "s": int(countdown)}
    logger.warning("e-mail message %s, attempt %s: %s", message_id, attempt, error)
    instruments.outbound_retry(Channel.EMAIL)
    _publish_status(message_id, DELIVERY_QUEUED, attempts=attempt, reason=reason)


def mark_failed(message_id: int, error: str, *, attempts: int = 1) -> None:
    with translation.override(settings.LANGUAGE_CODE):
        reason = _(
            "not sent after %(attempts)s attempts: the mail server is unreachable or refused"
            " the message"
        ) % {"attempts": attempts}
    updated = (
        Message.objects.filter(pk=message_id)
        .exclude(delivery_status=DELIVERY_SENT)
        .update(delivery_status=DELIVERY_FAILED)
    )
    logger.error("e-mail message %s could not be sent: %s", message_id, error)
    if updated:
        instruments.outbound_failed(Channel.EMAIL, "exhausted")
    if updated:
        _publish_status(message_id, DELIVERY_FAILED, attempts=attempts, reason=reason)


def our_addresses() -> Iterable[str]:
    return Endpoint.objects.filter(channel=Channel.EMAIL).values_list("address", flat=True)
