"""Which interaction a received e-mail continues.

In order: a Message-ID we know in ``In-Reply-To`` then ``References`` (newest first), then a case
reference in the subject (``[DOS-2026-000123]``) when the sender is that case's citizen. An
unknown thread starts a new interaction whose ``external_ref`` is the thread's root Message-ID
(the first of ``References``), so two messages of one new thread arriving together still meet in
:func:`channels_inbound.ingest.do_ingest_message`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from contacts.models import Case, Contact
from interactions.channels import Channel
from interactions.models import Interaction

from .models import EmailThreadEntry
from .parsing import ParsedEmail

MAX_REFERENCES = 20


def case_reference_pattern() -> re.Pattern[str]:
    prefix = re.escape(settings.EMAIL_CASE_REFERENCE_PREFIX)
    return re.compile(rf"\[\s*({prefix}-\d{{4}}-\d{{4,10}})\s*\]", re.IGNORECASE)


def case_references_in(subject: str) -> list[str]:
    return [ref.upper() for ref in case_reference_pattern().findall(subject)]


@dataclass(frozen=True)
class ThreadMatch:
    thread_ref: str  # what InboundMessage.thread_ref gets
    interaction: Interaction | None  # the interaction it continues, when known
    case: Case | None  # a case the subject names (and the sender owns)
    how: str  # "message-id", "case-reference" or "new"


def find_thread(parsed: ParsedEmail, contact: Contact | None, organisation_id: int) -> ThreadMatch:
    """Must run inside the ingest transaction (it may set an interaction's external_ref).
    Only the receiving address's organisation's threads and cases are candidates."""
    known = [*parsed.in_reply_to, *reversed(parsed.references)]
    if known:
        entries = {
            e.message_id: e
            for e in EmailThreadEntry.objects.select_related("interaction").filter(
                message_id__in=known, interaction__organisation_id=organisation_id
            )
        }
        for message_id in known:
            entry = entries.get(message_id)
            if entry is not None:
                return ThreadMatch(
                    _thread_ref_of(entry.interaction), entry.interaction, None, "message-id"
                )
    case = None
    for reference in case_references_in(parsed.subject):
        found = Case.objects.filter(organisation_id=organisation_id, reference=reference).first()
        # A reference alone is guessable: it threads only the case's own citizen.
        if found is not None and contact is not None and found.contact_id == contact.pk:
            case = found
            break
    if case is not None:
        interaction = (
            Interaction.objects.filter(case=case, channel=Channel.EMAIL).order_by("-id").first()
        )
        if interaction is not None:
            return ThreadMatch(_thread_ref_of(interaction), interaction, case, "case-reference")
    root = parsed.references[0] if parsed.references else None
    root = root or (parsed.in_reply_to[0] if parsed.in_reply_to else None)
    return ThreadMatch(root or parsed.message_id, None, case, "new")


def _thread_ref_of(interaction: Interaction) -> str:
    if not interaction.external_ref:
        first = interaction.email_thread_entries.order_by("id").first()
        ref = first.message_id if first is not None else f"interaction-{interaction.pk}"
        Interaction.objects.filter(pk=interaction.pk, external_ref="").update(external_ref=ref)
        interaction.refresh_from_db(fields=["external_ref"])
    return interaction.external_ref


def references_for_reply(entry: EmailThreadEntry) -> list[str]:
    """``References`` of a message answering ``entry``: its references, then itself; the root
    is always kept when the list is trimmed (RFC 5322 §3.6.4).

    A citizen's mailer may send ``In-Reply-To`` alone, or a trimmed ``References``: the start of
    the thread is then taken back from the messages we know (the earliest one referenced
    carries its own references), so our replies always carry the whole thread."""
    chain = list(dict.fromkeys([r for r in entry.references.split() if r] + [entry.message_id]))
    for _ in range(MAX_REFERENCES):
        earliest = (
            EmailThreadEntry.objects.filter(message_id=chain[0])
            .exclude(pk=entry.pk)
            .values_list("references", flat=True)
            .first()
        )
        missing = [r for r in (earliest or "").split() if r and r not in chain]
        if not missing:
            break
        chain = missing + chain
    deduped = list(dict.fromkeys(chain))
    if len(deduped) > MAX_REFERENCES:
        deduped = [deduped[0], *deduped[-(MAX_REFERENCES - 1) :]]
    return deduped


def new_case_reference(year: int | None = None) -> str:
    prefix = settings.EMAIL_CASE_REFERENCE_PREFIX
    year = year or timezone.localdate().year
    last = (
        Case.objects.filter(reference__startswith=f"{prefix}-{year}-")
        .order_by("-reference")
        .values_list("reference", flat=True)
        .first()
    )
    number = int(last.rsplit("-", 1)[1]) + 1 if last and last.rsplit("-", 1)[1].isdigit() else 1
    return f"{prefix}-{year}-{number:06d}"


def do_open_case(*, contact: Contact, subject: str) -> Case:
    """A new case for the citizen, with the next free reference of the year."""
    for _attempt in range(10):
        try:
            with transaction.atomic():
                return Case.objects.create(
                    reference=new_case_reference(), contact=contact, subject=subject[:200]
                )
        except IntegrityError:
            continue  # another delivery took that number: take the next one
    raise RuntimeError("could not allocate a case reference")
