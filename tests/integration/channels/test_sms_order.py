"""Order per citizen: SMS from one number are stored and shown in the order they were sent,
even when two workers ingest at once; none is lost or doubled."""

from __future__ import annotations

import threading

import pytest
from django.db import close_old_connections, connection

from channels_inbound.models import Endpoint
from channels_inbound.sms import actions
from channels_inbound.sms.actions import do_ingest_pending_sms
from channels_inbound.sms.models import InboundSms
from configuration.models import Queue
from interactions.models import Interaction, Message

from .conftest import FakeTwilio, payload

OUR_NUMBER = "+33900000001"
SMS_URL = "/webhooks/twilio/sms/"


def sid(n: int) -> str:
    return f"SM{n:032x}"


def _ingest_concurrently(workers: int) -> list[int]:
    barrier = threading.Barrier(workers)
    counts: list[int] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            counts.append(do_ingest_pending_sms())
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return counts


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("round_", range(3))
def test_twenty_sms_ingested_by_two_workers_keep_the_citizens_order(
    twilio: FakeTwilio, monkeypatch: pytest.MonkeyPatch, round_: int
) -> None:
    monkeypatch.setattr(actions, "request_ingest", lambda: None)  # no wake-up: workers below
    queue = Queue.objects.create(code="caf", name="CAF", sla_target_seconds=3600)
    Endpoint.objects.create(channel="sms", address=OUR_NUMBER, name="CAF SMS", queue=queue)
    # given: 20 SMS from one number (and 20 from another), accepted, not yet ingested
    numbers = ["+33612345678", "+33698765432"]
    for n in range(20):
        for k, number in enumerate(numbers):
            reply = twilio.post(
                SMS_URL,
                payload("sms_inbound", MessageSid=sid(100 * k + n), From=number, Body=f"{n}"),
            )
            assert reply.status == 200
    assert InboundSms.objects.filter(state=InboundSms.State.RECEIVED).count() == 40
    # when: two workers ingest at once
    counts = _ingest_concurrently(2)
    # then: every SMS once, each citizen's in the order sent, as the console lists them
    assert sum(counts) == 40
    assert not InboundSms.objects.exclude(state=InboundSms.State.INGESTED).exists()
    assert Message.objects.count() == 40
    for k, number in enumerate(numbers):
        interaction = Interaction.objects.get(messages__provider_id=sid(100 * k))
        shown = list(
            interaction.messages.order_by("created_at", "id").values_list("provider_id", flat=True)
        )
        assert shown == [sid(100 * k + n) for n in range(20)], number
        stored = list(interaction.messages.order_by("id").values_list("provider_id", flat=True))
        assert stored == shown
