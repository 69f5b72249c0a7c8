"""The one write path for interactions and messages.

Every status change goes through :func:`do_transition_interaction`: a conditional update on the
current status (so two workers cannot both move the same interaction), a transition row with
its timestamp, and an event published after commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from contacts.models import Contact
from kernel import event_catalogue
from kernel.events import SUPERVISORS_GROUP, agent_group, publish
from organisations import authz
from organisations.models import OrganisationMismatch

from .lifecycle import TIMESTAMP_FIELD, IllegalTransition, Status, check_transition
from .models import Interaction, InteractionTransition, Message
from .signals import interaction_status_changed

MAX_TEXT_CHARS = 100_000


class StaleTransition(IllegalTransition):
    """The interaction changed status under us (another worker or agent moved it first)."""


def do_create_interaction(
    *,
    channel: str,
    contact: Contact | None,
    queue: Any = None,
    subject: str = "",
    priority: int | None = None,
    required_skills: dict[str, int] | None = None,
    language: str | None = None,
    direction: str = "inbound",
    external_ref: str = "",
    enqueue: bool = True,
    now: datetime | None = None,
    organisation_id: int | None = None,
) -> Interaction:
    """Record a new interaction; with ``enqueue`` it goes straight to its queue.

    Its organisation is its queue's or citizen's; ``organisation_id`` names it when it has
    neither (a mismatch with them is refused by the model)."""
    now = now or timezone.now()
    skills = dict(queue.required_skills()) if queue is not None else {}
    skills.update(required_skills or {})
    with transaction.atomic():
        interaction = Interaction.objects.create(
            channel=channel,
            direction=direction,
            contact=contact,
            queue=queue,
            subject=subject[:255],
            priority=priority if priority is not None else (queue.priority if queue else 0),
            required_skills=skills,
            language=language or (queue.language if queue else "") or "fr",
            external_ref=external_ref,
            sla_due_at=now + timedelta(seconds=queue.sla_target_seconds) if queue else None,
            **({"organisation_id": organisation_id} if organisation_id is not None else {}),
        )
        publish(
            *event_catalogue.interaction_created(interaction_id=interaction.pk, channel=channel),
            groups=[SUPERVISORS_GROUP],
        )
        if enqueue:
            do_transition_interaction(
                interaction=interaction, to=Status.QUEUED, reason="arrived", now=now
            )
    return interaction


def _check_same_organisation(interaction: Interaction, extra: dict[str, Any] | None) -> None:
    """The update below bypasses the model's own check: a new queue or agent must be of the
    interaction's organisation."""
    for name in ("queue", "assigned_agent"):
        value = (extra or {}).get(name)
        if value is not None and value.organisation_id != interaction.organisation_id:
            raise OrganisationMismatch(
                f"interaction #{interaction.pk} cannot take a {name} of another organisation"
            )


def do_transition_interaction(
    *,
    interaction: Interaction,
    to: str,
    reason: str = "",
    actor: User | None = None,
    now: datetime | None = None,
    extra: dict[str, Any] | None = None,
) -> Interaction:
    """Move ``interaction`` from its current status to ``to``.

    Raises :class:`IllegalTransition` when the life cycle forbids it and
    :class:`StaleTransition` when the stored status is no longer the one we read.
    ``extra`` fields (e.g. ``assigned_agent``) are written in the same update.
    """
    current = interaction.status
    previous_agent_id = interaction.assigned_agent_id
    check_transition(current, to)
    _check_same_organisation(interaction, extra)
    now = now or timezone.now()
    fields: dict[str, Any] = {"status": to, **(extra or {})}
    stamp = TIMESTAMP_FIELD.get(to)
    if stamp and not (stamp == "queued_at" and interaction.queued_at):
        fields[stamp] = now
    if to == Status.QUEUED and current in (Status.NEW, Status.TRANSFERRED, Status.CLOSED):
        fields["queue_entered_at"] = now  # the escalation steps' clock starts again
    with transaction.atomic():
        updated = Interaction.objects.filter(pk=interaction.pk, status=current).update(**fields)
        if updated != 1:
            raise StaleTransition(current, to)
        InteractionTransition.objects.create(
            interaction_id=interaction.pk,
            from_status=current,
            to_status=to,
            reason=reason[:64],
            actor=actor,
            at=now,
        )
        for name, value in fields.items():
            setattr(interaction, name, value)
        interaction_status_changed.send(
            sender=Interaction, interaction=interaction, from_status=current, to_status=to, now=now
        )
        # The agents it concerns (who had it, who has it now) see it in their consoles too.
        agents = {a for a in (previous_agent_id, interaction.assigned_agent_id) if a}
        publish(
            *event_catalogue.interaction_status(
                interaction_id=interaction.pk, from_status=current, to_status=to, reason=reason
            ),
            groups=[SUPERVISORS_GROUP, *(agent_group(a) for a in sorted(agents))],
        )
    return interaction


def do_set_interaction_status(
    *, actor: Any, interaction: Interaction, to: str, reason: str = ""
) -> Interaction:
    """A person changes an interaction's status (the API's ``/transition/``): within their
    scope only (an agent on what they hold, a supervisor on their teams' work, an
    administrator in their organisation), checked here whatever interface asks. The router
    and the channels, acting as the system, call :func:`do_transition_interaction`."""
    authz.check_change(actor, interaction)
    user = actor if isinstance(actor, User) else None  # a service token is no user row
    return do_transition_interaction(interaction=interaction, to=to, reason=reason, actor=user)


@dataclass(frozen=True)
class RecordedMessage:
    message: Message
    created: bool


def do_record_message(
    *,
    interaction: Interaction,
    direction: str,
    text: str = "",
    html: str = "",
    provider_id: str | None = None,
    attachments: list[dict[str, Any]] | None = None,
    author: User | None = None,
    channel: str | None = None,
) -> RecordedMessage:
    """Store a message once. A provider id already stored on this channel returns the existing
    message with ``created=False`` (a retried or concurrent webhook delivery).

    ``channel`` is the interaction's unless given: a reply sent on another channel than the
    conversation's (an SMS on an e-mail conversation) is recorded with the channel it went on."""
    channel = channel or interaction.channel
    if len(text) > MAX_TEXT_CHARS:
        raise ValueError(f"message text longer than {MAX_TEXT_CHARS} characters")
    if provider_id:
        existing = Message.objects.filter(channel=channel, provider_id=provider_id)
        found = existing.first()
        if found is not None:
            return RecordedMessage(found, False)
    try:
        with transaction.atomic():
            message = Message.objects.create(
                interaction=interaction,
                channel=channel,
                direction=direction,
                text=text,
                html=html,
                provider_id=provider_id or None,
                attachments=attachments or [],
                author=author,
            )
            if interaction.assigned_agent_id:
                publish(
                    *event_catalogue.message_created(
                        interaction_id=interaction.pk, message_id=message.pk, direction=direction
                    ),
                    groups=[agent_group(interaction.assigned_agent_id)],
                )
    except IntegrityError:
        if not provider_id:
            raise
        found = Message.objects.filter(channel=interaction.channel, provider_id=provider_id).first()
        if found is None:  # pragma: no cover - the unique constraint fired, so it exists
            raise
        return RecordedMessage(found, False)
    return RecordedMessage(message, True)
