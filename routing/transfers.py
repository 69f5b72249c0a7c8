"""Transfers and reassignment: an agent hands an interaction to a queue or to a named
colleague, a supervisor gives one to an agent (or takes it).

Locking (docs/architecture.md, "Locking"): the interaction's pending offer, the interaction,
then the target's presence row, all waited for (rule 1); the target's capacity is counted under
that lock (rule 3), so a router claim cannot take the same last slot.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from agents.models import AgentPresence, AgentProfile, AgentState
from agents.presence import do_touch_idle
from configuration.models import Queue
from interactions.actions import do_record_message, do_transition_interaction
from interactions.lifecycle import Status
from interactions.models import Interaction, MessageDirection
from kernel import event_catalogue
from kernel.events import SUPERVISORS_GROUP, agent_group, publish

from . import selectors
from .errors import TransferError
from .models import Offer, OfferStatus, RoutingDecision
from .offers import hand_over
from .policy import Reason, availability_reason, capacity_reason
from .timers import offer_timeout, schedule_offer_expiry


def has_room_for(target: AgentProfile, load: Mapping[str, int], channel: str) -> bool:
    """Whether ``target``, holding ``load`` (channel -> count), has a free ``channel`` slot
    (``policy.capacity_reason``): the console lists only colleagues for whom it holds; the
    transfer checks it again under the target's lock (:func:`_check_target`)."""
    return capacity_reason(selectors.profile_snapshot(target, load), channel) is None


def _same_organisation(interaction: Interaction, other: Queue | AgentProfile) -> None:
    """Nothing crosses organisations: no transfer or reassignment to another body's queue or
    agent (the models refuse it too; this says it in the action's own terms)."""
    if other.organisation_id != interaction.organisation_id:
        raise TransferError("other_organisation", "that queue or agent is of another organisation")


def _transferable(interaction_id: int, agent: AgentProfile) -> Interaction:
    interaction = Interaction.objects.select_for_update().filter(pk=interaction_id).first()
    if (
        interaction is None
        or interaction.assigned_agent_id != agent.pk
        or interaction.status != Status.ASSIGNED
    ):
        raise TransferError("not_yours", "only the agent handling it can transfer it")
    return interaction


def _check_target(target: AgentProfile, channel: str, now: datetime, *, check: bool = True) -> None:
    """Lock ``target``'s presence row (waiting for it: rule 1) and, unless ``check`` is off (a
    supervisor's "take"), refuse when the target may not take one more ``channel`` contact
    now: the presence and capacity rule an offer of the router meets
    (``policy.availability_reason``, on the snapshot read under the lock with the load counted
    under it, rule 3). Codes: ``not_available`` (offline, console silent, paused or in
    wrap-up), ``channel_off`` (does not take this channel), ``no_room`` (at capacity, or busy
    on a call)."""
    row = (
        AgentPresence.objects.select_for_update(of=("self",))
        .filter(agent_id=target.pk)
        .values(*selectors.LOCKED_AGENT_FIELDS)
        .first()
    )
    if not check:
        return
    if row is None:
        raise TransferError("not_available", f"agent #{target.pk} is not available")
    load = selectors.agent_loads([target.pk]).get(target.pk, {})
    snapshot = selectors.locked_agent_snapshot(row, load, selectors.heartbeat_cutoff(now))
    reason = availability_reason(snapshot, channel)
    if reason in (Reason.NO_CAPACITY, Reason.EXCLUSIVE_BUSY):
        raise TransferError("no_room", f"agent #{target.pk} has no free {channel} slot")
    if reason == Reason.UNAVAILABLE and row["state"] == AgentState.AVAILABLE:
        raise TransferError("channel_off", f"agent #{target.pk} does not take {channel}")
    if reason is not None:
        raise TransferError("not_available", f"agent #{target.pk} is not available")


TRANSFER_NOTE_MAX_CHARS = 2000


def _clean_transfer_note(note: str) -> str:
    note = (note or "").strip()
    if len(note) > TRANSFER_NOTE_MAX_CHARS:
        raise TransferError("note_too_long", f"a transfer note has {TRANSFER_NOTE_MAX_CHARS} chars")
    return note


def _record_transfer_note(interaction: Interaction, agent: AgentProfile, note: str) -> int | None:
    """The transferring agent's note for whoever takes the interaction next: an internal note
    of the thread (never sent to the citizen), written while the agent still holds it."""
    if not note:
        return None
    recorded = do_record_message(
        interaction=interaction, direction=MessageDirection.NOTE, text=note, author=agent.user
    )
    return recorded.message.pk


def do_transfer_to_queue(
    *,
    interaction_id: int,
    agent: AgentProfile,
    queue: Queue,
    note: str = "",
    now: datetime | None = None,
) -> Interaction:
    """The agent hands the interaction to another queue: assigned -> transferred -> queued.

    It waits in ``queue`` with that queue's requirements, from the first escalation step
    (its wait in the new queue starts now; ``queued_at`` keeps the citizen's whole wait).
    ``note`` (optional) is kept as an internal note and shown with the next offer. The router
    does not offer it back to ``agent`` until someone else has taken it, unless nobody else
    could ever take it (``selectors.transferrer_exclusions``). Locks only the interaction (no
    offer exists while it is assigned).
    """
    now = now or timezone.now()
    note = _clean_transfer_note(note)
    if not queue.active:
        raise TransferError("inactive_queue", f"queue {queue.code} is not active")
    with transaction.atomic():
        interaction = _transferable(interaction_id, agent)
        _same_organisation(interaction, queue)
        required = queue.required_skills()
        exclude = selectors.others_could_take(
            organisation_id=interaction.organisation_id,
            channel=interaction.channel,
            language=interaction.language or None,
            required_skills=required,
            queue=queue,
            besides=[agent.pk],
        )
        note_id = _record_transfer_note(interaction, agent, note)
        hand_over(
            interaction,
            to=Status.QUEUED,
            reason="transfer_to_queue",
            actor=agent.user,
            now=now,
            extra={
                "queue": queue,
                "required_skills": required,
                "routing_step": 0,
                "assigned_agent": None,
            },
        )
        RoutingDecision.objects.create(
            interaction=interaction,
            action="transfer",
            rule="transfer_to_queue",
            at=now,
            details={
                "from_agent": agent.pk,
                "queue": queue.pk,
                "note_id": note_id,
                "exclude_transferrer": exclude,
            },
        )
    return interaction


def do_offer_to_agent(
    *,
    interaction_id: int,
    agent: AgentProfile,
    target: AgentProfile,
    note: str = "",
    now: datetime | None = None,
) -> Offer:
    """The agent hands the interaction to a named colleague: assigned -> transferred ->
    offered to ``target`` (an ordinary offer: accept, decline or expiry as usual; a decline or
    an expiry puts it back in its queue, where, as after a transfer to a queue, the router does
    not offer it back to ``agent`` unless nobody else could ever take it). ``note`` as for
    :func:`do_transfer_to_queue`.

    Locking (docs/architecture.md, rule 1): the interaction, then the target's presence row,
    both waited for; the target's capacity is counted under that lock (rule 3), so a router
    claim cannot take the same last slot.
    """
    now = now or timezone.now()
    note = _clean_transfer_note(note)
    if target.pk == agent.pk:
        raise TransferError("same_agent", "an interaction cannot be transferred to oneself")
    with transaction.atomic():
        interaction = _transferable(interaction_id, agent)
        _same_organisation(interaction, target)
        channel = interaction.channel
        _check_target(target, channel, now)
        exclude = selectors.others_could_take(
            organisation_id=interaction.organisation_id,
            channel=channel,
            language=interaction.language or None,
            required_skills=interaction.required_skills or {},
            queue=interaction.queue,
            besides=[agent.pk, target.pk],
        )
        note_id = _record_transfer_note(interaction, agent, note)
        hand_over(
            interaction,
            to=Status.OFFERED,
            reason="transfer_to_agent",
            actor=agent.user,
            now=now,
            extra={"assigned_agent": target},
        )
        offer = Offer.objects.create(
            interaction=interaction,
            agent=target,
            channel=channel,
            status=OfferStatus.PENDING,
            created_at=now,
            expires_at=now + offer_timeout(channel),
        )
        RoutingDecision.objects.create(
            interaction=interaction,
            offer=offer,
            agent=target,
            action="offer",
            rule="transfer_to_agent",
            at=now,
            details={
                "from_agent": agent.pk,
                "to_agent": target.pk,
                "note_id": note_id,
                "exclude_transferrer": exclude,
            },
        )
        schedule_offer_expiry([offer.pk], offer.expires_at)
        publish(
            *event_catalogue.offer_made(
                offer_id=offer.pk,
                interaction_id=interaction.pk,
                channel=channel,
                expires_at=offer.expires_at.isoformat(),
                transferred_by=agent.pk,
            ),
            groups=[agent_group(target.pk)],
        )
    return offer


# --------------------------------------------------------------------------- supervisors


REASSIGNABLE = (Status.QUEUED, Status.OFFERED, Status.ASSIGNED)


def do_reassign_interaction(
    *,
    interaction_id: int,
    target: AgentProfile,
    actor: Any = None,
    take: bool = False,
    now: datetime | None = None,
) -> Offer:
    """A supervisor gives an interaction to a named agent, whatever its state.

    Waiting (queued), offered to someone else (that offer is cancelled: it does not exclude
    that agent later) or being handled (assigned -> transferred): it is offered to ``target``,
    as an ordinary offer. With ``take`` it is assigned straight away (the supervisor takes it
    themselves, or makes an agent take it), presence and capacity notwithstanding; otherwise
    the target must be available on the channel with room for it.

    Locking (rule 1): the interaction's pending offer, the interaction, then the target's
    presence row, all waited for; the target's capacity is counted under that lock (rule 3).
    """
    now = now or timezone.now()
    with transaction.atomic():
        pending = (
            Offer.objects.select_for_update()
            .filter(interaction_id=interaction_id, status=OfferStatus.PENDING)
            .first()
        )
        interaction = Interaction.objects.select_for_update().filter(pk=interaction_id).first()
        if interaction is None or interaction.status not in REASSIGNABLE:
            raise TransferError("not_open", "only a waiting or open interaction can be reassigned")
        if interaction.assigned_agent_id == target.pk and interaction.status == Status.ASSIGNED:
            raise TransferError("same_agent", "this agent already handles it")
        _same_organisation(interaction, target)
        channel = interaction.channel
        _check_target(target, channel, now, check=not take)
        previous_agent = interaction.assigned_agent_id
        if pending is not None:
            pending.status = OfferStatus.CANCELLED
            pending.responded_at = now
            pending.save(update_fields=["status", "responded_at"])
            publish(
                *event_catalogue.offer_outcome(
                    outcome="cancelled", offer_id=pending.pk, interaction_id=interaction.pk
                ),
                groups=[agent_group(pending.agent_id), SUPERVISORS_GROUP],
            )
        if interaction.status == Status.OFFERED:
            do_transition_interaction(
                interaction=interaction,
                to=Status.QUEUED,
                reason="reassigned",
                actor=actor,
                now=now,
                extra={"assigned_agent": None},
            )
        elif interaction.status == Status.ASSIGNED:
            do_transition_interaction(
                interaction=interaction,
                to=Status.TRANSFERRED,
                reason="reassigned",
                actor=actor,
                now=now,
            )
        do_transition_interaction(
            interaction=interaction,
            to=Status.OFFERED,
            reason="reassigned",
            actor=actor,
            now=now,
            extra={"assigned_agent": target},
        )
        accepted = take or channel in settings.ROUTING_AUTO_ACCEPT_CHANNELS
        offer = Offer.objects.create(
            interaction=interaction,
            agent=target,
            channel=channel,
            status=OfferStatus.ACCEPTED if accepted else OfferStatus.PENDING,
            created_at=now,
            expires_at=now + offer_timeout(channel),
            responded_at=now if accepted else None,
        )
        RoutingDecision.objects.create(
            interaction=interaction,
            offer=offer,
            agent=target,
            action="offer",
            rule="taken_by_supervisor" if take else "reassigned_by_supervisor",
            at=now,
            details={
                "by_user": getattr(actor, "pk", None),
                "from_agent": previous_agent,
                "to_agent": target.pk,
            },
        )
        if accepted:
            do_transition_interaction(
                interaction=interaction,
                to=Status.ASSIGNED,
                reason="taken_by_supervisor" if take else "auto_accepted",
                actor=actor,
                now=now,
            )
        do_touch_idle(agent_ids=[target.pk], now=now)
        if not accepted:
            schedule_offer_expiry([offer.pk], offer.expires_at)
        publish(
            *event_catalogue.offer_made(
                offer_id=offer.pk,
                interaction_id=interaction.pk,
                channel=channel,
                expires_at=offer.expires_at.isoformat(),
                assigned=accepted,
            ),
            groups=[agent_group(target.pk)],
        )
    return offer
