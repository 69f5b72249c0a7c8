"""Transfers to a named agent follow the locking rules: racing for a colleague's last free
slot (two transfers, or a transfer and the router), exactly one wins; capacity is never
exceeded."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection

from interactions.lifecycle import Status
from interactions.models import Interaction
from routing.claims import do_route_pending
from routing.errors import TransferError
from routing.models import Offer
from routing.transfers import do_offer_to_agent

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


def _assign(interaction: Interaction, agent: Any) -> None:
    Interaction.objects.filter(pk=interaction.pk).update(
        status=Status.ASSIGNED, assigned_agent=agent
    )


def _race(*jobs: Callable[[], object]) -> list[object]:
    barrier = threading.Barrier(len(jobs))
    results: list[object] = [None] * len(jobs)

    def run(i: int, job: Callable[[], object]) -> None:
        barrier.wait()
        try:
            results[i] = job()
        except Exception as exc:
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, j)) for i, j in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return results


def test_two_transfers_to_the_last_free_slot(
    agent: Callable[..., Any], queue: Callable[..., Any], arrive: Callable[..., Any]
) -> None:
    # given Claire with one e-mail slot, and two colleagues each handling an e-mail
    caf = queue("caf")
    claire = agent("claire", capacity_email=1)
    alice, bob = agent("alice", available=False), agent("bob", available=False)
    first, second = arrive(caf, "email", enqueue=False), arrive(caf, "email", enqueue=False)
    _assign(first, alice)
    _assign(second, bob)

    # when both transfer to Claire at the same moment
    results = _race(
        lambda: do_offer_to_agent(interaction_id=first.pk, agent=alice, target=claire),
        lambda: do_offer_to_agent(interaction_id=second.pk, agent=bob, target=claire),
    )

    # then exactly one offer is made; the other is refused and stays with its agent
    offers = [r for r in results if isinstance(r, Offer)]
    refusals = [r for r in results if isinstance(r, TransferError)]
    assert len(offers) == 1, results
    assert len(refusals) == 1
    assert refusals[0].code == "no_room"
    assert Interaction.objects.filter(assigned_agent=claire, status="offered").count() == 1
    statuses = sorted(Interaction.objects.values_list("status", flat=True))
    assert statuses == ["assigned", "offered"]


def test_a_transfer_and_the_router_racing_for_one_slot(
    agent: Callable[..., Any], queue: Callable[..., Any], arrive: Callable[..., Any]
) -> None:
    caf = queue("caf")
    claire = agent("claire", capacity_email=1)
    alice = agent("alice", available=False)
    mine = arrive(caf, "email", enqueue=False)
    _assign(mine, alice)
    arrive(caf, "email")  # waiting: the router wants Claire too (she is the only one free)
    Offer.objects.all().delete()
    Interaction.objects.filter(status="offered").update(status="queued", assigned_agent=None)

    _race(
        lambda: do_offer_to_agent(interaction_id=mine.pk, agent=alice, target=claire),
        lambda: do_route_pending(),
    )
    load = Interaction.objects.filter(
        assigned_agent=claire, status__in=["offered", "assigned"]
    ).count()
    assert load <= 1
    assert Offer.objects.filter(agent=claire, status="pending").count() == load
