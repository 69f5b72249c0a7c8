"""Celery tasks of the console (thin: they call the action)."""

from __future__ import annotations

from celery import shared_task

from .outbox import do_prune_agent_events


@shared_task(name="console.prune_events", ignore_result=True)
def prune_events() -> int:
    return do_prune_agent_events()
