"""Offers: an agent accepts or declines one, an unanswered one expires, a logout or a lost
console withdraws them; and the one path an agent's interaction leaves them by.

Locking (docs/architecture.md, "Locking", rule 1): these paths wait for their locks, in the
order Offer -> Interaction -> AgentPresence. The release of a lost console never waits
(``SKIP LOCKED``). An accepted offer is announced to the channels with
``routing.signals.offer_accepted`` (the voice channel bridges the call); the router itself
does no telephony.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from agents.models import AgentPresence, AgentProfile, AgentState
from agents.presence import do_mark_connection_lost, do_pause_missed
from interactions.actions import PreparedRows, do_transition_interaction
from interactions.lifecycle import Status
from interactions.models import Interaction
from kernel import event_catalogue
from kernel.events import SUPERVISORS_GROUP, Event, agent_group, publish, publish_many

from .errors import OfferNotFound, OfferNotPending, OfferNotYours
from .models import Offer, OfferStatus
from .signals import offer_accepted
from .timers import schedule_at
from .triggers import request_routing

# The answers' locks (an agent's accept or decline is the hot path): compiled once. An accept
# locks the offer and its interaction in one statement (PostgreSQL locks a joined row's tables
# in the order of its FROM clause: the offer, then the interaction; rule 1).
_OFFER_LOCKED = PreparedRows(lambda pk: Offer.objects.select_for_update().filter(pk=pk)[:1], "pk")
_OFFER_AND_INTERACTION_LOCKED = PreparedRows(
    lambda pk: Offer.objects.select_for_update().select_related("interaction").filter(pk=pk)[:1],
    "pk",
)


def _locked_offer(offer_id: int) -> Offer:
    offer = _OFFER_LOCKED.first(pk=offer_id)
    if offer is None:
        raise OfferNotFound(f"offer #{offer_id} does not exist")
    return offer


_ANSWER_SQL: list[str] = []


def _answer_write(offer_id: int, status: str, now: datetime) -> tuple[str, list[Any]]:
    """``offer.save(update_fields=["status", "responded_at"])`` on the locked row, as a
    statement written once (the model's save rebuilds its update at every call)."""
    if not _ANSWER_SQL:
        qn = connection.ops.quote_name
        meta = Offer._meta
        _ANSWER_SQL.append(
            f"UPDATE {qn(meta.db_table)} SET {qn('status')} = %s, "  # noqa: S608 - metadata
            f"{qn('responded_at')} = %s WHERE {qn(meta.pk.column)} = %s"
        )
    return _ANSWER_SQL[0], [status, connection.ops.adapt_datetimefield_value(now), offer_id]


def do_accept_offer(*, offer_id: int, agent: AgentProfile, now: datetime | None = None) -> Offer:
    """The agent takes the interaction: offered -> assigned.

    Sends ``offer_accepted`` in the transaction: the voice channel connects the caller to the
    agent's phone once it commits."""
    now = now or timezone.now()
    with transaction.atomic():
        offer = _OFFER_AND_INTERACTION_LOCKED.first(pk=offer_id)
        if offer is None:
            raise OfferNotFound(f"offer #{offer_id} does not exist")
        if offer.agent_id != agent.pk:
            raise OfferNotYours("this offer was made to another agent")
        if offer.status != OfferStatus.PENDING:
            raise OfferNotPending(f"this offer is already {offer.status}")
        if offer.expires_at <= now:
            raise OfferNotPending("this offer has expired")
        interaction = offer.interaction
        # Any failure leaves this block (no savepoint needed); the offer's answer is written
        # with the status change (one statement on PostgreSQL); the status change's event and
        # the offer's go out together (the offer's row is not part of what consoles show of
        # the interaction, so both carry the same summary of it).
        events: list[Event] = []
        do_transition_interaction(
            interaction=interaction,
            to=Status.ASSIGNED,
            reason="accepted",
            actor=agent.user,
            now=now,
            savepoint=False,
            events=events,
            with_write=_answer_write(offer.pk, OfferStatus.ACCEPTED, now),
        )
        offer.status = OfferStatus.ACCEPTED
        offer.responded_at = now
        name, payload = event_catalogue.offer_outcome(
            outcome="accepted", offer_id=offer.pk, interaction_id=interaction.pk
        )
        events.append((name, payload, [agent_group(agent.pk), SUPERVISORS_GROUP]))
        publish_many(events)
        offer_accepted.send(
            sender=Offer, offer=offer, interaction=interaction, agent_id=agent.pk, now=now
        )
    return offer


def hand_over(
    interaction: Interaction,
    *,
    to: str,
    reason: str,
    now: datetime,
    actor: Any = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """assigned -> transferred -> ``to``: the one path an agent's interaction leaves them by
    (a transfer to a queue or a colleague, an agent the channel could not reach, a lost
    console)."""
    for status, fields in ((Status.TRANSFERRED, None), (to, extra)):
        do_transition_interaction(
            interaction=interaction, to=status, reason=reason, actor=actor, now=now, extra=fields
        )


def do_requeue_accepted(
    *, interaction_id: int, agent_id: int, offer_status: str, reason: str, now: datetime
) -> bool:
    """An interaction the agent accepted could not reach them (the channel failed them after
    the answer: a call not put through to their phone): it goes back to its queue, in front
    (its ``queued_at`` is kept, and the queue is served by priority then ``queued_at``), with
    ``reason`` on its transitions.

    The accepted offer becomes ``offer_status``, which says when the router may offer it to
    that agent again (``selectors.excluding_offers``): ``failed`` never (like a decline),
    ``provider`` once ``ROUTING_PROVIDER_ERROR_EXCLUSION_SECONDS`` have passed (a pass is
    scheduled for when that lapse ends). Locks the interaction: the caller may lock the agent's
    presence after it, in the same transaction (rule 1). Returns whether it was requeued (False
    when the interaction already left that agent: a replayed or late report).
    """
    with transaction.atomic():
        interaction = Interaction.objects.select_for_update().get(pk=interaction_id)
        if interaction.status != Status.ASSIGNED or interaction.assigned_agent_id != agent_id:
            return False
        Offer.objects.filter(
            interaction_id=interaction_id, agent_id=agent_id, status=OfferStatus.ACCEPTED
        ).update(status=offer_status, responded_at=now)
        if offer_status == OfferStatus.PROVIDER_ERROR:
            # a pass when the lapse ends (its own timer; the sweep is the net)
            lapse = timedelta(seconds=settings.ROUTING_PROVIDER_ERROR_EXCLUSION_SECONDS)
            schedule_at("routing.route_pending", [], now + lapse)
        hand_over(
            interaction, to=Status.QUEUED, reason=reason, now=now, extra={"assigned_agent": None}
        )
    return True


def do_decline_offer(*, offer_id: int, agent: AgentProfile, now: datetime | None = None) -> Offer:
    """The agent declines: the interaction waits again, never to be offered to them."""
    now = now or timezone.now()
    with transaction.atomic():
        offer = _locked_offer(offer_id)
        if offer.agent_id != agent.pk:
            raise OfferNotYours("this offer was made to another agent")
        if offer.status != OfferStatus.PENDING:
            raise OfferNotPending(f"this offer is already {offer.status}")
        _requeue(offer, OfferStatus.DECLINED, now, actor_user=agent.user)
    return offer


def _requeue(offer: Offer, status: str, now: datetime, actor_user: object = None) -> None:
    offer.status = status
    offer.responded_at = now
    offer.save(update_fields=["status", "responded_at"])
    interaction = Interaction.objects.select_for_update().get(pk=offer.interaction_id)
    if interaction.status == Status.OFFERED and interaction.assigned_agent_id == offer.agent_id:
        do_transition_interaction(
            interaction=interaction,
            to=Status.QUEUED,
            reason=f"offer_{status}",
            actor=actor_user,  # type: ignore[arg-type]
            now=now,
            extra={"assigned_agent": None},
        )
    publish(
        *event_catalogue.offer_outcome(
            outcome=status, offer_id=offer.pk, interaction_id=offer.interaction_id
        ),
        groups=[agent_group(offer.agent_id), SUPERVISORS_GROUP],
    )
    request_routing()


def do_expire_offers(*, now: datetime | None = None, offer_ids: Sequence[int] | None = None) -> int:
    """Expire the offers nobody answered in time; pause the agents who missed them.

    The sweep expires every offer past its deadline; the timer task of some offers
    (:func:`schedule_offer_expiry`) passes their ``offer_ids``. Idempotent: each offer is
    re-read under its lock, and one answered (or expired) meanwhile is left alone.
    """
    now = now or timezone.now()
    expired = 0
    rows = Offer.objects.filter(status=OfferStatus.PENDING, expires_at__lte=now)
    if offer_ids is not None:
        rows = rows.filter(pk__in=list(offer_ids))
    due = list(rows.order_by("pk").values_list("pk", flat=True)[:1000])
    for offer_id in due:
        with transaction.atomic():
            offer = Offer.objects.select_for_update(skip_locked=True).filter(pk=offer_id).first()
            if offer is None or offer.status != OfferStatus.PENDING or offer.expires_at > now:
                continue  # answered meanwhile, or being answered right now
            _requeue(offer, OfferStatus.EXPIRED, now)
            if settings.ROUTING_PAUSE_ON_MISSED:
                do_pause_missed(agent_id=offer.agent_id, now=now)
            expired += 1
    return expired


def do_cancel_agent_offers(*, agent_id: int, now: datetime | None = None) -> int:
    """Withdraw the agent's pending offers (the agent was logged out): each interaction waits
    again, and may be offered to that agent later (a cancellation is not a decline)."""
    now = now or timezone.now()
    cancelled = 0
    for offer_id in (
        Offer.objects.filter(agent_id=agent_id, status=OfferStatus.PENDING)
        .order_by("pk")
        .values_list("pk", flat=True)
    ):
        with transaction.atomic():
            offer = _locked_offer(offer_id)
            if offer.status != OfferStatus.PENDING:
                continue
            _requeue(offer, OfferStatus.CANCELLED, now)
            cancelled += 1
    return cancelled


# --------------------------------------------------------------------------- lost consoles


# Channels whose interaction in progress goes on without the agent's console, and ends by itself
# (a call: the telephony ends it): a lost console does not put it back in the queue. Each
# channel adds itself when Django starts (channels_inbound.voice.receivers.connect).
WORK_OUTLIVES_CONSOLE: set[str] = set()


def console_lost_cutoff(now: datetime) -> datetime:
    """A console silent since before this moment is gone: the heartbeat window plus grace."""
    return now - timedelta(
        seconds=settings.ROUTING_HEARTBEAT_WINDOW_SECONDS + settings.ROUTING_CONSOLE_GRACE_SECONDS
    )


def do_release_lost_consoles(
    *, now: datetime | None = None, agent_ids: Sequence[int] | None = None
) -> int:
    """Agents whose console vanished give their work back and go offline ("connection lost").

    After ``ROUTING_HEARTBEAT_WINDOW_SECONDS`` without a heartbeat an agent gets no new offers;
    after ``ROUTING_CONSOLE_GRACE_SECONDS`` more (a short network cut keeps the work), every
    pending offer is cancelled (not a decline: the agent may get it again later) and every
    interaction they handle goes back to its queue in front (``queued_at`` is kept), except
    one in progress on a channel of :data:`WORK_OUTLIVES_CONSOLE` (a call, which the telephony
    ends by itself). The agent becomes offline with the
    reason, published to their console (shown when it reconnects) and to supervisors.

    Never waits for a lock (``SKIP LOCKED`` on the presence, interactions and offers): what
    another transaction holds is left for the next sweep, so this cannot deadlock with the
    paths that lock offer -> interaction -> presence. Returns how many agents were released.
    The sweep looks at every agent; the timer a console's disconnection schedules
    (:func:`routing.timers.schedule_console_check`) at one.
    """
    now = now or timezone.now()
    cutoff = console_lost_cutoff(now)
    stale = Q(last_heartbeat_at__lt=cutoff) | Q(last_heartbeat_at__isnull=True)
    holding = Interaction.objects.filter(
        status__in=(Status.OFFERED, Status.ASSIGNED), assigned_agent__isnull=False
    ).values("assigned_agent_id")
    presences = AgentPresence.objects.filter(stale)
    if agent_ids is not None:
        presences = presences.filter(agent_id__in=list(agent_ids))
    candidates = list(
        presences.filter(~Q(state=AgentState.OFFLINE) | Q(agent_id__in=holding))
        .order_by("agent_id")
        .values_list("agent_id", flat=True)[:1000]
    )
    released = 0
    for agent_id in candidates:
        with transaction.atomic():
            presence = (
                AgentPresence.objects.select_for_update(skip_locked=True)
                .filter(stale, agent_id=agent_id)
                .first()
            )
            if presence is None:
                continue  # its console came back, or someone is changing it right now
            work = list(
                Interaction.objects.select_for_update(skip_locked=True)
                .filter(assigned_agent_id=agent_id, status__in=(Status.OFFERED, Status.ASSIGNED))
                .exclude(status=Status.ASSIGNED, channel__in=sorted(WORK_OUTLIVES_CONSOLE))
                .order_by("pk")
            )
            pending = {
                o.interaction_id: o
                for o in Offer.objects.select_for_update(skip_locked=True).filter(
                    agent_id=agent_id,
                    status=OfferStatus.PENDING,
                    interaction_id__in=[i.pk for i in work],
                )
            }
            for interaction in work:
                if interaction.status == Status.OFFERED:
                    offer = pending.get(interaction.pk)
                    if offer is None:
                        continue  # being answered right now: the next sweep sees it
                    offer.status = OfferStatus.CANCELLED
                    offer.responded_at = now
                    offer.save(update_fields=["status", "responded_at"])
                    do_transition_interaction(
                        interaction=interaction,
                        to=Status.QUEUED,
                        reason="agent_connection_lost",
                        now=now,
                        extra={"assigned_agent": None},
                    )
                    publish(
                        *event_catalogue.offer_outcome(
                            outcome="cancelled", offer_id=offer.pk, interaction_id=interaction.pk
                        ),
                        groups=[agent_group(agent_id), SUPERVISORS_GROUP],
                    )
                else:
                    hand_over(
                        interaction,
                        to=Status.QUEUED,
                        reason="agent_connection_lost",
                        now=now,
                        extra={"assigned_agent": None},
                    )
                    publish(
                        *event_catalogue.interaction_requeued(
                            interaction_id=interaction.pk, reason="connection_lost"
                        ),
                        groups=[agent_group(agent_id), SUPERVISORS_GROUP],
                    )
            if do_mark_connection_lost(presence=presence, now=now):
                released += 1
            if work:
                request_routing()
    return released
