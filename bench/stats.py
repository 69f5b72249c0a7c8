"""Wallboard and reports on a year of history (PostgreSQL).

    python bench/stats.py [--interactions 1000000] [--messages N] [--repeat 200]
                          [--database-url postgres://postgres@127.0.0.1:5432/cc_stats_bench]
                          [--reuse]

Creates (drops first) its own database, generates the history with
``manage.py generate_history`` (1,000,000 interactions and 5,000,000 messages over 12 months by
default, every past day rolled up for reports), then measures, as an administrator of the
busiest organisation (and as the platform administrator, every organisation):

1. ``wallboard_p95_ms``: ``supervision.selectors.wallboard_snapshot`` (today's counters, the
   waiting lines, agents and their work), ``--repeat`` times; target ≤ 20 ms;
2. ``report_month_ms``: the report of the last 30 days (today included), the reports page's
   ``supervision.rollup.period_report``, median of 5; target ≤ 500 ms;
3. ``report_year_ms``: the same over the last 365 days; target ≤ 3 s;
4. ``api_live_p95_ms``, ``api_report_month_ms``: the same live figures and month report through
   the stats API (``GET /api/v1/stats/live/`` and ``/api/v1/stats/reports/?period=
   last_30_days``, the whole Django and DRF stack in process, JSON included; no target).

``--reuse`` keeps an existing generated database (no drop, no generation). The last line is one
JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

from interactions.channels import Channel

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/cc_stats_bench"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))]


def recreate_database(database_url: str) -> None:
    import psycopg

    base, name = database_url.rsplit("/", 1)
    if name == "contactcentre":
        raise SystemExit("refusing to drop the contactcentre database")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def setup_django(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "contactcentre.settings")
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "true"
    os.environ.pop("REDIS_URL", None)
    import django

    django.setup()


def timed(fn: Callable[[], Any], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def warm_percentiles(fn: Callable[[], Any], n: int) -> tuple[float, float]:
    """p50 and p95 of ``n`` calls in ms, after one call that warms connections and caches."""
    fn()
    lat = timed(fn, n)
    return percentile(lat, 50), percentile(lat, 95)


def measure_api(users: tuple[tuple[str, Any], ...], repeat: int) -> dict[str, float]:
    """The stats API's live figures (p50/p95 over ``repeat``) and month report (median of 5)
    per user, through the whole request stack."""
    from rest_framework.test import APIClient

    results = {}
    for name, user in users:
        client = APIClient()
        client.force_authenticate(user)

        def get(url: str, client: Any = client, **params: str) -> Any:
            response = client.get(url, params, secure=True)
            assert response.status_code == 200, response.content[:300]
            return response

        live = partial(get, "/api/v1/stats/live/")
        month = partial(get, "/api/v1/stats/reports/", period="last_30_days")
        p50, p95 = warm_percentiles(live, repeat)
        body = live().json()
        runs = timed(month, 5)
        print(
            f"stats API live ({name}): p50 {p50:.1f} ms, p95 {p95:.1f} ms over {repeat} "
            f"({len(body['queues'])} queues, {len(body['agents'])} agents); month report "
            f"median {statistics.median(runs):.0f} ms",
            flush=True,
        )
        results[f"api_live_{name}_p95_ms"] = round(p95, 1)
        results[f"api_report_month_{name}_ms"] = round(statistics.median(runs), 1)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--interactions", type=int, default=1_000_000)
    parser.add_argument("--messages", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--reuse", action="store_true")
    args = parser.parse_args()

    if not args.reuse:
        recreate_database(args.database_url)
    setup_django(args.database_url)

    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.core.management import call_command
    from django.db import connection
    from django.db.models import Count
    from django.utils import timezone

    from configuration.models import Team
    from interactions.models import Interaction, InteractionTransition, Message
    from kernel.roles import ADMINISTRATOR, SUPERVISOR, ensure_roles
    from organisations import authz
    from organisations.models import Membership
    from supervision.access import Scope, scope_for
    from supervision.periods import Period, local_day
    from supervision.reports import ReportFilter
    from supervision.rollup import period_report
    from supervision.selectors import wallboard_snapshot

    generate_s = None
    if not args.reuse:
        call_command("migrate", verbosity=0)
        t0 = time.perf_counter()
        options: dict[str, Any] = {"interactions": args.interactions}
        if args.messages is not None:
            options["messages"] = args.messages
        call_command("generate_history", **options)
        generate_s = time.perf_counter() - t0

    counts = {
        "interactions": Interaction.objects.count(),
        "messages": Message.objects.count(),
        "transitions": InteractionTransition.objects.count(),
    }
    print(f"database: {counts}", flush=True)

    busiest = (
        Interaction.objects.values("organisation_id").annotate(n=Count("id")).order_by("-n").first()
    )
    if busiest is None:
        raise SystemExit("no interactions: nothing to measure")
    org_id: int = busiest["organisation_id"]
    user_model = get_user_model()
    ensure_roles()
    admin, _ = user_model.objects.get_or_create(username="bench-org-admin")
    admin.groups.add(Group.objects.get(name=ADMINISTRATOR))
    Membership.objects.get_or_create(user=admin, organisation_id=org_id)
    supervisor, _ = user_model.objects.get_or_create(username="bench-supervisor")
    supervisor.groups.add(Group.objects.get(name=SUPERVISOR))
    Membership.objects.get_or_create(user=supervisor, organisation_id=org_id)
    team = Team.objects.filter(organisation_id=org_id).order_by("pk").first()
    if team is not None:
        team.supervisors.add(supervisor)
    team_scope = scope_for(supervisor)
    assert team_scope is not None, "the supervisor has no supervision scope"
    root, _ = user_model.objects.get_or_create(
        username="bench-root", defaults={"is_superuser": True, "is_staff": True}
    )
    org_scope = scope_for(admin)
    assert org_scope is not None, "the organisation administrator has no supervision scope"
    everything = Scope(principal=authz.principal_for(root), organisation_id=None, team_ids=None)

    now = timezone.now()
    today = local_day(now)
    month = Period(today - timedelta(days=29), today)
    year = Period(today - timedelta(days=364), today)

    results: dict[str, Any] = {"interactions": counts["interactions"]}
    results["messages"] = counts["messages"]
    for name, scope in (("team", team_scope), ("org", org_scope), ("all", everything)):
        p50, p95 = warm_percentiles(partial(wallboard_snapshot, scope), args.repeat)
        board = wallboard_snapshot(scope)
        print(
            f"wallboard ({name}): p50 {p50:.1f} ms, p95 {p95:.1f} ms over {args.repeat} "
            f"({len(board['queues'])} queue lines, {len(board['agents'])} agents, "
            f"{sum(q['waiting'] for q in board['queues'])} waiting)",
            flush=True,
        )
        results[f"wallboard_{name}_p95_ms"] = round(p95, 1)

        for label, period in (("month", month), ("year", year)):
            # As the reports page asks: a supervisor's report is limited to their teams.
            flt = ReportFilter(team_ids=scope.team_ids)
            phone = ReportFilter(channel=Channel.VOICE, team_ids=scope.team_ids)
            first_ms = timed(partial(period_report, period, flt, scope=scope), 1)
            runs = timed(partial(period_report, period, flt, scope=scope), 5)
            report = period_report(period, flt, scope=scope)
            filtered = timed(partial(period_report, period, phone, scope=scope), 3)
            print(
                f"report {label} ({name}, {period.first}..{period.last}): first "
                f"{first_ms[0]:.0f} ms, median {statistics.median(runs):.0f} ms, "
                f"max {max(runs):.0f} ms; phone only median {statistics.median(filtered):.0f} ms "
                f"({report.total.arrived} arrived, answer rate "
                f"{(report.total.answer_rate or 0) * 100:.1f} %)",
                flush=True,
            )
            results[f"report_{label}_{name}_ms"] = round(statistics.median(runs), 1)

    results.update(measure_api((("team", supervisor), ("org", admin), ("all", root)), args.repeat))

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_database_size(current_database())")
        size = cursor.fetchone()[0]
    scopes = ("team", "org", "all")
    out = {
        "wallboard_p95_ms": max(results[f"wallboard_{s}_p95_ms"] for s in scopes),
        "report_month_ms": max(results[f"report_month_{s}_ms"] for s in scopes),
        "report_year_ms": max(results[f"report_year_{s}_ms"] for s in scopes),
        "api_live_p95_ms": max(results[f"api_live_{s}_p95_ms"] for s in scopes),
        "api_report_month_ms": max(results[f"api_report_month_{s}_ms"] for s in scopes),
        **results,
        "generate_s": round(generate_s, 1) if generate_s is not None else None,
        "database_mb": round(size / 1e6),
    }
    out["targets_met"] = (
        out["wallboard_p95_ms"] <= 20
        and out["report_month_ms"] <= 500
        and out["report_year_ms"] <= 3000
    )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
