"""Routing passes and their claims: match the waiting interactions with the free agents, then
turn the matches into offers (or assignments, on auto-accepted channels); overflow what nobody
can take.

Locking rules (docs/architecture.md, "Locking"):

- Offer -> Interaction -> AgentPresence is the order in which paths that *wait* for locks
  take them (accepting, declining, expiring an offer: :mod:`routing.offers`; transfers:
  :mod:`routing.transfers`); within one table, primary-key order.
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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from agents.models import AgentPresence, AgentState
from agents.presence import do_touch_idle
from configuration.models import Queue
from interactions.lifecycle import Status
from interactions.models import Interaction, InteractionTransition
from kernel import event_catalogue
from kernel.events import SUPERVISORS_GROUP, agent_group, publish_many
from kernel.instruments import timed_routing_pass
from kernel.triggers import coalescing

from . import agent_pool, claim_sql, selectors, triggers
from .matching import Match, plan_batch
from .models import Offer, OfferStatus, RoutingDecision
from .policy import OVERFLOW, Decision, availability_reason
from .signals import claims_written, interaction_requeued
from .timers import offer_timeout, schedule_offer_expiry
from .triggers import MAX_PASSES_PER_TASK, request_routing

logger = logging.getLogger(__name__)


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


# --------------------------------------------------------------------------- the router pass


@timed_routing_pass
def do_route_pending(*, now: datetime | None = None, explain: bool = True) -> PassResult:
    """One routing pass: match every waiting interaction it can, then claim the matches.

    Safe to run in several processes at once (see the locking rules above). Its duration and
    claims are counted (``kernel.instruments``: two memory writes, no query).
    """
    now = now or timezone.now()
    if not selectors.anything_waiting():
        # One index probe: passes asked for by agents freed, closes and answers (most of them
        # under load) find nothing waiting, and need not read every available agent.
        return PassResult()
    agents = agent_pool.pool()
    agents.refresh(now, selectors.policy_config())
    result = PassResult(agents=len(agents))
    free_slots = agents.free_slots
    if free_slots == 0:
        return result  # nobody can take anything: no need to read the backlog
    waiting = selectors.waiting_interactions(now, per_group=free_slots)
    result.waiting = len(waiting)
    if not waiting:
        return result
    with agents.planning() as index:
        plan = plan_batch(
            waiting,
            index,
            now.timestamp(),
            index.config,
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
    interaction_ids = sorted({m.interaction_id for m in matches})
    cutoff = selectors.heartbeat_cutoff(now)
    if connection.vendor == "postgresql":
        # The same locks and reads as below, in two statements built once per process.
        rows = claim_sql.lock_agents(agent_ids, AgentState.AVAILABLE, cutoff)
        locked_interactions, loads = claim_sql.lock_interactions_and_count_loads(
            interaction_ids,
            Status.QUEUED,
            [row["agent_id"] for row in rows],
            selectors.LOAD_STATUSES,
        )
    else:
        rows = list(
            AgentPresence.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(
                agent_id__in=agent_ids, state=AgentState.AVAILABLE, last_heartbeat_at__gte=cutoff
            )
            .order_by("agent_id")
            .values(*selectors.LOCKED_AGENT_FIELDS)
        )
        loads = selectors.agent_loads([row["agent_id"] for row in rows])
        locked_interactions = set(
            Interaction.objects.select_for_update(skip_locked=True)
            .filter(pk__in=interaction_ids, status=Status.QUEUED)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
    # Each snapshot reads its agent's load dict, which this claim counts up as it accepts.
    agents = {
        row["agent_id"]: selectors.locked_agent_snapshot(
            row, loads.setdefault(row["agent_id"], {}), cutoff
        )
        for row in rows
    }
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


def do_route_passes(*, max_passes: int = MAX_PASSES_PER_TASK) -> list[PassResult]:
    """The routing task: a pass now, then one more each time passes were requested while one
    ran, in this process, until none was (or ``max_passes``: a new task then takes over).

    Only one task runs passes at a time (the lock of :mod:`routing.triggers`): a task that
    finds a pass running asks it for one more and returns. A pass whose claims lost matches to
    a concurrent transaction (``skipped``) is followed by one more pass, once per task. Without
    a broker (eager tasks): one pass."""
    if not coalescing():
        return [do_route_pending()]
    token = uuid.uuid4().hex
    try:
        begun = triggers.begin_pass(token)
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
                triggers.ask_again()
            release = len(results) >= max_passes
            if not triggers.end_pass(token, release=release):
                return results  # nothing requested meanwhile: the lock is released
            if release:  # requested meanwhile, and this task did its share: a new task does it
                triggers.queue_pass()
                return results
    except BaseException:
        triggers.release_pass(token)
        raise
