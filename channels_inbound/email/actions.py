"""The e-mail channel's writes, for the console and the channel's own interfaces.

* :func:`do_send_email_reply`: an agent's answer, threaded and quoted, sent after commit;
  :func:`default_reply_subject` is the subject it sends when the agent does not change it.
* :func:`channels_inbound.email.inbound.do_ingest_email`: one received e-mail (re-exported).
* To show a message: :func:`channels_inbound.email.sanitize.render_email_html` (re-exported),
  which reveals remote images only when the agent asks.
"""

from __future__ import annotations

import unicodedata

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils.translation import gettext as _

from interactions.channels import Channel
from interactions.models import Interaction, Message

from .inbound import EmailIngestResult, EmailRefused, do_ingest_email
from .models import EmailThreadEntry
from .outbound import do_record_outbound_email, reply_subject
from .sanitize import plain_text_to_html, render_email_html
from .threads import case_references_in

__all__ = [
    "EmailIngestResult",
    "EmailRefused",
    "EmailReplyError",
    "clean_reply_subject",
    "default_reply_subject",
    "do_ingest_email",
    "do_send_email_reply",
    "render_email_html",
]


class EmailReplyError(ValueError):
    """The reply cannot be sent (not an e-mail interaction, nothing to answer, empty text, a
    subject an agent typed that cannot be sent: that message is in the agent's language)."""


SUBJECT_MAX_LENGTH = 255  # EmailThreadEntry.subject; RFC 5322 recommends 78, MUAs fold longer


def _answered(interaction: Interaction) -> EmailThreadEntry | None:
    """The citizen's latest message on ``interaction``: the one a reply answers."""
    return (
        EmailThreadEntry.objects.filter(
            interaction=interaction, direction=EmailThreadEntry.Direction.INBOUND
        )
        .exclude(citizen_address="")
        .order_by("-id")
        .first()
    )


def _reference(interaction: Interaction) -> str:
    return interaction.case.reference if interaction.case else ""


def _proposed_subject(interaction: Interaction, answered: EmailThreadEntry | None) -> str:
    subject = (answered.subject if answered is not None else "") or interaction.subject
    return reply_subject(subject, _reference(interaction))


def default_reply_subject(interaction: Interaction) -> str:
    """What :func:`do_send_email_reply` sends without a subject: ``Re: ... [case reference]``."""
    return _proposed_subject(interaction, _answered(interaction))


def clean_reply_subject(subject: str, reference: str = "") -> str:
    """The subject an agent typed, ready to go in a header, or :class:`EmailReplyError`.

    Stripped; refused when empty, when it holds a line break or another control character (a
    header injection, or a paste gone wrong) or when it is longer than
    :data:`SUBJECT_MAX_LENGTH`. The case reference stays: an agent who deletes ``[reference]``
    gets it back at the end, since it is what threads the citizen's answer when their mail
    client drops ``In-Reply-To`` and ``References``.
    """
    cleaned = subject.strip()
    if not cleaned:
        raise EmailReplyError(_("The subject is empty: write one or keep the one proposed."))
    if any(unicodedata.category(ch) in {"Cc", "Zl", "Zp"} for ch in cleaned):
        raise EmailReplyError(_("The subject must fit on one line, without line breaks."))
    if reference and reference.upper() not in case_references_in(cleaned):
        cleaned = f"{cleaned} [{reference}]"
    if len(cleaned) > SUBJECT_MAX_LENGTH:
        raise EmailReplyError(
            _("The subject is too long: at most %(max)s characters, case reference included.")
            % {"max": SUBJECT_MAX_LENGTH}
        )
    return cleaned


def do_send_email_reply(
    *, interaction_id: int, author_id: int, text: str, subject: str | None = None
) -> Message:
    """Record an agent's reply on an e-mail interaction and send it once committed.

    It answers the citizen's latest message: ``In-Reply-To`` is that message, ``References``
    the thread (root kept), the subject ``Re: ... [case reference]`` unless the agent wrote
    another ``subject`` (checked by :func:`clean_reply_subject`; the thread headers are the same
    whatever the subject); the mail has a plain-text part and an HTML part, both quoting the
    message answered. The reply goes to the citizen's real address (``From`` of that message,
    never a ``Reply-To`` a third party could set) from the mailbox the citizen wrote to.
    Returns the outbound ``Message`` (``provider_id`` is its Message-ID; ``delivery_status``
    goes ``queued`` -> ``sent`` or ``failed``). Nothing is recorded or sent when it raises.
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
        if interaction.channel != Channel.EMAIL:
            raise EmailReplyError(f"interaction #{interaction_id} is not an e-mail conversation")
        answered = _answered(interaction)
        if answered is None:
            raise EmailReplyError(f"interaction #{interaction_id} has no message to answer")
        if subject is None:
            subject = _proposed_subject(interaction, answered)
        else:
            subject = clean_reply_subject(subject, _reference(interaction))
        return do_record_outbound_email(
            interaction=interaction,
            to=answered.citizen_address,
            our_address=answered.our_address,
            subject=subject,
            text=text,
            html=plain_text_to_html(text),
            in_reply_to=answered,
            author=author,
        )
