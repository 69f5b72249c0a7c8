"""SMS tasks: each loads by id and calls the action; all are idempotent (``acks_late`` safe)."""

from __future__ import annotations

from celery import shared_task

from . import actions


@shared_task(name="channels_sms.ingest_inbound")
def ingest_inbound_sms(inbound_id: int) -> None:
    actions.do_ingest_inbound_sms(inbound_id=inbound_id)


@shared_task(name="channels_sms.send_outbound")
def send_outbound_sms(outbound_id: int) -> None:
    actions.do_deliver_outbound_sms(outbound_id=outbound_id)


@shared_task(name="channels_sms.sweep_inbound")
def sweep_inbound_sms() -> int:
    """Process received SMS whose task was lost (e.g. the broker was down at commit time)."""
    ids = actions.pending_inbound_ids()
    for inbound_id in ids:
        actions.do_ingest_inbound_sms(inbound_id=inbound_id)
    return len(ids)
