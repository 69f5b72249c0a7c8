"""What webhooks cost, a benchmark (not in the test suite: a timed check has no place there).

    .venv/bin/python -m pytest bench/webhooks_cost.py -s -p no:cacheprovider \
        -p tests.conftest -p tests.integration.webhooks.conftest

(run like a test for its fixtures: PostgreSQL from DATABASE_URL, a receiver on loopback). It
prints:

- on the write path: an interaction's life (created, offered, assigned, wrap-up, closed) with no
  subscription in its organisation, and with one subscribed to every event (three delivery rows
  written in the transactions of the changes);
- sending: deliveries per second through one sender (the sweep, as on the embedded default) to
  a receiver on loopback."""

from __future__ import annotations

import time
from typing import Any

import pytest

from interactions.actions import do_create_interaction, do_transition_interaction
from interactions.channels import Channel
from interactions.lifecycle import Status
from tests.integration.webhooks.conftest import Body, Receiver
from webhooks.actions import do_sweep
from webhooks.models import Delivery, Event, Subscription

pytestmark = [pytest.mark.postgres, pytest.mark.django_db, pytest.mark.slow]

LIVES = 60


def _lives(body: Body, count: int) -> float:
    """Seconds per interaction life (five status changes)."""
    started = time.perf_counter()
    for _ in range(count):
        interaction = do_create_interaction(channel=Channel.SMS, contact=None, queue=body.queue)
        do_transition_interaction(
            interaction=interaction, to=Status.OFFERED, extra={"assigned_agent": body.agent}
        )
        for status in (Status.ASSIGNED, Status.WRAP_UP, Status.CLOSED):
            do_transition_interaction(interaction=interaction, to=status)
    return (time.perf_counter() - started) / count


def test_what_webhooks_cost_on_the_write_path_and_to_send(
    hook_settings: Any, bodies: tuple[Body, Body], receiver: Receiver
) -> None:
    caf, mairie = bodies
    _lives(caf, 5)  # warm-up
    without = min(_lives(caf, LIVES) for _ in range(2))
    Subscription.objects.create(
        organisation=mairie.org, name="Autre", url=receiver.url, events=list(Event.values)
    )
    other_org = min(_lives(caf, LIVES) for _ in range(2))
    Subscription.objects.create(
        organisation=caf.org, name="CRM", url=receiver.url, events=list(Event.values)
    )
    Delivery.objects.all().delete()
    subscribed = min(_lives(caf, LIVES) for _ in range(2))
    rows = Delivery.objects.count()
    assert rows == 3 * 2 * LIVES  # created, assigned, closed per life

    started = time.perf_counter()
    while Delivery.objects.filter(status="pending").exists():
        do_sweep()
    sent_per_s = rows / (time.perf_counter() - started)
    assert len(receiver.received) == rows

    print(
        f"\ninteraction life (5 status changes): {without * 1000:.2f} ms without subscription, "
        f"{other_org * 1000:.2f} ms with one in another organisation, "
        f"{subscribed * 1000:.2f} ms subscribed to every event "
        f"(+{(subscribed - without) * 1000:.2f} ms for 3 deliveries); "
        f"one sender: {sent_per_s:.0f} deliveries/s to loopback"
    )
    # loose: the machine is shared; four queries per event (savepoint, subscriptions, insert)
    assert subscribed < 3 * without
