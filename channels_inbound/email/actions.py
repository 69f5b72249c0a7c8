"""The e-mail channel's writes, for the console and the channel's own interfaces.

* :func:`do_send_email_reply`: an agent's answer, threaded and quoted, sent after commit.
* :func:`channels_inbound.email.inbound.do_ingest_email`: one received e-mail (re-exported).
* To show a message: :func:`channels_inbound.email.sanitize.render_email_html` (re-exported),
  which reveals remote images only when the agent asks.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import transaction

from interactions.models import Interaction, Message

from .inbound import EmailIngestResult, EmailRefused, do_ingest_email
from .models import EmailThreadEntry
from .outbound import do_record_outbound_email, reply_subject
from .sanitize import plain_text_to_html, render_email_html

__all__ = [
    "EmailIngestResult",
    "EmailRefused",
    "EmailReplyError",
    "do_ingest_email",
    "do_send_email_reply",
    "render_email_html",
]


class EmailReplyError(ValueError):
    """The reply cannot be sent (not an e-mail interaction, nothing to answer, empty text)."""


def do_send_email_reply(*, interaction_id: int, author_id: int, text: str) -> Message:
    """Record an agent's reply on an e-mail interaction and send it once committed.

    It answers the citizen's latest message: ``In-Reply-To`` is that message, ``References``
    the thread (root kept), the subject ``Re: ... [case reference]``; the mail has a plain-text
    part and an HTML part, both quoting the message answered. The reply goes to the citizen's
    real address (``From`` of that message, never a ``Reply-To`` a third party could set) from
    the mailbox the citizen wrote to. Returns the outbound ``Message`` (``provider_id`` is its
    Message-ID; ``delivery_status`` goes ``queued`` -> ``sent`` or ``failed``).
    """
    text = text.strip()
    if not text:
        raise EmailReplyError("an empty reply cannot be sent")
    author = get_user_model().objects.get(pk=author_id)
    with transaction.atomic():
        interaction = (
            Interaction.objects.select_for_update(of=("self",))
            .select_related("case")
            .filter(pk=interaction_id)
            .first()
        )
        if interaction is None:
            raise EmailReplyError(f"no interaction #{interaction_id}")
        if interaction.channel != "email":
            raise EmailReplyError(f"interaction #{interaction_id} is not an e-mail conversation")
        answered = (
            EmailThreadEntry.objects.filter(
                interaction=interaction, direction=EmailThreadEntry.Direction.INBOUND
            )
            .exclude(citizen_address="")
            .order_by("-id")
            .first()
        )
        if answered is None:
            raise EmailReplyError(f"interaction #{interaction_id} has no message to answer")
        reference = interaction.case.reference if interaction.case else ""
        return do_record_outbound_email(
            interaction=interaction,
            to=answered.citizen_address,
            our_address=answered.our_address,
            subject=reply_subject(answered.subject or interaction.subject, reference),
            text=text,
            html=plain_text_to_html(text),
            in_reply_to=answered,
            author=author,
        )
