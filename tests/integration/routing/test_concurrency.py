"""Four real Celery workers route 1,000+ interactions over 100+ agents on PostgreSQL.

Checked while it runs and at the end: no interaction assigned twice, no agent ever over its
capacity, no available agent idle while an interaction it could take waits; and the same
with one worker killed with SIGKILL in the middle of the run.
"""

from __future__ import annotations

import contextlib
import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db.models import Count
from django.utils import timezone

from agents.models import AgentPresence, AgentProfile, AgentSkill, AgentState
from configuration.models import Queue, QueueSkill, Skill
from interactions.actions import do_create_interaction, do_transition_interaction
from interactions.lifecycle import Status
from interactions.models import Interaction, InteractionTransition
from routing import agent_pool, selectors
from routing.errors import OfferNotPending
from routing.matching import plan_batch
from routing.models import Offer, OfferStatus
from routing.offers import do_accept_offer
from tests.support import celery_broker, clear_broker, redis_db_url, start_workers, stop_workers

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    # Its own deadline (480 s of driving, in _drive) plus 4 workers to start (up to 120 s) and
    # stop: above the global 300 s (the rule: tests/conftest.py).
    pytest.mark.timeout(720),
]

ROOT = Path(__file__).resolve().parents[3]
N_AGENTS = 120
N_INTERACTIONS = 1200
N_WORKERS = 4
SKILLS = ["allocations", "logement", "rsa", "etat-civil", "sejour"]
BROKER_DB = 2  # a Redis database of its own: REDIS_URL's + 2 (tests/support.py)


@pytest.fixture
def workers(settings: Any) -> Iterator[list[subprocess.Popen[bytes]]]:
    broker = redis_db_url(BROKER_DB)
    clear_broker(broker)
    settings.ROUTING_AUTO_ACCEPT_CHANNELS = ["email"]
    settings.ROUTING_HEARTBEAT_WINDOW_SECONDS = 3600
    settings.ROUTING_OFFER_TIMEOUTS = {**settings.ROUTING_OFFER_TIMEOUTS, "chat": 300}
    with celery_broker(broker, settings):
        processes = start_workers(
            N_WORKERS,
            broker,
            extra_env={
                "ROUTING_AUTO_ACCEPT_CHANNELS": "email",
                "ROUTING_HEARTBEAT_WINDOW_SECONDS": "3600",
                "ROUTING_OFFER_TIMEOUT_CHAT": "300",
            },
        )
        try:
            yield processes
        finally:
            stop_workers(processes)


def _build_centre(rng: random.Random) -> list[Queue]:
    skills = {code: Skill.objects.create(code=code, name=code) for code in SKILLS}
    queues = []
    for code in SKILLS:
        q = Queue.objects.create(code=f"q-{code}", name=code, sla_target_seconds=60)
        QueueSkill.objects.create(queue=q, skill=skills[code], min_level=rng.randint(1, 3))
        queues.append(q)
    now = timezone.now()
    user_model = get_user_model()
    for i in range(N_AGENTS):
        user = user_model.objects.create_user(f"agent{i}", password="x")
        profile = AgentProfile.objects.create(user=user, languages=["fr"])
        owned = rng.sample(SKILLS, k=rng.randint(2, 4))
        # Everyone covers at least one skill at level 3+ so every queue can be served.
        owned.append(SKILLS[i % len(SKILLS)])
        for code in set(owned):
            level = 5 if code == SKILLS[i % len(SKILLS)] else rng.randint(1, 5)
            AgentSkill.objects.create(agent=profile, skill=skills[code], level=level)
    AgentPresence.objects.update(
        state=AgentState.AVAILABLE,
        last_heartbeat_at=now,
        state_since=now,
        idle_since=now,
        channels_enabled=["chat", "email"],
    )
    return queues


def _over_capacity() -> list[tuple[int, str, int]]:
    """(agent, channel, load) wherever the load exceeds the agent's capacity right now."""
    capacity = {
        p["id"]: {"chat": p["capacity_chat"], "email": p["capacity_email"]}
        for p in AgentProfile.objects.values("id", "capacity_chat", "capacity_email")
    }
    rows = (
        Interaction.objects.filter(status__in=(Status.OFFERED, Status.ASSIGNED))
        .values_list("assigned_agent_id", "channel")
        .annotate(n=Count("id"))
    )
    return [(a, ch, n) for a, ch, n in rows if n > capacity[a][ch]]


def _quiesce(timeout: float = 30.0) -> None:
    """Wait until the workers have nothing left to do and a sweep claims nothing."""
    from routing.tasks import sweep

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.5)  # let the workers drain what is queued
        result = sweep.apply().get(disable_sync_subtasks=False)  # one more router, in this process
        if result["claimed"] == 0:
            return
    pytest.fail("routing did not settle")


def _idle_while_waiting() -> int:
    """How many matches the policy would still make: 0 means work-conserving."""
    now = timezone.now()
    plan = plan_batch(
        selectors.waiting_interactions(now),
        agent_pool.available_agents(now),
        now.timestamp(),
        selectors.policy_config(),
        selectors.escalation_steps(),
        explain=False,
    )
    return len(plan.matches)


def _drive(workers: list[subprocess.Popen[bytes]], *, kill_one: bool) -> dict[str, int]:
    from routing.tasks import sweep

    rng = random.Random(20261124)
    queues = _build_centre(rng)
    created = 0
    completed = 0
    killed = False
    over_capacity_seen: list[tuple[int, str, int]] = []
    conservation_checked = False
    deadline = time.monotonic() + 480
    next_beat = time.monotonic()
    while time.monotonic() < deadline:
        if time.monotonic() >= next_beat:  # what Celery beat does in production
            sweep.delay()
            next_beat = time.monotonic() + 2.0
        # Arrivals, in waves.
        for _ in range(min(60, N_INTERACTIONS - created)):
            channel = "email" if rng.random() < 0.5 else "chat"
            do_create_interaction(channel=channel, contact=None, queue=rng.choice(queues))
            created += 1
        # Agents accept their chat offers.
        for offer in Offer.objects.filter(status=OfferStatus.PENDING).select_related("agent")[:200]:
            with contextlib.suppress(OfferNotPending):  # expired or answered meanwhile
                do_accept_offer(offer_id=offer.pk, agent=offer.agent)
        over_capacity_seen += _over_capacity()
        if kill_one and not killed and created >= N_INTERACTIONS // 3:
            workers[0].send_signal(signal.SIGKILL)  # mid-run, possibly mid-transaction
            killed = True
        if created == N_INTERACTIONS and not conservation_checked:
            # Everyone is busy and a backlog waits: routing must have used every free slot.
            _quiesce()
            for offer in Offer.objects.filter(status=OfferStatus.PENDING).select_related("agent"):
                do_accept_offer(offer_id=offer.pk, agent=offer.agent)
            _quiesce()
            assert _idle_while_waiting() == 0
            assert Interaction.objects.filter(status=Status.QUEUED).exists(), "no backlog to test"
            conservation_checked = True
        if conservation_checked:
            # Agents finish their work, which frees capacity and triggers routing.
            for interaction in Interaction.objects.filter(status=Status.ASSIGNED)[:150]:
                do_transition_interaction(interaction=interaction, to=Status.WRAP_UP)
                do_transition_interaction(interaction=interaction, to=Status.CLOSED)
                completed += 1
        if completed == N_INTERACTIONS:
            break
        time.sleep(0.05)
    return {
        "created": created,
        "completed": completed,
        "over_capacity": len(over_capacity_seen),
        "killed": int(killed),
        **{
            f"left_{status}": n
            for status, n in Interaction.objects.exclude(status=Status.CLOSED)
            .values_list("status")
            .annotate(n=Count("id"))
        },
    }


@pytest.mark.parametrize("kill_one", [False, True], ids=["4-workers", "one-worker-sigkilled"])
def test_concurrent_workers_route_everything_exactly_once(
    workers: list[subprocess.Popen[bytes]], kill_one: bool
) -> None:
    # when 1,200 interactions arrive while 4 workers route them to 120 agents
    stats = _drive(workers, kill_one=kill_one)

    # then every interaction was routed, handled and closed
    assert stats["created"] == N_INTERACTIONS
    assert stats["completed"] == N_INTERACTIONS, stats
    assert stats["killed"] == int(kill_one)
    if kill_one:
        assert workers[0].poll() == -signal.SIGKILL
    # exactly once: one accepted offer and one move to "assigned" per interaction
    accepted = Counter(
        Offer.objects.filter(status=OfferStatus.ACCEPTED).values_list("interaction_id", flat=True)
    )
    assert len(accepted) == N_INTERACTIONS
    assert max(accepted.values()) == 1
    to_assigned = Counter(
        InteractionTransition.objects.filter(to_status=Status.ASSIGNED).values_list(
            "interaction_id", flat=True
        )
    )
    assert set(to_assigned.values()) == {1}
    # never over capacity at any observation, and no pending offer left behind
    assert stats["over_capacity"] == 0
    assert not Offer.objects.filter(status=OfferStatus.PENDING).exists()
    assert Interaction.objects.filter(status=Status.CLOSED).count() == N_INTERACTIONS
