"""The write side of routing: claim matches, answer offers, expire them, overflow.

Locking rules (docs/architecture.md, "Locking"):

- Offer -> Interaction -> AgentPresence is the order in which paths that *wait* for locks
  take them (accepting, declining, expiring an offer); within one table, primary-key order.
- The router's claim takes AgentPresence rows, then Interaction rows, but only with
  ``FOR UPDATE SKIP LOCKED``: it never waits, so it cannot deadlock with the paths above,
  and several router workers partition the work between them instead of queueing.
- An agent's load is never stored: it is the count of interactions offered to or handled by
  the agent, counted while the agent's presence row is locked. Every claim of an agent's
  capacity holds that lock, so two claims cannot both see the last free slot.
- On SQLite (embedded default) ``SELECT ... FOR UPDATE`` does not exist, but transactions
  start with ``BEGIN IMMEDIATE``, so claims run one at a time.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.dispatch import Signal
from django.utils import timezone

from agents.models import AgentPresence, AgentProfile, AgentState
from agents.presence import do_mark_connection_lost, do_pause_missed, do_touch_idle
from configuration.models import Queue
from interactions.actions import do_record_message, do_transition_interaction
from interactions.lifecycle import Status
from interactions.models import Interaction, InteractionTransition, MessageDirection
from kernel import event_catalogue
from kernel.events import SUPERVISORS_GROUP, agent_group, publish, publish_many
from kernel.instruments import timed_routing_pass
from kernel.triggers import CoalescedTrigger, coalescing
from kernel.triggers import redis_client as _redis

from . import claim_sql, selectors
from .errors import OfferNotFound, OfferNotPending, OfferNotYours, TransferError
from .matching import Match, plan_batch
from .models import Offer, OfferStatus, RoutingDecision
from .policy import OVERFLOW, Decision, Reason, availability_reason, capacity_reason

logger = logging.getLogger(__name__)

# Sent inside a claim's transaction with ``rows`` [(interaction id, agent id, channel,
# auto-accepted)] and ``now``. Claims write their status changes in bulk, without
# ``interaction_status_changed``; supervision counts auto-accepted answers from this signal.
claims_written = Signal()
# A waiting interaction moved to another queue without a status change (an overflow): sent with
# interaction_id, from_queue_id, to_queue_id and now, inside the transaction of the move (the
# wallboard's counters move what the interaction counted so far to its new queue).
interaction_requeued = Signal()


@dataclass
class PassResult:
    offered: int = 0
    assigned: int = 0
    overflowed: int = 0
    skipped: int = 0  # matches lost to a concurrent worker (retried by the next pass)
    waiting: int = 0
    agents: int = 0

    @property
    def claimed(self) -> int:
        return self.offered + self.assigned


def offer_timeout(channel: str) -> timedelta:
    return timedelta(seconds=settings.ROUTING_OFFER_TIMEOUTS.get(channel, 60))


# --------------------------------------------------------------------------- the router pass


@timed_routing_pass
def do_route_pending(*, now: datetime | None = None, explain: bool = True) -> PassResult:
    """One routing pass: match every waiting interaction it can, then claim the matches.

    Safe to run in several processes at once (see the locking rules above). Its duration and
    claims are counted (``kernel.instruments``: two memory writes, no query).
    """
    now = now or timezone.now()
    if not Interaction.objects.filter(status=Status.QUEUED).exists():
        # One index probe: passes asked for by agents freed, closes and answers (most of them
        # under load) find nothing waiting, and need not read every available agent.
        return PassResult()
    agents = selectors.available_agents(now)
    result = PassResult(agents=len(agents))
    free_slots = sum(
        max(0, agent.capacity.get(channel, 0) - agent.load.get(channel, 0))
        for agent in agents
        for channel in agent.available_channels
    )
    if free_slots == 0:
        return result  # nobody can take anything: no need to read the backlog
    waiting = selectors.waiting_interactions(now, per_group=free_slots)
    result.waiting = len(waiting)
    if not waiting:
        return result
    plan = plan_batch(
        waiting,
        agents,
        now.timestamp(),
        selectors.policy_config(),
        selectors.escalation_steps(),
        explain=explain,
    )
    for decision in plan.overflows:
        if do_overflow(decision=decision, now=now):
            result.overflowed += 1
    chunk = max(1, settings.ROUTING_CLAIM_CHUNK)
    matches = list(plan.matches)
    for start in range(0, len(matches), chunk):
        claimed = do_claim_matches(matches=matches[start : start + chunk], now=now)
        result.offered += claimed.offered
        result.assigned += claimed.assigned
        result.skipped += claimed.skipped
    return result


@transaction.atomic
def do_claim_matches(*, matches: Sequence[Match], now: datetime) -> PassResult:
    """Turn matches into offers (or assignments, on auto-accept channels), atomically.

    A match is dropped (``skipped``) when another worker holds its agent or interaction,
    when the interaction is no longer waiting, or when the agent may no longer take it: the
    policy's presence and capacity rule (``policy.availability_reason``) on the agent's
    snapshot read under its lock (``selectors.locked_agent_snapshot``).
    """
    result = PassResult()
    if not matches:
        return result
    agent_ids = sorted({m.agent_id for m in matches})
    rows = list(
        AgentPresence.objects.select_for_update(skip_locked=True, of=("self",))
        .filter(
            agent_id__in=agent_ids,
            state=AgentState.AVAILABLE,
            last_heartbeat_at__gte=selectors.heartbeat_cutoff(now),
        )
        .order_by("agent_id")
        .values(*selectors.LOCKED_AGENT_FIELDS)
    )
    loads = selectors.agent_loads([row["agent_id"] for row in rows])
    cutoff = selectors.heartbeat_cutoff(now)
    # Each snapshot reads its agent's load dict, which this claim counts up as it accepts.
    agents = {
        row["agent_id"]: selectors.locked_agent_snapshot(
            row, loads.setdefault(row["agent_id"], {}), cutoff
        )
        for row in rows
    }
    interaction_ids = sorted({m.interaction_id for m in matches})
    locked_interactions = set(
        Interaction.objects.select_for_update(skip_locked=True)
        .filter(pk__in=interaction_ids, status=Status.QUEUED)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    accepted: list[Match] = []
    for match in matches:
        agent = agents.get(match.agent_id)
        if (
            agent is None
            or match.interaction_id not in locked_interactions
            or availability_reason(agent, match.channel) is not None
        ):
            result.skipped += 1
            continue
        load = loads[match.agent_id]
        load[match.channel] = load.get(match.channel, 0) + 1
        locked_interactions.discard(match.interaction_id)  # never twice in one batch
        accepted.append(match)
    if accepted:
        _write_claims(accepted, now, result)
    return result


def has_room_for(target: AgentProfile, load: Mapping[str, int], channel: str) -> bool:
    """Whether ``target``, holding ``load`` (channel -> count), has a free ``channel`` slot
    (``policy.capacity_reason``): the console lists only colleagues for whom it holds; the
    transfer checks it again under the target's lock (:func:`_check_target`)."""
    return capacity_reason(selectors.profile_snapshot(target, load), channel) is None


def _write_claims(accepted: list[Match], now: datetime, result: PassResult) -> None:
    auto = set(settings.ROUTING_AUTO_ACCEPT_CHANNELS)
    offer_rows = []
    transitions: list[tuple[int, str, str, str, datetime]] = []
    updates: list[tuple[int, int, str, datetime, datetime | None]] = []
    for m in accepted:
        auto_accepted = m.channel in auto
        offer_rows.append(
            (
                m.interaction_id,
                m.agent_id,
                m.channel,
                OfferStatus.ACCEPTED if auto_accepted else OfferStatus.PENDING,
                now,
                now + offer_timeout(m.channel),
                now if auto_accepted else None,
            )
        )
        transitions.append((m.interaction_id, Status.QUEUED, Status.OFFERED, "offered", now))
        if auto_accepted:
            transitions.append(
                (m.interaction_id, Status.OFFERED, Status.ASSIGNED, "auto_accepted", now)
            )
        updates.append(
            (
                m.interaction_id,
                m.agent_id,
                Status.ASSIGNED if auto_accepted else Status.OFFERED,
                now,
                now if auto_accepted else None,
            )
        )
    # The interactions are locked by this transaction and were read as "queued" under that
    # lock, so no status guard is needed in the update.
    if connection.vendor == "postgresql":
        offer_ids = claim_sql.insert_offers(offer_rows)
        claim_sql.update_claimed(updates)
        claim_sql.insert_transitions(transitions)
        claim_sql.insert_decisions(
            [
                (
                    m.interaction_id,
                    offer_ids[m.interaction_id],
                    m.agent_id,
                    m.decision.action,
                    m.decision.rule,
                    now,
                    m.decision.to_log_dict(),
                )
                for m in accepted
            ]
        )
    else:
        offers = Offer.objects.bulk_create(
            Offer(
                interaction_id=i,
                agent_id=a,
                channel=c,
                status=st,
                created_at=ca,
                expires_at=ea,
                responded_at=ra,
            )
            for i, a, c, st, ca, ea, ra in offer_rows
        )
        offer_ids = {o.interaction_id: o.pk for o in offers}
        Interaction.objects.bulk_update(
            [
                Interaction(pk=i, assigned_agent_id=a, status=st, offered_at=o, assigned_at=asg)
                for i, a, st, o, asg in updates
            ],
            ["status", "assigned_agent_id", "offered_at", "assigned_at"],
        )
        InteractionTransition.objects.bulk_create(
            InteractionTransition(interaction_id=i, from_status=f, to_status=t, reason=r, at=at)
            for i, f, t, r, at in transitions
        )
        RoutingDecision.objects.bulk_create(
            RoutingDecision(
                interaction_id=m.interaction_id,
                offer_id=offer_ids[m.interaction_id],
                agent_id=m.agent_id,
                action=m.decision.action,
                rule=m.decision.rule,
                at=now,
                details=m.decision.to_log_dict(),
            )
            for m in accepted
        )
    do_touch_idle(agent_ids={m.agent_id for m in accepted}, now=now)
    claims_written.send(
        sender=Offer,
        rows=[(m.interaction_id, m.agent_id, m.channel, m.channel in auto) for m in accepted],
        now=now,
    )
    assigned = sum(1 for m in accepted if m.channel in auto)
    result.assigned += assigned
    result.offered += len(accepted) - assigned
    publish_many(
        [
            (
                *event_catalogue.offer_made(
                    offer_id=offer_ids[m.interaction_id],
                    interaction_id=m.interaction_id,
                    channel=m.channel,
                    expires_at=(now + offer_timeout(m.channel)).isoformat(),
                    assigned=m.channel in auto,
                ),
                [agent_group(m.agent_id)],
            )
            for m in accepted
        ]
        + [
            (
                *event_catalogue.routing_claimed(offered=result.offered, assigned=result.assigned),
                [SUPERVISORS_GROUP],
            )
        ]
    )
    # After the events: the frames go out first once the claim commits, then the timers.
    due: dict[datetime, list[int]] = {}
    for m in accepted:
        if m.channel not in auto:
            due.setdefault(now + offer_timeout(m.channel), []).append(offer_ids[m.interaction_id])
    for expires_at, ids in due.items():
        schedule_offer_expiry(ids, expires_at)


def do_overflow(*, decision: Decision, now: datetime) -> bool:
    """Move an interaction nobody can take to the overflow queue its escalation names."""
    target_id = decision.overflow_queue_id
    if decision.action != OVERFLOW or target_id is None:
        return False
    target = Queue.objects.filter(pk=target_id, active=True).first()
    if target is None:
        logger.warning("overflow queue %s is missing or inactive", target_id)
        return False
    with transaction.atomic():
        waiting = Interaction.objects.select_for_update().filter(
            pk=decision.interaction_id, status=Status.QUEUED
        )
        row = waiting.values("queue_id").first()
        if row is None:
            return False
        waiting.update(
            queue=target,
            queue_entered_at=now,
            routing_step=0,
            required_skills=target.required_skills(),
        )
        RoutingDecision.objects.create(
            interaction_id=decision.interaction_id,
            action=OVERFLOW,
            rule=decision.rule,
            at=now,
            details=decision.to_log_dict(),
        )
        interaction_requeued.send(
            sender=Interaction,
            interaction_id=decision.interaction_id,
            from_queue_id=row["queue_id"],
            to_queue_id=target.pk,
            now=now,
        )
    request_routing()
    return True


# --------------------------------------------------------------------------- offers


def _locked_offer(offer_id: int) -> Offer:
    offer = Offer.objects.select_for_update().filter(pk=offer_id).first()
    if offer is None:
        raise OfferNotFound(f"offer #{offer_id} does not exist")
    return offer


def do_accept_offer(*, offer_id: int, agent: AgentProfile, now: datetime | None = None) -> Offer:
    """The agent takes the interaction: offered -> assigned."""
    now = now or timezone.now()
    with transaction.atomic():
        offer = _locked_offer(offer_id)
        if offer.agent_id != agent.pk:
            raise OfferNotYours("this offer was made to another agent")
        if offer.status != OfferStatus.PENDING:
            raise OfferNotPending(f"this offer is already {offer.status}")
        if offer.expires_at <= now:
            raise OfferNotPending("this offer has expired")
        interaction = Interaction.objects.select_for_update().get(pk=offer.interaction_id)
        do_transition_interaction(
            interaction=interaction,
            to=Status.ASSIGNED,
            reason="accepted",
            actor=agent.user,
            now=now,
        )
        offer.status = OfferStatus.ACCEPTED
        offer.responded_at = now
        offer.save(update_fields=["status", "responded_at"])
        publish(
            *event_catalogue.offer_outcome(
                outcome="accepted", offer_id=offer.pk, interaction_id=interaction.pk
            ),
            groups=[agent_group(agent.pk), SUPERVISORS_GROUP],
        )
        if interaction.channel == "voice":
            transaction.on_commit(lambda: _bridge_call(interaction.pk, agent.pk))
    return offer


def _bridge_call(interaction_id: int, agent_id: int) -> None:
    """Connect the caller to the agent's phone: the voice channel does the telephony, as a task
    on the ``outbound`` queue (inline on the embedded default). When the task cannot be queued
    (broker down), it runs here rather than leave the caller on hold. Any failure puts the call
    back in the queue (:func:`do_requeue_unreachable`)."""
    from channels_inbound.voice.tasks import bridge_call  # imports this module

    if settings.CELERY_TASK_ALWAYS_EAGER:
        try:
            bridge_call.apply(args=(interaction_id, agent_id), throw=True)
        except Exception:
            logger.exception(
                "bridging call of interaction %s to agent %s failed", interaction_id, agent_id
            )
        return
    try:
        bridge_call.delay(interaction_id, agent_id)
    except Exception:
        logger.warning(
            "could not queue the bridge of interaction %s: bridging inline", interaction_id
        )
        try:
            bridge_call.apply(args=(interaction_id, agent_id), throw=True)
        except Exception:
            logger.exception(
                "bridging call of interaction %s to agent %s failed", interaction_id, agent_id
            )


def _hand_over(
    interaction: Interaction,
    *,
    to: str,
    reason: str,
    now: datetime,
    actor: Any = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """assigned -> transferred -> ``to``: the one path an agent's interaction leaves them by
    (a transfer to a queue or a colleague, an unreachable agent)."""
    for status, fields in ((Status.TRANSFERRED, None), (to, extra)):
        do_transition_interaction(
            interaction=interaction, to=status, reason=reason, actor=actor, now=now, extra=fields
        )


def do_requeue_unreachable(
    *,
    interaction_id: int,
    agent_id: int,
    cause: str = "no_number",
    pause_missed: bool = False,
    message: str = "",
    now: datetime | None = None,
) -> bool:
    """An accepted call could not be connected to the agent: it goes back to its queue, in
    front (its ``queued_at`` is kept, and the queue is served by priority then ``queued_at``),
    never to that agent again when their phone failed (the offer becomes ``failed``, which
    excludes like a decline), not for ``ROUTING_PROVIDER_ERROR_EXCLUSION_SECONDS`` when the
    provider did (``cause`` "provider_error": the offer becomes ``provider``, and a pass is
    scheduled for when the lapse ends).

    The agent is freed and told. ``cause`` "no_number": no telework number, they stop taking
    calls until they set one (``agent.no_phone_number``). Otherwise (``call.bridge_failed``,
    with ``message`` for the console): their phone did not answer (``pause_missed``: paused
    "missed"), or the provider failed (they stay available). Returns whether it was requeued
    (False when the interaction already left that agent: a replayed or late report).
    """
    from agents.presence import do_set_channels

    now = now or timezone.now()
    with transaction.atomic():
        interaction = Interaction.objects.select_for_update().get(pk=interaction_id)
        if interaction.status != Status.ASSIGNED or interaction.assigned_agent_id != agent_id:
            return False
        provider_failed = cause == "provider_error"
        Offer.objects.filter(
            interaction_id=interaction_id, agent_id=agent_id, status=OfferStatus.ACCEPTED
        ).update(
            status=OfferStatus.PROVIDER_ERROR if provider_failed else OfferStatus.FAILED,
            responded_at=now,
        )
        if provider_failed:  # a pass when the lapse ends (its own timer; the sweep is the net)
            lapse = timedelta(seconds=settings.ROUTING_PROVIDER_ERROR_EXCLUSION_SECONDS)
            _schedule_at("routing.route_pending", [], now + lapse)
        _hand_over(
            interaction,
            to=Status.QUEUED,
            reason="agent_unreachable" if cause == "no_number" else f"bridge_{cause}"[:64],
            now=now,
            extra={"assigned_agent": None},
        )
        agent = AgentProfile.objects.select_related("presence").get(pk=agent_id)
        if cause == "no_number":
            channels = list(agent.presence.channels_enabled or [])
            if "voice" in channels:
                do_set_channels(agent=agent, channels=[c for c in channels if c != "voice"])
            publish(
                *event_catalogue.agent_no_phone_number(
                    agent_id=agent_id, interaction_id=interaction_id
                ),
                groups=[agent_group(agent_id), SUPERVISORS_GROUP],
            )
            return True
        if pause_missed:
            do_pause_missed(agent_id=agent_id, now=now, if_available=True)
        publish(
            *event_catalogue.call_bridge_failed(
                agent_id=agent_id,
                interaction_id=interaction_id,
                reason=cause,
                paused=bool(pause_missed),
                message=message,
            ),
            groups=[agent_group(agent_id), SUPERVISORS_GROUP],
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


# --------------------------------------------------------------------------- timers


TIMER_SLACK = timedelta(milliseconds=250)  # fire just after the deadline, never before


def _schedule_at(task_name: str, args: list[Any], at: datetime) -> None:
    """Run a timer task at ``at``, once the current transaction commits (with a broker).

    Beat's sweep stays the safety net (a lost message, a worker killed while holding it until
    the broker's visibility timeout): the task only makes the deadline exact without beat. On
    the embedded default (eager tasks) nothing is scheduled: the embedded sweep does it.
    """
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return

    def send() -> None:
        from celery import current_app as app

        try:
            # By name: a process that never imported the task's module (a web process) has
            # not registered it (app.tasks[...] raised KeyError there); routes apply by name.
            app.send_task(task_name, args=tuple(args), eta=at + TIMER_SLACK)
        except Exception:  # the broker is down: the sweep will do it
            logger.warning("could not schedule %s; the sweep will do it", task_name)

    transaction.on_commit(send)


def schedule_offer_expiry(offer_ids: Sequence[int], expires_at: datetime) -> None:
    """Expire these offers at their deadline if nobody answered them by then."""
    if offer_ids:
        _schedule_at("routing.expire_offers", [list(offer_ids)], expires_at)


def schedule_wrap_up_end(agent_id: int, until: datetime) -> None:
    """End the agent's after-call work at its timer (if it is still running then)."""
    _schedule_at("routing.end_wrap_up", [agent_id], until)


def schedule_console_check(agent_id: int) -> None:
    """A console closed: check the agent at the end of the heartbeat window plus grace (their
    work goes back if no console of theirs sent a heartbeat since), not only at beat's sweep."""
    seconds = settings.ROUTING_HEARTBEAT_WINDOW_SECONDS + settings.ROUTING_CONSOLE_GRACE_SECONDS
    _schedule_at(
        "routing.release_lost_console", [agent_id], timezone.now() + timedelta(seconds=seconds)
    )


def schedule_offer_timers_again(offer_ids: Sequence[int]) -> int:
    """Offers a timer found not yet due (clocks apart): schedule them again at their deadline."""
    rescheduled = 0
    for offer_id, expires_at in Offer.objects.filter(
        pk__in=list(offer_ids), status=OfferStatus.PENDING
    ).values_list("pk", "expires_at"):
        schedule_offer_expiry([offer_id], expires_at)
        rescheduled += 1
    return rescheduled


# --------------------------------------------------------------------------- lost consoles


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
    interaction they handle goes back to its queue in front (``queued_at`` is kept), except a
    call in progress, which the telephony ends by itself. The agent becomes offline with the
    reason, published to their console (shown when it reconnects) and to supervisors.

    Never waits for a lock (``SKIP LOCKED`` on the presence, interactions and offers): what
    another transaction holds is left for the next sweep, so this cannot deadlock with the
    paths that lock offer -> interaction -> presence. Returns how many agents were released.
    The sweep looks at every agent; the timer a console's disconnection schedules
    (:func:`schedule_console_check`) at one.
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
                .exclude(status=Status.ASSIGNED, channel="voice")
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
                    _hand_over(
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


# --------------------------------------------------------------------------- transfers


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
        _hand_over(
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
        _hand_over(
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


# --------------------------------------------------------------------------- triggers


PASS_QUEUED_KEY = "routing:pass-queued"  # noqa: S105 - a Redis key, not a secret
PASS_RUNNING_KEY = "routing:pass-running"  # noqa: S105 - the running pass's token (its lock)
PASS_AGAIN_KEY = "routing:pass-again"  # noqa: S105 - asked for while a pass ran: one more
PASS_QUEUED_MS = 1000  # a queued pass's flag lives this long: a lost task costs a second
PASS_LOCK_MS = 10_000  # a pass's lock outlives a killed worker by this much at most
MAX_PASSES_PER_TASK = 20  # then the task hands over to a new one (other tasks get a turn)

# Each script is atomic on the Redis server, so no request can fall between two steps of
# another (a request arriving as a pass ends is either seen by its end or queues a new task).
# request: KEYS queued, running, again; ARGV queued ms, lock ms -> 1: queue a task now.
_REQUEST_LUA = """
if redis.call('exists', KEYS[2]) == 1 then
  redis.call('set', KEYS[3], 1, 'px', ARGV[2])
  return 0
end
if redis.call('set', KEYS[1], 1, 'nx', 'px', ARGV[1]) then return 1 end
return 0
"""
# begin: KEYS queued, running, again; ARGV token, lock ms -> 1: this task runs the pass.
_BEGIN_LUA = """
redis.call('del', KEYS[1])
if redis.call('set', KEYS[2], ARGV[1], 'nx', 'px', ARGV[2]) then
  redis.call('del', KEYS[3])
  return 1
end
redis.call('set', KEYS[3], 1, 'px', ARGV[2])
return 0
"""
# end: KEYS running, again; ARGV token, lock ms, release -> 1: run one more pass (lock kept).
_END_LUA = """
local holder = redis.call('get', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
local again = redis.call('del', KEYS[2])
if again == 1 and ARGV[3] == '0' then
  redis.call('set', KEYS[1], ARGV[1], 'px', ARGV[2])
  return 1
end
if holder then redis.call('del', KEYS[1]) end
return again
"""


def _queue_pass() -> None:
    from .tasks import route_pending

    route_pending.delay()


def _claim_pass() -> object:
    # queued now (1), or asked of the running pass, or already queued (0): one atomic script
    return _redis().eval(
        _REQUEST_LUA,
        3,
        PASS_QUEUED_KEY,
        PASS_RUNNING_KEY,
        PASS_AGAIN_KEY,
        PASS_QUEUED_MS,
        PASS_LOCK_MS,
    )


PASS_TRIGGER = CoalescedTrigger(
    key=PASS_QUEUED_KEY,
    queued_ms=PASS_QUEUED_MS,
    enqueue=_queue_pass,
    what="a routing pass",
    claim=_claim_pass,
)


def request_routing() -> None:
    """Ask for a routing pass once the current transaction commits.

    The first request queues a pass at once: no delay, no countdown. With a broker, requests
    are then coalesced without adding latency: while a pass is queued and not yet started,
    more requests add nothing (that pass reads their rows); while a pass runs, they ask for
    exactly one more pass, which the running task starts as soon as it ends (no broker hop,
    passes never overlap). The flags expire (a second for a queued pass, ten for a running
    one), so a lost task or a killed worker delays routing by that at most, and the periodic
    sweep covers everything else (kernel.triggers).
    """
    PASS_TRIGGER.request()


def do_route_passes(*, max_passes: int = MAX_PASSES_PER_TASK) -> list[PassResult]:
    """The routing task: a pass now, then one more each time passes were requested while one
    ran, in this process, until none was (or ``max_passes``: a new task then takes over).

    Only one task runs passes at a time: a task that finds a pass running asks it for one more
    and returns. A pass whose claims lost matches to a concurrent transaction (``skipped``) is
    followed by one more pass, once per task. Without a broker (eager tasks): one pass."""
    if not coalescing():
        return [do_route_pending()]
    token = uuid.uuid4().hex
    try:
        begun = _redis().eval(
            _BEGIN_LUA, 3, PASS_QUEUED_KEY, PASS_RUNNING_KEY, PASS_AGAIN_KEY, token, PASS_LOCK_MS
        )
    except Exception:  # Redis is down: route anyway (passes are safe side by side)
        logger.warning("could not take the routing pass lock; routing without it")
        return [do_route_pending()]
    if not begun:
        return []
    results: list[PassResult] = []
    retried = False
    try:
        while True:
            results.append(do_route_pending())
            if results[-1].skipped and not retried:
                retried = True
                _redis().set(PASS_AGAIN_KEY, 1, px=PASS_LOCK_MS)
            release = len(results) >= max_passes
            if not _redis().eval(
                _END_LUA, 2, PASS_RUNNING_KEY, PASS_AGAIN_KEY, token, PASS_LOCK_MS, int(release)
            ):
                return results  # nothing requested meanwhile: the lock is released
            if release:  # requested meanwhile, and this task did its share: a new task does it
                _queue_pass()
                return results
    except BaseException:
        _release_pass(token)
        raise


def _release_pass(token: str) -> None:
    """Let go of the pass lock; a pass requested meanwhile goes to a new task."""
    try:
        if _redis().eval(_END_LUA, 2, PASS_RUNNING_KEY, PASS_AGAIN_KEY, token, PASS_LOCK_MS, 1):
            _queue_pass()
    except Exception:
        logger.warning("could not release the routing pass lock; it expires by itself")
