#!/usr/bin/env python3
"""What one citizen's contact costs the app, step by step, in one process (no sockets, no
other process on the CPU): the CPU and wall time of each step of the live loop of
``bench/loop.py``, with its SQL statements, on PostgreSQL with ``--agents`` agents available.

    .venv/bin/python bench/loop_steps.py [--agents 500] [--contacts 200]
                                         [--database-url postgres://.../cc_bench_loop_steps]
                                         [--profile STEP]

Per contact, in the order the loop runs them (Celery tasks run eagerly, in this process):

- ``receive``: the SMS webhook's action (``do_receive_sms``: one insert);
- ``ingest``: the ingestion task (``do_ingest_pending_sms``: the citizen, the interaction,
  the message, events), its routing request left out;
- ``route``: one routing pass (``do_route_pending``) over every available agent;
- ``accept``: the agent accepts the offer (``POST /console/offers/<id>/accept/`` through the
  whole Django stack, middleware included, as a logged-in agent);
- ``close``: the agent closes the conversation (``POST /console/interactions/<id>/close/``).

It drops and creates its own database. ``--profile STEP`` prints the cProfile of that step
(cumulative, top 40). The last line is one JSON object: ``cpu_ms`` and ``wall_ms`` (medians per
step), ``queries`` (per step, the median), ``agents``, ``contacts``. Results in
docs/benchmarks.md ("Loop").
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import os
import pstats
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STEPS = ("receive", "ingest", "route", "accept", "close")


def setup_django(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "contactcentre.settings"
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "true"
    os.environ["ROUTING_HEARTBEAT_WINDOW_SECONDS"] = "86400"
    os.environ["ROUTING_WRAP_UP_SECONDS"] = "0"
    os.environ.pop("REDIS_URL", None)
    import django

    django.setup()


class Steps:
    """Runs the loop's steps one contact at a time and notes their costs."""

    def __init__(self, agents: int, profile: str | None) -> None:
        self.agents = agents
        self.profile = profile
        self.profiler = cProfile.Profile() if profile else None
        self.cpu: dict[str, list[float]] = {s: [] for s in STEPS}
        self.wall: dict[str, list[float]] = {s: [] for s in STEPS}
        self.queries: dict[str, list[int]] = {s: [] for s in STEPS}

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        profiling = self.profiler is not None and name == self.profile
        with CaptureQueriesContext(connection) as captured:
            cpu, wall = time.process_time(), time.perf_counter()
            if profiling:
                assert self.profiler is not None
                self.profiler.enable()
            try:
                yield
            finally:
                if profiling:
                    assert self.profiler is not None
                    self.profiler.disable()
                self.cpu[name].append((time.process_time() - cpu) * 1000)
                self.wall[name].append((time.perf_counter() - wall) * 1000)
        self.queries[name].append(len(captured))

    def prepare(self) -> None:
        from django.core.management import call_command
        from django.utils import timezone

        from agents.models import AgentPresence, AgentState

        call_command("migrate", "--noinput", "-v", "0")
        from bench.chaos import setup_data

        with contextlib.redirect_stdout(io.StringIO()) as out:
            setup_data(self.agents)
        self.pairs = [(u, int(i)) for u, i in json.loads(out.getvalue())]
        now = timezone.now()
        AgentPresence.objects.update(
            state=AgentState.AVAILABLE, state_since=now, idle_since=now, last_heartbeat_at=now
        )

    def contact(self, n: int, clients: dict[int, Any], ingest: Callable[[], int]) -> None:
        from bench import chaos_drivers as drivers
        from channels_inbound.providers.base import InboundSms
        from channels_inbound.sms.actions import do_receive_sms
        from routing.claims import do_route_pending
        from routing.models import Offer

        sid = "SM" + uuid.uuid4().hex
        sms = InboundSms(
            sid=sid,
            account_sid=drivers.ACCOUNT,
            sender=f"+336700{n:05d}",
            recipient=drivers.SMS_NUMBER,
            body="Bonjour, une question sur mon dossier",
            media=[],
        )
        with self.step("receive"):
            do_receive_sms(sms=sms, provider="twilio")
        with self.step("ingest"):
            ingested = ingest()
        if ingested != 1:
            raise RuntimeError(f"contact {n}: {ingested} SMS ingested, 1 expected")
        with self.step("route"):
            result = do_route_pending()
        if result.offered != 1:
            raise RuntimeError(f"contact {n}: the pass offered {result.offered}, 1 expected")
        offer = Offer.objects.order_by("-pk").values("pk", "agent_id", "interaction_id")[0]
        client = clients[offer["agent_id"]]
        with self.step("accept"):
            response = client.post(f"/console/offers/{offer['pk']}/accept/", secure=True)
        if response.status_code != 200:
            raise RuntimeError(f"accept answered {response.status_code}")
        with self.step("close"):
            response = client.post(
                f"/console/interactions/{offer['interaction_id']}/close/",
                {"notes": "loop"},
                secure=True,
            )
        if response.status_code != 200:
            raise RuntimeError(f"close answered {response.status_code}")

    def run(self, contacts: int) -> dict[str, Any]:
        from django.contrib.auth import get_user_model
        from django.test import Client

        from channels_inbound.sms import actions as sms_actions

        users = get_user_model().objects.in_bulk([u for u, _ in self.pairs], field_name="username")
        clients: dict[int, Any] = {}
        for username, agent_id in self.pairs:
            client = Client(HTTP_ACCEPT="application/json")
            client.force_login(users[username])
            clients[agent_id] = client
        # The webhook wakes the ingestion task and ingestion the router: run eagerly they would
        # nest in the step that asked; each step here runs on its own instead.
        from routing.triggers import PASS_TRIGGER

        triggers = (sms_actions.INGEST_TRIGGER, PASS_TRIGGER)
        originals = [t.enqueue for t in triggers]
        for trigger in triggers:
            trigger.enqueue = lambda: None
        try:
            for n in range(contacts):
                self.contact(n, clients, sms_actions.do_ingest_pending_sms)
        finally:
            for trigger, original in zip(triggers, originals, strict=True):
                trigger.enqueue = original
        return {
            "cpu_ms": {s: round(statistics.median(v), 2) for s, v in self.cpu.items()},
            "wall_ms": {s: round(statistics.median(v), 2) for s, v in self.wall.items()},
            "queries": {s: int(statistics.median(v)) for s, v in self.queries.items()},
            "cpu_ms_total": round(sum(statistics.median(v) for v in self.cpu.values()), 2),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--agents", type=int, default=500)
    parser.add_argument("--contacts", type=int, default=200)
    parser.add_argument(
        "--database-url", default="postgres://postgres@127.0.0.1:5432/cc_bench_loop_steps"
    )
    parser.add_argument("--profile", choices=STEPS, default=None)
    args = parser.parse_args(argv)
    if args.agents <= 0 or args.contacts <= 0:
        parser.error("--agents and --contacts must be positive")
    from bench.routing import recreate_database

    recreate_database(args.database_url)
    setup_django(args.database_url)
    steps = Steps(args.agents, args.profile)
    steps.prepare()
    steps.run(min(20, args.contacts))  # warm-up: imports, caches, the first connections
    pairs = steps.pairs
    steps = Steps(args.agents, args.profile)
    steps.pairs = pairs
    figures = steps.run(args.contacts)
    for name in STEPS:
        print(
            f"{name:8s} cpu {figures['cpu_ms'][name]:7.2f} ms  wall {figures['wall_ms'][name]:7.2f}"
            f" ms  {figures['queries'][name]:3d} statements"
        )
    if steps.profiler is not None:
        stream = io.StringIO()
        pstats.Stats(steps.profiler, stream=stream).sort_stats("cumulative").print_stats(40)
        print(stream.getvalue())
    print(json.dumps({**figures, "agents": args.agents, "contacts": args.contacts}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
