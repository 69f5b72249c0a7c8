"""Ingestion in batches: many citizens' SMS recorded in one transaction with set-based
statements, each citizen's in order, a delivery that cannot be recorded isolated (failed, the
rest committed), and nothing doubled when a delivery or a run comes again."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.db import connection

from channels_inbound.models import Endpoint
from channels_inbound.sms import actions
from channels_inbound.sms.models import InboundSms
from configuration.models import Queue
from contacts.actions import resolve_contact
from contacts.models import Contact, ContactIdentity
from interactions.lifecycle import Status
from interactions.models import Interaction, InteractionTransition, Message
from kernel.queues import QUEUES
from supervision.models import QueueDayStats
from tests.support import celery_broker, start_workers, stop_workers

from .conftest import FakeTwilio, payload

OUR_NUMBER = "+33900000001"
OTHER_NUMBER = "+33900000002"
SMS_URL = "/webhooks/twilio/sms/"

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs PostgreSQL (advisory locks, triggers)"
)


def sid(n: int) -> str:
    return f"SM{n:032x}"


@pytest.fixture
def endpoint(db: Any) -> Endpoint:
    queue = Queue.objects.create(code="caf", name="CAF", sla_target_seconds=3600)
    return Endpoint.objects.create(channel="sms", address=OUR_NUMBER, name="CAF SMS", queue=queue)


def post(twilio: FakeTwilio, n: int, sender: str, body: str, to: str = OUR_NUMBER) -> None:
    reply = twilio.post(
        SMS_URL, payload("sms_inbound", MessageSid=sid(n), From=sender, Body=body, To=to)
    )
    assert reply.status == 200


def stored_while_held(n: int, sender: str, body: str) -> Any:
    """A citizen's SMS stored, waiting, while another worker's batch holds that citizen: the
    holder's connection (closing it lets go)."""
    import psycopg

    InboundSms.objects.create(
        provider="twilio", message_sid=sid(n), sender=sender, recipient=OUR_NUMBER, body=body
    )
    holder = psycopg.connect(**connection.get_connection_params(), autocommit=True)
    holder.execute(
        "SELECT pg_advisory_lock(%s, hashtext(%s))", [actions.SENDER_LOCK_NAMESPACE, sender]
    )
    return holder


def thread(sender: str) -> list[str]:
    first = InboundSms.objects.filter(sender=sender, message__isnull=False).first()
    assert first is not None
    assert first.message is not None
    interaction = first.message.interaction
    return list(interaction.messages.order_by("created_at", "id").values_list("text", flat=True))


@pytest.mark.django_db
def test_a_batch_of_many_citizens_gives_each_one_interaction_in_order(
    endpoint: Endpoint, twilio: FakeTwilio, django_capture_on_commit_callbacks: Any
) -> None:
    # given: a known citizen with an open SMS interaction, and 30 new numbers; 3 SMS each,
    # interleaved as they arrive
    known = resolve_contact("phone", "+33611111111").contact
    assert known is not None
    open_one = Interaction.objects.create(
        channel="sms", contact=known, queue=endpoint.queue, status=Status.QUEUED
    )
    senders = ["+33611111111", *(f"+336200000{n:02d}" for n in range(30))]
    n = 0
    for round_ in range(3):
        for sender in senders:
            n += 1
            post(twilio, n, sender, f"{sender} {round_}")
    # when: one run ingests them (one batch: fewer than INGEST_BATCH rows)
    with django_capture_on_commit_callbacks(execute=True):
        assert actions.do_ingest_pending_sms() == 93
    # then: every SMS once, on one interaction per citizen, in the order sent
    assert not InboundSms.objects.exclude(state=InboundSms.State.INGESTED).exists()
    assert Message.objects.count() == 93
    assert Contact.objects.count() == 31
    assert ContactIdentity.objects.count() == 31
    assert open_one.messages.count() == 3  # the known citizen's open interaction is continued
    assert Interaction.objects.count() == 31
    for sender in senders:
        assert thread(sender) == [f"{sender} {r}" for r in range(3)]
    # the new interactions are queued for routing, each with its arrival on record
    new = Interaction.objects.exclude(pk=open_one.pk)
    assert set(new.values_list("status", flat=True)) == {Status.QUEUED}
    arrived = InteractionTransition.objects.filter(reason="arrived", to_status=Status.QUEUED)
    assert arrived.count() == 30
    assert set(new.values_list("queue_id", flat=True)) == {endpoint.queue_id}
    # and the wallboard counts the 30 arrivals (its counters move after the commit)
    counters = QueueDayStats.objects.get(queue_key=endpoint.queue_id, channel="sms")
    assert counters.arrived == 30


@pytest.mark.django_db
def test_a_delivery_the_database_refuses_is_failed_and_the_rest_of_the_batch_committed(
    endpoint: Endpoint, twilio: FakeTwilio, refused_text: str
) -> None:
    # given: five SMS from three citizens, the third of which PostgreSQL refuses to store
    post(twilio, 1, "+33612000001", "un")
    post(twilio, 2, "+33612000002", "deux")
    post(twilio, 3, "+33612000001", refused_text)
    post(twilio, 4, "+33612000003", "quatre")
    post(twilio, 5, "+33612000001", "cinq")
    # when
    assert actions.do_ingest_pending_sms() == 4
    # then: the refused one is failed with the reason, the others are recorded, in order
    states = dict(InboundSms.objects.values_list("message_sid", "state"))
    assert states == {
        sid(1): "ingested",
        sid(2): "ingested",
        sid(3): "failed",
        sid(4): "ingested",
        sid(5): "ingested",
    }
    assert "refused row" in InboundSms.objects.get(message_sid=sid(3)).error
    assert thread("+33612000001") == ["un", "cinq"]
    assert Message.objects.count() == 4
    # and a later run has nothing left to do (the failed one does not block anything)
    assert actions.do_ingest_pending_sms() == 0


@pytest.mark.django_db
def test_a_delivery_to_a_number_closed_meanwhile_is_failed_and_the_others_recorded(
    endpoint: Endpoint, twilio: FakeTwilio
) -> None:
    # given: two numbers; the second is closed after its SMS was accepted
    other = Endpoint.objects.create(
        channel="sms", address=OTHER_NUMBER, name="Old number", queue=endpoint.queue
    )
    post(twilio, 1, "+33612000001", "un")
    post(twilio, 2, "+33612000001", "deux", to=OTHER_NUMBER)
    post(twilio, 3, "+33612000001", "trois")
    Endpoint.objects.filter(pk=other.pk).update(active=False)
    # when
    assert actions.do_ingest_pending_sms() == 2
    # then
    failed = InboundSms.objects.get(message_sid=sid(2))
    assert failed.state == InboundSms.State.FAILED
    assert OTHER_NUMBER in failed.error
    assert thread("+33612000001") == ["un", "trois"]


@pytest.mark.django_db
def test_redelivered_sms_and_repeated_runs_record_nothing_twice(
    endpoint: Endpoint, twilio: FakeTwilio
) -> None:
    # given: three SMS ingested
    for n in range(1, 4):
        post(twilio, n, "+33612000001", f"m{n}")
    assert actions.do_ingest_pending_sms() == 3
    # when: the provider delivers them again, and ingestion runs again (a task redelivered)
    for n in range(1, 4):
        post(twilio, n, "+33612000001", f"m{n}")
    assert actions.do_ingest_pending_sms() == 0
    # and: the same message id reaches us through another provider account's row
    InboundSms.objects.create(
        provider="other", message_sid=sid(2), sender="+33612000001", recipient=OUR_NUMBER, body="m2"
    )
    assert actions.do_ingest_pending_sms() == 1
    # then: one message per id, and the extra row points at the message already recorded
    assert Message.objects.count() == 3
    assert InboundSms.objects.count() == 4
    extra = InboundSms.objects.get(provider="other")
    assert extra.state == InboundSms.State.INGESTED
    assert extra.message == Message.objects.get(provider_id=sid(2))


@pytest.mark.django_db
def test_a_citizen_with_two_numbers_keeps_one_interaction(
    endpoint: Endpoint, twilio: FakeTwilio
) -> None:
    # given: a citizen known by two numbers who writes from both in one batch
    citizen = resolve_contact("phone", "+33612000001").contact
    assert citizen is not None
    ContactIdentity.objects.create(contact=citizen, kind="phone", value="+33612000002")
    post(twilio, 1, "+33612000001", "du portable")
    post(twilio, 2, "+33612000002", "du travail")
    # when
    assert actions.do_ingest_pending_sms() == 2
    # then: both on the citizen's one interaction, in the order sent
    interaction = Interaction.objects.get()
    assert interaction.contact == citizen
    texts = list(interaction.messages.order_by("created_at", "id").values_list("text", flat=True))
    assert texts == ["du portable", "du travail"]


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_two_real_workers_ingest_a_burst_keeping_each_citizens_order(
    endpoint: Endpoint, twilio: FakeTwilio, settings: Any
) -> None:
    import redis

    # The test's own Redis database (REDIS_URL): only the queues' keys are cleared.
    broker = settings.REDIS_URL
    redis.Redis.from_url(broker).delete(*QUEUES, actions.INGEST_QUEUED_KEY)
    numbers = ["+33612000001", "+33612000002", "+33612000003"]
    with celery_broker(broker, settings):
        processes = start_workers(2, broker)
        try:
            # when: a burst of 20 SMS from each of three citizens, interleaved; each stored SMS
            # wakes the ingestion on the broker at once
            for n in range(20):
                for k, number in enumerate(numbers):
                    post(twilio, 100 * k + n, number, f"{n}")
            deadline = time.monotonic() + 120
            waiting = InboundSms.objects.filter(state=InboundSms.State.RECEIVED)
            while waiting.exists() and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            stop_workers(processes)
    # then: every SMS once, each citizen's conversation in the order sent
    assert not InboundSms.objects.exclude(state=InboundSms.State.INGESTED).exists()
    assert Message.objects.count() == 60
    for number in numbers:
        assert thread(number) == [str(n) for n in range(20)]
    assert Interaction.objects.count() == 3


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_run_that_finds_the_citizen_held_by_another_worker_waits_for_it(
    endpoint: Endpoint,
) -> None:
    import threading

    from django.db import connections

    # given: a citizen's SMS stored while another worker's batch holds that citizen (the run its
    # wake-up queued starts before that batch commits: the end of a burst)
    sender = "+33612000009"
    holder = stored_while_held(9, sender, "fin")
    ingested: list[int] = []

    def run() -> None:
        try:
            ingested.append(actions.do_ingest_pending_sms())
        finally:
            connections.close_all()

    worker = threading.Thread(target=run)
    worker.start()
    try:
        # when: the run finds the citizen held; it waits instead of ending with the SMS waiting
        time.sleep(0.5)
        assert worker.is_alive()
        assert not ingested
    finally:
        # the other worker's batch ends
        holder.execute("SELECT pg_advisory_unlock_all()")
        holder.close()
        worker.join(15)
    # then: the run ingests the SMS (it would otherwise wait for the periodic sweep)
    assert ingested == [1]
    assert InboundSms.objects.get(message_sid=sid(9)).state == InboundSms.State.INGESTED
    assert thread(sender) == ["fin"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_run_left_waiting_too_long_ends_and_leaves_the_sms_waiting(
    endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: a citizen's SMS, and another worker that holds the citizen and does not let go
    monkeypatch.setattr(actions, "_LOCK_WAIT_MS", 300)
    asked: list[bool] = []
    monkeypatch.setattr(actions, "_ask_for_another_run", lambda: asked.append(True))
    holder = stored_while_held(10, "+33612000010", "?")
    try:
        # when: a run finds it held past the wait
        done = actions.do_ingest_pending_sms()
    finally:
        holder.close()
    # then: the run ends, asks for another run, and the SMS is still stored, waiting for it
    assert done == 0
    assert asked == [True]
    assert InboundSms.objects.get(message_sid=sid(10)).state == InboundSms.State.RECEIVED
    assert actions.do_ingest_pending_sms() == 1
