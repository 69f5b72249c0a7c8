"""Routing benchmark on PostgreSQL: 5,000 agents, 40 skills, 50,000 waiting interactions.

    python bench/routing.py [--agents 5000] [--skills 40] [--waiting 50000]
                            [--database-url postgres://postgres@127.0.0.1:5432/cc_bench_routing]

Measures, in the same run and on the same data:

1. ``assignments_per_s``: the real code path (``routing.claims.do_route_pending``: read the
   snapshots, match in memory with the policy, claim in chunked transactions with row locks,
   write offers, transitions and the decision log) until every free slot is used;
2. ``raw_claim_per_s``: the ceiling of a bare SQL claim loop, one interaction + one agent per
   transaction (SELECT ... FOR UPDATE SKIP LOCKED twice, UPDATE, INSERT offer, COMMIT), with no
   skills, no capacity check and no log — the per-assignment-transaction design;
3. ``decision_p50_ms`` / ``decision_p99_ms``: latency of one routing decision on the indexes the
   router uses (an agent frees up and takes the best waiting interaction it may; an interaction
   arrives and finds its best agent), with 100,000 waiting; ``backlog_p99_ratio`` is the p99
   with 100,000 waiting over the p99 with 1,000 waiting.

It creates (and drops at the start) its own database. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHANNELS = [("email", 0.5), ("chat", 0.35), ("voice", 0.15)]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def setup_django(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "contactcentre.settings")
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "true"
    os.environ["ROUTING_HEARTBEAT_WINDOW_SECONDS"] = "86400"
    os.environ.pop("REDIS_URL", None)
    import django

    django.setup()


def recreate_database(database_url: str) -> None:
    import psycopg

    base, name = database_url.rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def populate(n_agents: int, n_skills: int, n_waiting: int, rng: random.Random) -> None:
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from agents.models import AgentPresence, AgentProfile, AgentSkill, AgentState
    from configuration.models import Queue, QueueSkill, Skill
    from interactions.models import Interaction
    from organisations.models import sole_organisation

    call_command("migrate", verbosity=0)
    t0 = time.perf_counter()
    org = sole_organisation()  # bulk_create fills no default: every row names its organisation
    skills = Skill.objects.bulk_create(
        Skill(code=f"skill-{i:02d}", name=f"Skill {i}", organisation_id=org)
        for i in range(n_skills)
    )
    queues = Queue.objects.bulk_create(
        Queue(code=f"queue-{i:02d}", name=f"Queue {i}", sla_target_seconds=60, organisation_id=org)
        for i in range(20)
    )
    queue_needs: dict[int, dict[str, int]] = {}
    for q in queues:
        chosen = rng.sample(skills, k=rng.choice([1, 1, 2]))
        needs = {s.code: rng.randint(1, 3) for s in chosen}
        queue_needs[q.pk] = needs
        QueueSkill.objects.bulk_create(
            QueueSkill(queue=q, skill=s, min_level=needs[s.code]) for s in chosen
        )
    user_model = get_user_model()
    users = user_model.objects.bulk_create(
        user_model(username=f"bench{i}", password="!")  # noqa: S106 - unusable
        for i in range(n_agents)
    )
    profiles = AgentProfile.objects.bulk_create(
        AgentProfile(user=u, languages=["fr"], organisation_id=org) for u in users
    )
    now = timezone.now()
    AgentPresence.objects.bulk_create(
        AgentPresence(
            agent=p,
            state=AgentState.AVAILABLE,
            state_since=now,
            idle_since=now,
            last_heartbeat_at=now,
            channels_enabled=["voice", "chat", "email", "sms"],
        )
        for p in profiles
    )
    AgentSkill.objects.bulk_create(
        AgentSkill(agent=p, skill=s, level=rng.randint(1, 5))
        for p in profiles
        for s in rng.sample(skills, k=rng.randint(4, 10))
    )
    channels = [c for c, _ in CHANNELS]
    weights = [w for _, w in CHANNELS]
    waiting = []
    for _ in range(n_waiting):
        q = rng.choice(queues)
        at = now - timedelta(seconds=rng.randint(0, 3600))
        waiting.append(
            Interaction(
                channel=rng.choices(channels, weights)[0],
                queue=q,
                organisation_id=org,
                status="queued",
                priority=rng.choice([0, 0, 0, 1, 2]),
                required_skills=queue_needs[q.pk],
                language="fr",
                queued_at=at,
                queue_entered_at=at,
                sla_due_at=at + timedelta(seconds=60),
            )
        )
        if len(waiting) == 5000:
            Interaction.objects.bulk_create(waiting)
            waiting = []
    Interaction.objects.bulk_create(waiting)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    print(
        f"populated {n_agents} agents, {n_skills} skills, {n_waiting} waiting in "
        f"{time.perf_counter() - t0:.1f} s",
        flush=True,
    )


def reset_claims() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM routing_routingdecision")
        cursor.execute("DELETE FROM routing_offer")
        cursor.execute("DELETE FROM interactions_interactiontransition")
        cursor.execute(
            "UPDATE interactions_interaction SET status='queued', assigned_agent_id=NULL, "
            "offered_at=NULL, assigned_at=NULL WHERE status <> 'queued'"
        )
        cursor.execute("VACUUM ANALYZE" if connection.connection.autocommit else "ANALYZE")


def measure_real_path() -> tuple[int, float, list[float]]:
    from routing.claims import do_route_pending

    total = 0
    passes: list[float] = []
    t0 = time.perf_counter()
    while True:
        started = time.perf_counter()
        result = do_route_pending()
        passes.append(time.perf_counter() - started)
        total += result.claimed
        if result.claimed == 0:
            break
    elapsed = time.perf_counter() - t0
    return total, elapsed, passes


def measure_raw_claims(database_url: str, seconds: float) -> tuple[int, float]:
    import psycopg

    claims = 0
    with psycopg.connect(database_url) as conn:
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            with conn.transaction():
                row = conn.execute(
                    "SELECT id, channel FROM interactions_interaction WHERE status = 'queued' "
                    "ORDER BY priority DESC, queued_at, id LIMIT 1 FOR UPDATE SKIP LOCKED"
                ).fetchone()
                if row is None:
                    break
                agent = conn.execute(
                    "SELECT agent_id FROM agents_agentpresence WHERE state = 'available' "
                    "LIMIT 1 FOR UPDATE SKIP LOCKED"
                ).fetchone()
                if agent is None:
                    break
                conn.execute(
                    "UPDATE interactions_interaction SET status = 'offered', "
                    "assigned_agent_id = %s, offered_at = now() WHERE id = %s",
                    (agent[0], row[0]),
                )
                conn.execute(
                    "UPDATE agents_agentpresence SET idle_since = now() WHERE agent_id = %s",
                    (agent[0],),
                )
                conn.execute(
                    "INSERT INTO routing_offer (interaction_id, agent_id, channel, status, "
                    "created_at, expires_at) VALUES (%s, %s, %s, 'pending', now(), "
                    "now() + interval '30 seconds')",
                    (row[0], agent[0], row[1]),
                )
            claims += 1
        elapsed = time.perf_counter() - t0
    return claims, elapsed


def measure_decisions(backlog: int, n_decisions: int, rng: random.Random) -> list[float]:
    """Latency (ms) of single routing decisions on the router's in-memory indexes."""
    from django.utils import timezone

    from routing import agent_pool, selectors
    from routing.matching import AgentIndex, WaitingIndex
    from routing.policy import InteractionSnapshot

    now = timezone.now()
    agents = agent_pool.available_agents(now)
    config = selectors.policy_config()
    steps = selectors.escalation_steps()
    template = selectors.waiting_interactions(now, per_group=None)
    nowf = now.timestamp()
    # A backlog of the requested size, cloned from the stored waiting interactions.
    snapshots = []
    for i in range(backlog):
        t = rng.choice(template)
        shift = rng.random()  # distinct arrival times; the SLA deadline moves with them
        snapshots.append(
            InteractionSnapshot(
                interaction_id=i + 1,
                channel=t.channel,
                queue_id=t.queue_id,
                enqueued_at=t.enqueued_at - shift,
                required_skills=t.required_skills,
                language=t.language,
                base_priority=t.base_priority,
                sla_due_at=t.sla_due_at - shift if t.sla_due_at is not None else None,
            )
        )
    agent_index = AgentIndex(agents, config)
    waiting = WaitingIndex(config, steps)
    for snapshot in snapshots:
        waiting.add(snapshot)
    latencies: list[float] = []
    for k in range(n_decisions):
        if k % 2 == 0:
            agent = agent_index.snapshot(rng.choice(agents).agent_id)
            started = time.perf_counter()
            waiting.best_for_agent(agent, nowf)
        else:
            interaction = rng.choice(snapshots)
            started = time.perf_counter()
            agent_index.best_agent(
                interaction, nowf, steps.get(interaction.queue_id, ()), explain=True
            )
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=5000)
    parser.add_argument("--skills", type=int, default=40)
    parser.add_argument("--waiting", type=int, default=50000)
    parser.add_argument("--raw-seconds", type=float, default=15.0)
    parser.add_argument("--decisions", type=int, default=2000)
    parser.add_argument(
        "--database-url", default="postgres://postgres@127.0.0.1:5432/cc_bench_routing"
    )
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    recreate_database(args.database_url)
    setup_django(args.database_url)
    populate(args.agents, args.skills, args.waiting, rng)

    print("real code path: routing passes until every free slot is used ...", flush=True)
    assigned, real_s, passes = measure_real_path()
    real_rate = assigned / real_s
    print(
        f"  {assigned} assignments in {real_s:.2f} s = {real_rate:.0f}/s over {len(passes)} "
        f"passes (pass median {statistics.median(passes) * 1000:.0f} ms)",
        flush=True,
    )
    from django.db import connection

    reset_claims()
    connection.close()
    print(f"raw claim loop: one interaction + one agent per transaction, {args.raw_seconds} s ...")
    raw_claims, raw_s = measure_raw_claims(args.database_url, args.raw_seconds)
    raw_rate = raw_claims / raw_s
    print(f"  {raw_claims} claims in {raw_s:.2f} s = {raw_rate:.0f}/s", flush=True)
    reset_claims()

    print("decision latency on the router's indexes ...", flush=True)
    small = measure_decisions(1000, args.decisions, rng)
    large = measure_decisions(100_000, args.decisions, rng)
    for label, values in (("1,000 waiting", small), ("100,000 waiting", large)):
        print(
            f"  {label}: p50 {percentile(values, 50):.3f} ms, p99 {percentile(values, 99):.3f} ms"
        )
    result = {
        "assignments_per_s": round(real_rate, 1),
        "raw_claim_per_s": round(raw_rate, 1),
        "ratio": round(real_rate / raw_rate, 2),
        "decision_p50_ms": round(percentile(large, 50), 3),
        "decision_p99_ms": round(percentile(large, 99), 3),
        "backlog_p99_ratio": round(percentile(large, 99) / percentile(small, 99), 2),
        "agents": args.agents,
        "skills": args.skills,
        "waiting": args.waiting,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
