"""Celery tasks: thin interfaces that call the routing actions (idempotent, acks_late-safe).

- ``routing.route_pending``: one routing pass; triggered after commit by events (interaction
  queued, agent available, offer declined or expired, agent freed).
- ``routing.sweep``: the periodic safety net (Celery beat, or the embedded scheduler):
  expires offers, ends wrap-up timers, and routes whatever an event missed. Because the
  database is the source of truth, a lost message or a dead worker delays routing by at
  most one sweep.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

from agents.presence import do_end_wrap_ups

from .actions import do_expire_offers, do_route_pending, pass_started

logger = logging.getLogger(__name__)

MAX_PASSES_PER_SWEEP = 5


@shared_task(name="routing.route_pending", ignore_result=True)
def route_pending() -> dict[str, Any]:
    pass_started()
    result = do_route_pending()
    return {"offered": result.offered, "assigned": result.assigned, "skipped": result.skipped}


@shared_task(name="routing.sweep", ignore_result=True)
def sweep() -> dict[str, Any]:
    expired = do_expire_offers()
    wrap_ups = do_end_wrap_ups()
    claimed = 0
    for _ in range(MAX_PASSES_PER_SWEEP):
        result = do_route_pending()
        claimed += result.claimed
        if result.claimed == 0 and result.skipped == 0:
            break
    if expired or claimed:
        logger.info("sweep: %s offers expired, %s claimed", expired, claimed)
    return {"expired": expired, "wrap_ups_ended": wrap_ups, "claimed": claimed}
