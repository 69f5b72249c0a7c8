"""Webhook tasks: ``webhooks.deliver`` on the ``outbound`` queue (contactcentre/celery.py), the
periodic ``webhooks.sweep``. Both are idempotent: an attempt takes its row first (a lease),
so a copy of the task, a redelivered message or the sweep never posts the same attempt twice."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

from . import actions

logger = logging.getLogger(__name__)


@shared_task(name="webhooks.deliver", acks_late=True)
def deliver(delivery_id: int) -> None:
    """One attempt; after a failure, the next one is scheduled on the broker after its back-off
    (the row keeps the time too: the sweep sends it if this scheduled message is lost)."""
    outcome = actions.do_attempt_delivery(delivery_id)
    if outcome is None or outcome.retry_in is None or settings.CELERY_TASK_ALWAYS_EAGER:
        return
    if outcome.retry_in > settings.CELERY_LONGEST_COUNTDOWN_SECONDS:
        return  # longer than the broker may hold a message: the sweep sends it
    try:
        deliver.apply_async((delivery_id,), countdown=outcome.retry_in)
    except Exception:
        logger.warning("could not schedule webhook delivery #%s; the sweep will", delivery_id)


@shared_task(name="webhooks.sweep")
def sweep() -> int:
    """Safety net (and, on the embedded default, the sender): due deliveries nobody sends."""
    return actions.do_sweep()
