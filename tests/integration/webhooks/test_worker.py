"""Webhooks with a real Celery worker on Redis: the task is queued after the commit on the
``outbound`` queue, a receiver answering 500 is tried again after the back-off (a countdown on
the broker), and the delivery log shows both attempts."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.conf import settings as django_settings

from contactcentre.celery import OUTBOUND_QUEUE, app
from interactions.actions import do_create_interaction
from tests.support import celery_broker, clear_broker, start_workers, stop_workers
from webhooks.models import Delivery, Event, Subscription

from .conftest import Body

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]


def test_the_deliver_task_goes_to_the_outbound_queue() -> None:
    route = app.amqp.router.route({}, "webhooks.deliver")
    assert route["queue"].name == OUTBOUND_QUEUE


@pytest.mark.django_db(transaction=True)
def test_a_worker_delivers_after_the_commit_and_retries_after_a_500(
    settings: Any, bodies: tuple[Body, Body], make_receiver: Any
) -> None:
    caf, _ = bodies
    flaky = make_receiver((500, 200))
    Subscription.objects.create(
        organisation=caf.org,
        name="Logiciel métier",
        url=flaky.url,
        events=[str(Event.INTERACTION_CREATED)],
    )
    broker = django_settings.REDIS_URL
    clear_broker(broker)  # this run's own Redis database: only the broker's keys
    with celery_broker(broker, settings):
        [worker] = start_workers(
            1,
            broker,
            extra_env={
                "WEBHOOK_ALLOW_LOOPBACK": "true",
                "WEBHOOK_RETRY_BACKOFF_S": "0.5",
                "WEBHOOK_RETRY_MAX_BACKOFF_S": "1",
                "WEBHOOK_MAX_ATTEMPTS": "3",
            },
        )
        try:
            started = time.monotonic()
            interaction = do_create_interaction(channel="sms", contact=None, queue=caf.queue)
            assert flaky.wait_for(2, seconds=30), flaky.received
            took = time.monotonic() - started
        finally:
            stop_workers([worker])
    first, second = flaky.received
    assert first.json["data"]["interaction_id"] == interaction.pk
    assert first.body == second.body
    delivery = Delivery.objects.get()
    for _ in range(50):  # the worker records the attempt just after the answer
        delivery.refresh_from_db()
        if delivery.status == "delivered":
            break
        time.sleep(0.1)
    assert delivery.status == "delivered"
    assert list(delivery.log.values_list("number", "status_code")) == [(1, 500), (2, 200)]
    gap = (delivery.log.get(number=2).at - delivery.log.get(number=1).at).total_seconds()
    assert 0.2 <= gap < 10, gap  # the back-off (0.25 to 0.5 s), not at once
    print(f"created -> delivered through a worker, one retry: {took:.2f} s")


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.django_db(transaction=True)
def test_an_event_accepted_while_the_broker_is_down_is_sent_by_the_sweep(
    settings: Any, bodies: tuple[Body, Body], make_receiver: Any
) -> None:
    """Redis down when the change commits: the change is kept, its delivery row too (the task
    could not be queued); once a broker and a worker are back, the sweep sends it."""
    from datetime import timedelta

    from django.utils import timezone

    from webhooks.actions import SWEEP_GRACE_SECONDS, do_sweep

    caf, _ = bodies
    broker = django_settings.REDIS_URL  # (celery_broker below changes the setting)
    receiver = make_receiver((200,))
    Subscription.objects.create(
        organisation=caf.org,
        name="Logiciel métier",
        url=receiver.url,
        events=[str(Event.INTERACTION_CREATED)],
    )
    with celery_broker(f"redis://127.0.0.1:{_closed_port()}/0", settings):
        started = time.monotonic()
        interaction = do_create_interaction(channel="sms", contact=None, queue=caf.queue)
        took = time.monotonic() - started
    print(f"change committed with the broker down in {took:.2f} s")
    delivery = Delivery.objects.get()
    assert delivery.status == "pending"
    assert delivery.attempts == 0
    assert receiver.received == []

    clear_broker(broker)
    with celery_broker(broker, settings):
        [worker] = start_workers(1, broker, extra_env={"WEBHOOK_ALLOW_LOOPBACK": "true"})
        try:
            # the sweep queues what is due for longer than its grace (a lost task)
            later = timezone.now() + timedelta(seconds=SWEEP_GRACE_SECONDS + 1)
            assert do_sweep(now=later) == 1
            assert receiver.wait_for(1, seconds=30)
        finally:
            stop_workers([worker])
    assert receiver.received[0].json["data"]["interaction_id"] == interaction.pk
