"""SMS tasks: each calls an action; all are idempotent (``acks_late`` safe)."""

from __future__ import annotations

from celery import shared_task

from . import actions


@shared_task(name="channels_sms.ingest_pending")
def ingest_pending_sms() -> int:
    """Ingest every received SMS waiting in the database (woken by the webhook)."""
    actions.ingest_started()
    return actions.do_ingest_pending_sms()


@shared_task(name="channels_sms.send_outbound")
def send_outbound_sms(outbound_id: int) -> None:
    actions.do_deliver_outbound_sms(outbound_id=outbound_id)


@shared_task(name="channels_sms.sweep_inbound")
def sweep_inbound_sms() -> int:
    """Safety net: ingest received SMS whose wake-up was lost (broker down at commit time)."""
    return actions.do_ingest_pending_sms()
