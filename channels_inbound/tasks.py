"""Provider media tasks (:mod:`channels_inbound.media`): the fetch is routed to the ``outbound``
queue (contactcentre/celery.py), since it calls the provider: a slow provider never holds
ingestion and routing."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from . import media


@shared_task(
    bind=True,
    name="channels_media.fetch",
    acks_late=True,
    max_retries=None,
    ignore_result=True,
)
def fetch_provider_media(self: Any, message_id: int) -> None:
    """Fetch a message's pending provider media; on a transient failure, retry after the
    outbound back-off (``OUTBOUND_MAX_ATTEMPTS`` attempts, counted on each medium).

    Run eagerly (embedded default, no broker to schedule a retry on), a failed attempt is left
    pending for the periodic sweep, which runs it again once its back-off has passed: looping at
    once would give up on a recording the provider is still processing within milliseconds (and
    hold the webhook request that recorded it)."""
    try:
        media.do_fetch_message_media(message_id=message_id)
    except media.FetchRetryLater as exc:
        if not self.request.is_eager:
            raise self.retry(countdown=exc.countdown, exc=exc) from exc


@shared_task(name="channels_media.sweep", ignore_result=True)
def sweep_provider_media() -> int:
    """Safety net: queue again the messages whose media fetch was lost."""
    return media.do_sweep_media()
