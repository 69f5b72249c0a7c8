"""The shared ingest path: one citizen, one open conversation, never a duplicate."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import close_old_connections

from channels_inbound.ingest import InboundMessage, IngestError, do_ingest_message
from channels_inbound.models import Endpoint
from configuration.models import Queue
from interactions.lifecycle import Status
from interactions.models import Interaction, Message

OUR_NUMBER = "+33900000001"


@pytest.fixture
def sms_endpoint(db: object) -> Endpoint:
    queue = Queue.objects.create(code="caf", name="CAF", sla_target_seconds=3600)
    return Endpoint.objects.create(channel="sms", address=OUR_NUMBER, name="CAF SMS", queue=queue)


def sms(sid: str, text: str, sender: str = "06 12 34 56 78") -> InboundMessage:
    return InboundMessage(
        channel="sms", sender=sender, recipient=OUR_NUMBER, text=text, provider_id=sid
    )


@pytest.mark.django_db
def test_consecutive_sms_from_one_citizen_join_the_open_interaction(sms_endpoint: Endpoint) -> None:
    first = do_ingest_message(sms("SM1", "Bonjour, ma demande d'APL ?"))
    second = do_ingest_message(sms("SM2", "Mon numéro allocataire est 1234567", "+33612345678"))
    assert first.new_interaction
    assert not second.new_interaction
    assert second.interaction.pk == first.interaction.pk
    assert first.interaction.status == Status.QUEUED
    assert first.interaction.queue == sms_endpoint.queue
    assert [m.text for m in first.interaction.messages.all()] == [
        "Bonjour, ma demande d'APL ?",
        "Mon numéro allocataire est 1234567",
    ]


@pytest.mark.django_db
def test_an_sms_after_closure_starts_a_new_interaction(
    sms_endpoint: Endpoint,
) -> None:
    first = do_ingest_message(sms("SM1", "Bonjour"))
    Interaction.objects.filter(pk=first.interaction.pk).update(status=Status.CLOSED)
    again = do_ingest_message(sms("SM2", "Re-bonjour"))
    # Closed conversations are not joined: a new one starts in the queue.
    assert again.new_interaction
    assert again.interaction.status == Status.QUEUED


@pytest.mark.django_db
def test_replay_creates_nothing(sms_endpoint: Endpoint) -> None:
    first = do_ingest_message(sms("SM1", "Bonjour 🙂 مرحبا"))
    replay = do_ingest_message(sms("SM1", "Bonjour 🙂 مرحبا"))
    assert not replay.created
    assert replay.message.pk == first.message.pk
    assert Message.objects.count() == 1
    assert Message.objects.get().text == "Bonjour 🙂 مرحبا"


@pytest.mark.django_db
def test_unknown_endpoint_is_a_clear_error(sms_endpoint: Endpoint) -> None:
    with pytest.raises(IngestError, match="no active sms endpoint"):
        do_ingest_message(
            InboundMessage(channel="sms", sender="0612345678", recipient="+33999999999", text="x")
        )
    assert Message.objects.count() == 0


@pytest.mark.django_db
def test_withheld_sender_gets_an_anonymous_interaction(sms_endpoint: Endpoint) -> None:
    result = do_ingest_message(sms("SM9", "Bonjour", sender="anonymous"))
    assert result.interaction.contact is None
    # A second anonymous message is not glued onto the first one's conversation.
    other = do_ingest_message(sms("SM10", "Autre personne", sender="anonymous"))
    assert other.interaction.pk != result.interaction.pk


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicates_make_one_message_and_one_interaction(
    sms_endpoint: Endpoint,
) -> None:
    barrier = threading.Barrier(20)

    def deliver(_: int) -> bool:
        try:
            barrier.wait(timeout=10)
            return do_ingest_message(sms("SMrace", "Allô")).created
        finally:
            close_old_connections()

    with ThreadPoolExecutor(max_workers=20) as pool:
        created = list(pool.map(deliver, range(20)))
    assert created.count(True) == 1
    assert Message.objects.count() == 1
    assert Interaction.objects.count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_different_sms_arriving_together_join_one_interaction(sms_endpoint: Endpoint) -> None:
    do_ingest_message(sms("SM0", "Premier message"))  # the citizen exists
    Interaction.objects.all().delete()
    Message.objects.all().delete()
    barrier = threading.Barrier(8)

    def deliver(i: int) -> int:
        try:
            barrier.wait(timeout=10)
            return do_ingest_message(sms(f"SMpar{i}", f"partie {i}")).interaction.pk
        finally:
            close_old_connections()

    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = set(pool.map(deliver, range(8)))
    assert len(ids) == 1
    assert Message.objects.count() == 8
