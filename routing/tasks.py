"""Celery tasks: thin interfaces that call the routing actions (idempotent, acks_late-safe).

- ``routing.route_pending``: a routing pass, at once; triggered after commit by events
  (interaction queued, agent available, offer declined or expired, agent freed). Requests made
  while a pass runs are coalesced into exactly one more pass, run by the same task as soon as
  the first ends (``routing.triggers.request_routing``, docs/routing.md "Triggers").
- ``routing.expire_offers``: scheduled (``eta``) at the deadline of the offers a claim, a
  transfer or a reassignment made; expires those still unanswered (docs/routing.md, timers).
- ``routing.end_wrap_up``: scheduled at the end of an agent's after-call work.
- ``routing.release_lost_console``: scheduled when a console disconnects, at the end of the
  heartbeat window plus grace: releases the agent's work if no console of theirs came back.
- ``routing.sweep``: the periodic safety net (Celery beat, or the embedded scheduler):
  expires offers, ends wrap-up timers, releases the work of agents whose console vanished,
  and routes whatever an event missed. Because the database is the source of truth, a lost
  message or a dead worker delays routing by at most one sweep.

The timer tasks re-read their rows under lock and do nothing when the offer was answered or
the wrap-up ended meanwhile, so a duplicate delivery (a message redelivered after the broker's
visibility timeout, or the sweep getting there first) changes nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

from agents.presence import do_end_wrap_ups

from .claims import do_route_passes, do_route_pending
from .offers import do_expire_offers, do_release_lost_consoles
from .timers import schedule_offer_timers_again, schedule_wrap_up_end

logger = logging.getLogger(__name__)

MAX_PASSES_PER_SWEEP = 5


@shared_task(name="routing.route_pending", ignore_result=True)
def route_pending() -> dict[str, Any]:
    results = do_route_passes()
    return {
        "passes": len(results),
        "offered": sum(r.offered for r in results),
        "assigned": sum(r.assigned for r in results),
        "skipped": sum(r.skipped for r in results),
    }


@shared_task(name="routing.expire_offers", ignore_result=True)
def expire_offers(offer_ids: list[int]) -> dict[str, Any]:
    expired = do_expire_offers(offer_ids=offer_ids)
    # Still pending and not yet due (this worker's clock is behind the scheduler's): again.
    rescheduled = 0 if expired == len(offer_ids) else schedule_offer_timers_again(offer_ids)
    return {"expired": expired, "rescheduled": rescheduled}


@shared_task(name="routing.end_wrap_up", ignore_result=True)
def end_wrap_up(agent_id: int) -> dict[str, Any]:
    from agents.models import AgentPresence, AgentState

    ended = do_end_wrap_ups(agent_ids=[agent_id])
    if not ended:
        until = (
            AgentPresence.objects.filter(agent_id=agent_id, state=AgentState.WRAP_UP)
            .values_list("wrap_up_until", flat=True)
            .first()
        )
        if until is not None:  # not yet due (clocks apart): again at its end
            schedule_wrap_up_end(agent_id, until)
    return {"ended": ended}


@shared_task(name="routing.release_lost_console", ignore_result=True)
def release_lost_console(agent_id: int) -> dict[str, Any]:
    return {"released": do_release_lost_consoles(agent_ids=[agent_id])}


@shared_task(name="routing.sweep", ignore_result=True)
def sweep() -> dict[str, Any]:
    expired = do_expire_offers()
    wrap_ups = do_end_wrap_ups()
    released = do_release_lost_consoles()
    claimed = 0
    for _ in range(MAX_PASSES_PER_SWEEP):
        result = do_route_pending()
        claimed += result.claimed
        if result.claimed == 0 and result.skipped == 0:
            break
    if expired or claimed or released:
        logger.info(
            "sweep: %s offers expired, %s agents' consoles lost, %s claimed",
            expired,
            released,
            claimed,
        )
    return {
        "expired": expired,
        "wrap_ups_ended": wrap_ups,
        "consoles_lost": released,
        "claimed": claimed,
    }
