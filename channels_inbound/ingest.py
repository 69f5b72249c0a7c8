"""The one ingest path every channel ends in.

A channel adapter (SMS webhook, voice webhook, SMTP server, IMAP poller, chat consumer) turns a
provider payload into an :class:`InboundMessage` and calls :func:`do_ingest_message`, which:

1. returns at once if the provider id was already stored (a retried or concurrent delivery);
2. resolves the citizen from the sender identity (a withheld one stays anonymous);
3. joins the open interaction it belongs to (same thread, or the citizen's open interaction on
   this channel) or creates one in the endpoint's queue, which queues it for routing;
4. stores the message.

All of it is one transaction: a delivery is either fully recorded or not at all, and the
routing and console events are published only after it commits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from contacts.actions import resolve_contact
from contacts.identity import InvalidIdentity
from contacts.models import Contact
from interactions.actions import do_create_interaction, do_record_message, do_transition_interaction
from interactions.lifecycle import OPEN_STATUSES, Status
from interactions.models import Interaction, Message
from routing.models import Queue

from .models import Endpoint

IDENTITY_KIND = {"sms": "phone", "voice": "phone", "email": "email", "chat": "chat"}


class IngestError(ValueError):
    """The delivery cannot be recorded (unknown endpoint, no queue...); the message says why."""


@dataclass(frozen=True)
class InboundMessage:
    channel: str
    sender: str | None
    recipient: str
    text: str = ""
    html: str = ""
    provider_id: str | None = None
    subject: str = ""
    display_name: str = ""
    # The interaction this message continues, when the channel knows it (e-mail threading,
    # a chat session, a call): matched on Interaction.external_ref.
    thread_ref: str | None = None
    attachments: list[dict[str, Any]] = field(default_factory=list)
    required_skills: dict[str, int] | None = None
    language: str | None = None
    priority: int | None = None


@dataclass(frozen=True)
class IngestResult:
    interaction: Interaction
    message: Message
    created: bool  # False: this provider id was already recorded, nothing new was written
    new_interaction: bool


def endpoint_for(channel: str, recipient: str) -> Endpoint:
    endpoint = (
        Endpoint.objects.select_related("queue")
        .filter(channel=channel, address=recipient, active=True)
        .first()
    )
    if endpoint is None:
        raise IngestError(f"no active {channel} endpoint for {recipient!r}")
    return endpoint


def _open_interaction(
    msg: InboundMessage, organisation_id: int, contact_id: int | None
) -> Interaction | None:
    candidates = Interaction.objects.select_for_update().filter(
        organisation_id=organisation_id, channel=msg.channel
    )
    if msg.thread_ref:
        found = candidates.filter(external_ref=msg.thread_ref).order_by("-id").first()
        if found is not None:
            return found
    if contact_id is None or msg.channel in ("voice", "email"):
        # A new call is a new interaction; e-mail continues only by thread.
        return None
    return (
        candidates.filter(contact_id=contact_id, status__in=OPEN_STATUSES).order_by("-id").first()
    )


def do_ingest_message(msg: InboundMessage, *, queue: Queue | None = None) -> IngestResult:
    if msg.provider_id:
        existing = (
            Message.objects.select_related("interaction")
            .filter(channel=msg.channel, provider_id=msg.provider_id)
            .first()
        )
        if existing is not None:
            return IngestResult(existing.interaction, existing, False, False)
    if queue is None:
        queue = endpoint_for(msg.channel, msg.recipient).queue
    try:
        resolved = resolve_contact(
            IDENTITY_KIND[msg.channel],
            msg.sender,
            display_name=msg.display_name,
            organisation_id=queue.organisation_id,
        )
    except InvalidIdentity:
        resolved = None  # an unparseable sender id is treated like a withheld one
    contact = resolved.contact if resolved else None
    try:
        return _ingest(msg, queue, contact)
    except _Duplicate as duplicate:  # a concurrent delivery of the same id won the race
        existing = duplicate.message
        return IngestResult(existing.interaction, existing, False, False)


class _Duplicate(Exception):
    def __init__(self, message: Message) -> None:
        self.message = message


@transaction.atomic
def _ingest(msg: InboundMessage, queue: Queue, contact: Contact | None) -> IngestResult:
    if contact is not None:
        # One delivery at a time per citizen, so two SMS arriving together join one interaction.
        Contact.objects.select_for_update().filter(pk=contact.pk).first()
    interaction = _open_interaction(msg, queue.organisation_id, contact.pk if contact else None)
    new_interaction = interaction is None
    if interaction is None:
        interaction = do_create_interaction(
            channel=msg.channel,
            contact=contact,
            queue=queue,
            subject=msg.subject or msg.text[:80],
            required_skills=msg.required_skills,
            language=msg.language,
            priority=msg.priority,
            external_ref=msg.thread_ref or "",
        )
    elif interaction.status == Status.CLOSED:
        do_transition_interaction(interaction=interaction, to=Status.QUEUED, reason="reopened")
    recorded = do_record_message(
        interaction=interaction,
        direction="inbound",
        text=msg.text,
        html=msg.html,
        provider_id=msg.provider_id,
        attachments=msg.attachments,
    )
    if not recorded.created:
        raise _Duplicate(recorded.message)  # roll back anything this delivery created
    return IngestResult(interaction, recorded.message, True, new_interaction)
