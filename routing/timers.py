"""Offer deadlines and the timer tasks that make them exact.

A timer is a Celery task sent with an ``eta`` once the transaction commits (with a broker);
beat's sweep (``routing.sweep``) stays the safety net. The tasks (``routing/tasks.py``) re-read
their rows under lock, so a timer firing late, twice or after the sweep changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .models import Offer, OfferStatus

logger = logging.getLogger(__name__)


def offer_timeout(channel: str) -> timedelta:
    """How long an offer on ``channel`` rings before it expires (``ROUTING_OFFER_TIMEOUTS``)."""
    return timedelta(seconds=settings.ROUTING_OFFER_TIMEOUTS.get(channel, 60))


TIMER_SLACK = timedelta(milliseconds=250)  # fire just after the deadline, never before


def schedule_at(task_name: str, args: list[Any], at: datetime) -> None:
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
        schedule_at("routing.expire_offers", [list(offer_ids)], expires_at)


def schedule_wrap_up_end(agent_id: int, until: datetime) -> None:
    """End the agent's after-call work at its timer (if it is still running then)."""
    schedule_at("routing.end_wrap_up", [agent_id], until)


def schedule_console_check(agent_id: int) -> None:
    """A console closed: check the agent at the end of the heartbeat window plus grace (their
    work goes back if no console of theirs sent a heartbeat since), not only at beat's sweep."""
    seconds = settings.ROUTING_HEARTBEAT_WINDOW_SECONDS + settings.ROUTING_CONSOLE_GRACE_SECONDS
    schedule_at(
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
