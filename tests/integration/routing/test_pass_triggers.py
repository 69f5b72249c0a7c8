"""Routing triggers on a real broker: the first request of a burst starts a pass at once, and
requests made while a pass runs cause exactly one more pass, right after it (docs/routing.md,
"Triggers")."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from contactcentre.celery import ROUTE_QUEUE
from interactions.lifecycle import Status
from interactions.models import Interaction
from routing.claims import do_route_passes
from routing.signals import claims_written
from routing.triggers import PASS_AGAIN_KEY, PASS_QUEUED_KEY, PASS_RUNNING_KEY, request_routing
from tests.support import celery_broker

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def broker(settings: Any) -> Iterator[redis.Redis]:
    """The test's Redis as the broker, with no worker: queued tasks stay there to be read.
    Only the broker's queue and the routing flags are cleared."""
    url = settings.REDIS_URL
    client = redis.Redis.from_url(url)
    keys = (ROUTE_QUEUE, PASS_QUEUED_KEY, PASS_RUNNING_KEY, PASS_AGAIN_KEY)
    client.delete(*keys)
    with celery_broker(url, settings):
        yield client
    client.delete(*keys)


def queued_passes(client: redis.Redis) -> list[dict[str, Any]]:
    messages = [json.loads(raw) for raw in client.lrange(ROUTE_QUEUE, 0, -1)]
    return [m["headers"] for m in messages if m["headers"]["task"] == "routing.route_pending"]


def test_the_first_request_of_a_burst_queues_a_pass_at_once_and_the_rest_join_it(
    broker: redis.Redis, queue: Any, arrive: Any, django_capture_on_commit_callbacks: Any
) -> None:
    # given a citizen waiting (its own request left aside)
    arrive(queue("sms"), "sms")
    broker.delete(ROUTE_QUEUE, PASS_QUEUED_KEY)

    # when a burst of requests arrives with no pass queued or running
    with django_capture_on_commit_callbacks(execute=True):
        request_routing()
    first = queued_passes(broker)
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(9):
            request_routing()

    # then the first one queued a pass at once, for now (no countdown, no eta) ...
    assert len(first) == 1
    assert first[0]["eta"] is None
    # ... and the nine others add nothing: that pass, not yet started, will read their rows
    assert len(queued_passes(broker)) == 1


def test_a_request_with_nobody_waiting_queues_no_pass(
    broker: redis.Redis,
    queue: Any,
    agent: Any,
    arrive: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given an agent and nobody waiting (the last citizen was offered to them)
    q = queue("sms")
    agent("a", channels=["sms"])
    arrive(q, "sms")
    assert [p.offered for p in do_route_passes()] == [1]
    broker.delete(ROUTE_QUEUE, PASS_QUEUED_KEY)

    # when agents are freed (closes, pauses ended), even while another worker's pass runs
    with django_capture_on_commit_callbacks(execute=True):
        request_routing()
    broker.set(PASS_RUNNING_KEY, "another-worker", px=5000)
    with django_capture_on_commit_callbacks(execute=True):
        request_routing()

    # then no pass is queued, and the running one is asked for nothing more
    assert queued_passes(broker) == []
    assert broker.exists(PASS_AGAIN_KEY) == 0

    # and a citizen who then writes gets a pass at once
    broker.delete(PASS_RUNNING_KEY)
    with django_capture_on_commit_callbacks(execute=True):
        arrive(q, "sms")
    assert len(queued_passes(broker)) == 1


def test_requests_while_a_pass_runs_cause_exactly_one_more_pass_right_after_it(
    broker: redis.Redis, queue: Any, agent: Any, arrive: Any
) -> None:
    # given an agent with room for four SMS and one waiting
    q = queue("sms")
    agent("a", channels=["sms"], capacity_sms=4)
    arrive(q, "sms")
    broker.delete(ROUTE_QUEUE)  # the requests of the set-up
    arrivals: list[Interaction] = []

    def three_more_arrive(**_: Any) -> None:
        # while the first pass claims, three more citizens write (each asks for a pass)
        if not arrivals:
            arrivals.extend(arrive(q, "sms") for _ in range(3))

    # when the routing task runs
    claims_written.connect(three_more_arrive)
    try:
        passes = do_route_passes()
    finally:
        claims_written.disconnect(three_more_arrive)

    # then their three requests made exactly one more pass, in the same task, which offered
    # them; no other task was queued, and no pass is left running
    assert [p.offered for p in passes] == [1, 3]
    assert queued_passes(broker) == []
    assert not Interaction.objects.filter(status=Status.QUEUED).exists()
    assert broker.exists(PASS_RUNNING_KEY) == 0


def test_a_task_that_finds_a_pass_running_leaves_it_the_work(
    broker: redis.Redis, queue: Any, agent: Any, arrive: Any
) -> None:
    # given a pass running in another worker (its lock held) and an interaction waiting
    q = queue("sms")
    agent("a", channels=["sms"])
    waiting = arrive(q, "sms")
    broker.set(PASS_RUNNING_KEY, "another-worker", px=5000)

    # when a second routing task starts
    passes = do_route_passes()

    # then it runs no pass of its own and asks the running one for one more
    assert passes == []
    assert Interaction.objects.get(pk=waiting.pk).status == Status.QUEUED
    assert broker.exists(PASS_AGAIN_KEY) == 1


def test_a_request_after_the_pass_ended_queues_a_new_pass(
    broker: redis.Redis,
    queue: Any,
    agent: Any,
    arrive: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given a pass that ran and ended
    q = queue("sms")
    agent("a", channels=["sms"])
    broker.delete(ROUTE_QUEUE)
    assert [p.offered for p in do_route_passes()] == [0]

    # when a citizen then writes
    with django_capture_on_commit_callbacks(execute=True):
        arrive(q, "sms")

    # then a pass is queued for it at once
    assert len(queued_passes(broker)) == 1
