"""What ingesting one waiting SMS from a new citizen costs in statements (issue 13): the live
loop runs it for every new contact, so it stays a handful of round trips, and what it must do
is all there (the citizen, the conversation queued, the message, the row marked, the wallboard
counter)."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection

from channels_inbound.models import Endpoint
from channels_inbound.providers.base import InboundSms as ProviderSms
from channels_inbound.sms import actions
from channels_inbound.sms.models import InboundSms
from configuration.models import Queue
from contacts.models import ContactIdentity
from interactions.lifecycle import Status
from interactions.models import Interaction
from routing.triggers import PASS_TRIGGER
from supervision.models import QueueDayStats

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs PostgreSQL (advisory locks)"
)

OUR_NUMBER = "+33900000001"


def receive(n: int, sender: str) -> None:
    actions.do_receive_sms(
        sms=ProviderSms(
            sid=f"SM{n:032x}",
            account_sid="AC1",
            sender=sender,
            recipient=OUR_NUMBER,
            body="Bonjour",
            media=[],
        ),
        provider="twilio",
    )


@pytest.mark.django_db
def test_one_sms_from_a_new_citizen_is_ingested_in_a_few_statements(
    django_assert_max_num_queries: Any,
    django_capture_on_commit_callbacks: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # (the routing pass it asks for is a step of its own, counted elsewhere)
    requested: list[bool] = []
    monkeypatch.setattr(PASS_TRIGGER, "enqueue", lambda: requested.append(True))
    # given: a number and one SMS waiting from a number never seen
    queue = Queue.objects.create(code="caf", name="CAF", sla_target_seconds=3600)
    Endpoint.objects.create(channel="sms", address=OUR_NUMBER, name="CAF SMS", queue=queue)
    receive(1, "+33612345678")
    # when: the ingestion runs (its after-commit work included; 18 counts the savepoints of the
    # test's transaction and the webhook subscriptions' read, cached afterwards)
    with django_assert_max_num_queries(18), django_capture_on_commit_callbacks(execute=True):
        assert actions.do_ingest_pending_sms() == 1
    # then: the citizen, the queued conversation with its message, the row marked ingested and
    # the arrival counted on the wallboard
    identity = ContactIdentity.objects.get(kind="phone", value="+33612345678")
    interaction = Interaction.objects.get(contact_id=identity.contact_id)
    assert interaction.status == Status.QUEUED
    assert list(interaction.messages.values_list("text", flat=True)) == ["Bonjour"]
    assert InboundSms.objects.get().state == InboundSms.State.INGESTED
    assert QueueDayStats.objects.get(queue_key=queue.pk, channel="sms").arrived == 1
    assert requested  # and routing was asked for
