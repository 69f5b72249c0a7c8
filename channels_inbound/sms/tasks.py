"""SMS tasks: each calls an action; all are idempotent (``acks_late`` safe)."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from . import actions, spool


@shared_task(name="channels_sms.ingest_pending")
def ingest_pending_sms() -> int:
    """Ingest every received SMS waiting in the database (woken by the webhook)."""
    actions.ingest_started()
    return actions.do_ingest_pending_sms()


@shared_task(bind=True, name="channels_sms.send_outbound", acks_late=True, max_retries=None)
def send_outbound_sms(self: Any, outbound_id: int) -> None:
    """Hand an SMS to the provider; on a transient failure, retry after a doubling back-off,
    ``OUTBOUND_MAX_ATTEMPTS`` attempts in all (counted on the row). Each attempt is one run of
    this task, scheduled with a countdown on the broker; when tasks run eagerly (embedded
    default, tests) there is no broker to schedule on, so the attempts follow one another at
    once."""
    while True:
        try:
            actions.do_deliver_outbound_sms(outbound_id=outbound_id)
            return
        except actions.SendRetryLater as exc:
            if not self.request.is_eager:
                raise self.retry(countdown=exc.countdown, exc=exc) from exc


@shared_task(name="channels_sms.sweep_inbound")
def sweep_inbound_sms() -> int:
    """Safety net: ingest received SMS whose wake-up was lost (broker down at commit time)."""
    return actions.do_ingest_pending_sms()


@shared_task(name="channels_sms.sweep_outbound")
def sweep_outbound_sms() -> int:
    """Safety net: send again pending SMS whose sending task was lost."""
    return actions.do_sweep_outbound_sms()


@shared_task(name="channels_sms.drain_spool")
def drain_webhook_spool() -> int:
    """Store the SMS webhooks spooled on this host's disk during a database outage (a worker
    sharing the web processes' spool directory; each web process also drains its own)."""
    return spool.drain_spool()
