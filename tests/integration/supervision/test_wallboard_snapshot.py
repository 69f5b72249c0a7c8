"""The wallboard snapshot's reads: one round trip on PostgreSQL, the same figures as the reads
run one by one, and SQL compiled once per scope and day that still follows every change of the
rows it reads (queues, agents, their teams, the day)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from agents.models import AgentPresence, AgentProfile, AgentState
from configuration.models import Queue, Team
from interactions.lifecycle import Status
from routing.claims import do_route_pending
from routing.models import Offer, OfferStatus
from routing.offers import do_accept_offer
from supervision import selectors
from supervision.access import scope_for
from supervision.models import QueueHours
from supervision.selectors import wallboard_snapshot
from tests.integration.supervision.test_stats import move

pytestmark = pytest.mark.django_db

WEEK = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def busy_floor(queue: Any, agent: Any, arrive: Any, capture: Any) -> dict[str, Any]:
    """Two queues (one with opening hours), agents available, paused and offline, contacts
    waiting, ringing, in progress and hung up today."""
    caf = queue("caf", {"apl": 1}, sla_target_seconds=60)
    cpam = queue("cpam", {}, sla_target_seconds=30)
    QueueHours.objects.create(
        queue=cpam, calendar={"weekly": {day: [["00:00", "24:00"]] for day in WEEK}}
    )
    alice = agent("alice", {"apl": 3}, channels=["voice", "email"])
    alice.user.first_name, alice.user.last_name = "Alice", "Martin"
    alice.user.save()
    bob = agent("bob", {"apl": 2}, channels=["voice"])
    AgentPresence.objects.filter(agent=bob).update(
        state=AgentState.PAUSED, pause_reason="pause déjeuner"
    )
    agent("carol", {"apl": 2}, available=False)
    t0 = timezone.now() - timedelta(minutes=20)
    with capture(execute=True):
        call = arrive(caf, "voice", now=t0)
        do_route_pending(now=t0)
        offer = Offer.objects.get(interaction=call, status=OfferStatus.PENDING)
        do_accept_offer(offer_id=offer.pk, agent=alice, now=t0 + timedelta(seconds=12))
        move(arrive(cpam, "voice", now=t0 + timedelta(seconds=30)), Status.ABANDONED, t0)
        arrive(cpam, "email", now=t0 + timedelta(minutes=1))
        arrive(caf, "email", now=t0 + timedelta(minutes=2))
        arrive(cpam, "voice", now=t0 + timedelta(minutes=3))
        arrive(cpam, "voice", now=t0 + timedelta(minutes=4))
    return {"caf": caf, "cpam": cpam, "alice": alice, "bob": bob}


def test_a_snapshot_is_one_round_trip_with_the_figures_of_the_reads_one_by_one(
    queue: Any,
    agent: Any,
    arrive: Any,
    everything: Any,
    monkeypatch: Any,
    django_assert_num_queries: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given a floor with waiting, ringing and answered contacts and agents in every state
    world = busy_floor(queue, agent, arrive, django_capture_on_commit_callbacks)
    now = timezone.now()

    # when the wallboard takes a snapshot, its six reads are one round trip
    with django_assert_num_queries(1):
        board = wallboard_snapshot(everything, now)
    # and the same reads, one statement each, give the very same snapshot
    monkeypatch.setattr(selectors, "_one_round_trip", lambda connection: False)
    with django_assert_num_queries(6):
        assert wallboard_snapshot(everything, now) == board

    # and it shows the floor: who waits where, who does what, which queue is open
    lines = {(r["queue"], r["channel"]): r for r in board["queues"]}
    assert lines[("cpam", "voice")]["waiting"] == 2
    assert lines[("cpam", "voice")]["abandoned"] == 1
    assert lines[("cpam", "voice")]["open"] is True
    assert lines[("cpam", "voice")]["alert"] == "waiting_over_target"
    assert lines[("caf", "voice")]["answered"] == 1
    assert lines[("caf", "voice")]["open"] is None  # no opening hours: always staffed
    agents = {a["name"]: a for a in board["agents"]}
    assert {"Alice Martin", "bob", "carol"} <= set(agents)
    alice = agents["Alice Martin"]
    assert alice["agent_id"] == world["alice"].pk
    assert alice["work"]
    assert {w["status"] for w in alice["work"]} <= {"offered", "assigned", "wrap_up"}
    assert (agents["bob"]["state"], agents["bob"]["pause_reason"]) == ("paused", "pause déjeuner")
    assert (agents["carol"]["state"], agents["carol"]["connected"]) == ("offline", False)


def test_the_compiled_snapshot_follows_the_rows_it_reads_and_the_day(
    queue: Any,
    agent: Any,
    arrive: Any,
    make_user: Any,
    django_assert_num_queries: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given a team's supervisor, its queue and agents, and a snapshot already taken
    world = busy_floor(queue, agent, arrive, django_capture_on_commit_callbacks)
    team = Team.objects.create(name="Équipe CPAM")
    Queue.objects.filter(pk=world["cpam"].pk).update(team=team)
    AgentProfile.objects.filter(pk__in=[world["alice"].pk, world["bob"].pk]).update(team=team)
    supervisor = make_user("cpam-sup", role="supervisor")
    team.supervisors.add(supervisor)
    scope = scope_for(supervisor)
    assert scope is not None
    now = timezone.now()
    board = wallboard_snapshot(scope, now)
    assert {r["queue"] for r in board["queues"]} == {"cpam"}
    assert {a["name"] for a in board["agents"]} == {"Alice Martin", "bob"}

    # when the team changes (bob leaves it, the CAF's queue joins it, the CPAM's is closed)
    AgentProfile.objects.filter(pk=world["bob"].pk).update(team=None)
    Queue.objects.filter(pk=world["caf"].pk).update(team=team)
    Queue.objects.filter(pk=world["cpam"].pk).update(active=False)
    # then the next snapshot (same scope, same compiled SQL: one round trip) shows it
    with django_assert_num_queries(1):
        board = wallboard_snapshot(scope, now)
    assert {r["queue"] for r in board["queues"]} == {"caf"}
    assert {a["name"] for a in board["agents"]} == {"Alice Martin"}

    # and the next day's snapshot starts from zero counters, with the contacts still waiting
    tomorrow = wallboard_snapshot(scope, now + timedelta(days=1))
    email = next(r for r in tomorrow["queues"] if r["channel"] == "email")
    assert (email["arrived"], email["waiting"]) == (0, board_waiting(board, "email"))
    voice = next(r for r in board["queues"] if r["channel"] == "voice")
    assert voice["answered"] == 1
    assert all(r["answered"] == 0 for r in tomorrow["queues"])

    # and a supervisor of no team reads nothing at all
    idle = make_user("idle-sup", role="supervisor")
    idle_scope = scope_for(idle)
    assert idle_scope is not None
    with django_assert_num_queries(0):
        assert wallboard_snapshot(idle_scope, now)["queues"] == []


def board_waiting(board: dict[str, Any], channel: str) -> int:
    return sum(r["waiting"] for r in board["queues"] if r["channel"] == channel)
