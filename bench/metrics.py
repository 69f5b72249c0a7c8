"""What the metrics cost: the hot-path instruments, and a scrape of ``/metrics`` (PostgreSQL).

    python bench/metrics.py [--organisations 3] [--queues 20] [--waiting 20000] [--repeat 50]
                            [--database-url postgres://postgres@127.0.0.1:5432/cc_metrics_bench]
                            [--broker $REDIS_URL, else redis://127.0.0.1:6379/11]

1. ``*_ns``: one call of each instrument the hot paths make (a routing pass's wrapper around a
   function doing nothing, a webhook's timing and error count, an outbound retry, a console
   socket count), in one process and in multi-process mode (``PROMETHEUS_MULTIPROC_DIR``, a
   child process); median of 5 runs of 20,000 calls;
2. ``pass_with_metrics_p50_us`` / ``pass_without_metrics_p50_us``: a routing pass that finds
   nobody free, with its metrics wrapper and without (``__wrapped__``), alternated;
3. ``scrape_p50_ms`` / ``scrape_p95_ms``: ``metrics.views.exposition`` (every figure, as
   Prometheus gets them) on a database of its own (dropped and created) with ``--organisations``
   x ``--queues`` queues, ``--waiting`` waiting interactions spread over them and today's
   counter rows, and the Celery queue lengths read from ``--broker``; ``--repeat`` scrapes.

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/cc_metrics_bench"
CALLS = 20_000


def per_call_ns(fn: Callable[[], Any]) -> float:
    runs = []
    for _ in range(5):
        started = time.perf_counter_ns()
        for _ in range(CALLS):
            fn()
        runs.append((time.perf_counter_ns() - started) / CALLS)
    return round(statistics.median(runs), 1)


def instrument_costs() -> dict[str, float]:
    from dataclasses import dataclass

    from kernel import instruments

    @dataclass
    class Result:
        offered: int = 1
        assigned: int = 0
        skipped: int = 0
        overflowed: int = 0
        waiting: int = 1

    def bare() -> Result:
        return Result()

    timed = instruments.timed_routing_pass(bare)
    return {
        "routing_pass_wrapper_ns": round(per_call_ns(timed) - per_call_ns(bare), 1),
        "webhook_ok_ns": per_call_ns(
            lambda: instruments.webhook_answered(
                provider="twilio", webhook="sms_inbound", status=200, seconds=0.004
            )
        ),
        "webhook_error_ns": per_call_ns(
            lambda: instruments.webhook_answered(
                provider="twilio", webhook="sms_inbound", status=403, seconds=0.001
            )
        ),
        "outbound_retry_ns": per_call_ns(lambda: instruments.outbound_retry("sms")),
        "console_sockets_ns": per_call_ns(lambda: instruments.console_sockets(5)),
    }


def recreate_database(database_url: str) -> None:
    import psycopg

    base, name = database_url.rsplit("/", 1)
    if name == "contactcentre":
        raise SystemExit("refusing to drop the contactcentre database")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def populate(organisations: int, queues: int, waiting: int) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from configuration.models import Queue
    from interactions.models import Interaction
    from organisations.models import Organisation
    from supervision.models import QueueDayStats
    from supervision.periods import PARIS, local_day

    now = timezone.now()
    all_queues = []
    for o in range(organisations):
        org = Organisation.objects.create(name=f"Organisation {o}", slug=f"org-{o}")
        for q in range(queues):
            all_queues.append(
                Queue.objects.create(organisation=org, code=f"q-{q}", name=f"File {q}")
            )
    channels = ("voice", "chat", "email", "sms")
    Interaction.objects.bulk_create(
        (
            Interaction(
                organisation_id=all_queues[i % len(all_queues)].organisation_id,
                queue=all_queues[i % len(all_queues)],
                channel=channels[i % 4],
                status="queued",
                queued_at=now - timedelta(seconds=i % 3600),
                required_skills={},
                language="fr",
            )
            for i in range(waiting)
        ),
        batch_size=5000,
    )
    QueueDayStats.objects.bulk_create(
        QueueDayStats(
            day=local_day(now, PARIS),
            queue_key=q.pk,
            channel=channel,
            arrived=100,
            answered=80,
            answered_within_sla=70,
            abandoned=10,
        )
        for q in all_queues
        for channel in channels
    )


def scrape_costs(args: argparse.Namespace) -> dict[str, Any]:
    recreate_database(args.database_url)
    os.environ["DATABASE_URL"] = args.database_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "contactcentre.settings"
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "true"
    os.environ["CELERY_BROKER_URL"] = args.broker
    os.environ.pop("REDIS_URL", None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    populate(args.organisations, args.queues, args.waiting)
    from metrics.views import exposition
    from routing.claims import do_route_pending

    # A routing pass with and without its metrics wrapper, alternated (the backlog above, no
    # agent logged in: the pass reads who is free and stops).
    bare_pass = do_route_pending.__wrapped__  # type: ignore[attr-defined]
    with_metrics: list[float] = []
    without: list[float] = []
    for _ in range(args.repeat * 4):
        for fn, out in ((do_route_pending, with_metrics), (bare_pass, without)):
            started = time.perf_counter()
            fn()
            out.append((time.perf_counter() - started) * 1e6)
    text = exposition()  # warm up (imports, connections)
    times = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        text = exposition()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {
        "scrape_p50_ms": round(statistics.median(times), 1),
        "scrape_p95_ms": round(times[int(0.95 * (len(times) - 1))], 1),
        "scrape_bytes": len(text),
        "series": sum(1 for line in text.decode().splitlines() if not line.startswith("#")),
        "pass_with_metrics_p50_us": round(statistics.median(with_metrics), 1),
        "pass_without_metrics_p50_us": round(statistics.median(without), 1),
        "queues": args.organisations * args.queues,
        "waiting": args.waiting,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--organisations", type=int, default=3)
    parser.add_argument("--queues", type=int, default=20)
    parser.add_argument("--waiting", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument(  # default: the configured REDIS_URL, else a database of its own
        "--broker", default=os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/11"
    )
    parser.add_argument("--instruments-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.instruments_only:  # the child process of the multi-process measure
        print(json.dumps(instrument_costs()))
        return
    with tempfile.TemporaryDirectory() as shared:
        child = subprocess.run(
            [sys.executable, __file__, "--instruments-only"],
            env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": shared},
            capture_output=True,
            text=True,
            check=True,
        )
    multi = json.loads(child.stdout.strip().splitlines()[-1])
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    single = instrument_costs()
    result: dict[str, Any] = {
        **{f"one_process_{k}": v for k, v in single.items()},
        **{f"multiprocess_{k}": v for k, v in multi.items()},
    }
    result.update(scrape_costs(args))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
