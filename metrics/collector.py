"""Figures computed when ``/metrics`` is scraped: the queues' live and daily figures, read with
the wallboard's own engine, and the Celery queue lengths, read from the broker.

Why at scrape time and not as gauges kept by the processes: a waiting count or a service level
is a fact of the database, not of one process. Kept in each web or worker process it would be
wrong in every process but the last to write it, and lost with it; read here it is the same
whichever process answers, costs the hot paths nothing, and costs the scrape a few indexed
queries (the wallboard's: waiting interactions grouped by queue and channel, today's counter
rows, opening hours), whatever the traffic.

The definitions are the wallboard's and the reports' (``supervision.selectors.queue_lines``,
``supervision.reports.Figures``, docs/supervision.md): the daily figures are today's (local
day, Europe/Paris) counters ``supervision.stats`` keeps event by event, so they restart from 0
at midnight (gauges, not counters).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.utils import timezone
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

QUEUE_LABELS = ["organisation", "queue", "channel"]

# (metric name, help, value of a supervision.selectors.QueueLine at ``now``)
_DAILY = (
    ("cc_queue_arrived_today", "Contacts that reached the queue today.", "arrived"),
    (
        "cc_queue_offered_today",
        "Contacts offered to the queue today and settled: answered + abandoned + closed "
        "unanswered (the wallboard's 'offered').",
        "offered",
    ),
    ("cc_queue_answered_today", "Contacts an agent answered today.", "answered"),
    (
        "cc_queue_answered_within_target_today",
        "Contacts answered within their answer target today.",
        "answered_within_sla",
    ),
    ("cc_queue_abandoned_today", "Contacts who left before an agent answered, today.", "abandoned"),
)


def _platform_scope() -> Any:
    """Every organisation's queues, as a platform administrator's wallboard sees them."""
    from organisations.authz import Principal, Role
    from supervision.access import Scope

    return Scope(principal=Principal(role=Role.PLATFORM_ADMIN), organisation_id=None, team_ids=None)


def queue_metrics(now: Any = None) -> list[Metric]:
    """One series per organisation, queue and channel (the wallboard's lines)."""
    from organisations.models import Organisation
    from supervision.selectors import queue_lines

    now = now or timezone.now()
    lines = queue_lines(_platform_scope(), now)
    slugs = dict(Organisation.objects.values_list("pk", "slug"))
    waiting = GaugeMetricFamily(
        "cc_queue_waiting_contacts",
        "Contacts waiting now (queued, or offered to an agent who has not answered yet).",
        labels=QUEUE_LABELS,
    )
    oldest = GaugeMetricFamily(
        "cc_queue_oldest_wait_seconds",
        "How long the longest-waiting contact has waited (0 when nobody waits).",
        labels=QUEUE_LABELS,
    )
    daily = [GaugeMetricFamily(name, text, labels=QUEUE_LABELS) for name, text, _ in _DAILY]
    level = GaugeMetricFamily(
        "cc_queue_service_level_ratio",
        "Today's service level (0..1): answered within target / (answered + abandoned after "
        "the first seconds). No sample while nothing was settled today.",
        labels=QUEUE_LABELS,
    )
    goal = GaugeMetricFamily(
        "cc_queue_service_level_goal_ratio",
        "The queue's service-level goal (0..1), for comparison.",
        labels=["organisation", "queue"],
    )
    target = GaugeMetricFamily(
        "cc_queue_answer_target_seconds",
        "The queue's answer target (seconds).",
        labels=["organisation", "queue"],
    )
    seen_queues: set[int] = set()
    for line in lines:
        queue = line.queue
        labels = [slugs.get(queue.organisation_id, ""), queue.code, line.channel]
        waited = (now - line.oldest_queued_at).total_seconds() if line.oldest_queued_at else 0.0
        waiting.add_metric(labels, line.waiting)
        oldest.add_metric(labels, max(0.0, waited))
        for family, (_name, _text, field) in zip(daily, _DAILY, strict=True):
            family.add_metric(labels, getattr(line.figures, field))
        if line.figures.service_level is not None:
            level.add_metric(labels, line.figures.service_level)
        if queue.pk not in seen_queues:
            seen_queues.add(queue.pk)
            goal.add_metric(labels[:2], queue.sla_target_percent / 100)
            target.add_metric(labels[:2], queue.sla_target_seconds)
    return [waiting, oldest, *daily, level, goal, target]


def celery_queue_metrics() -> list[Metric]:
    """Messages waiting in each Celery queue on the Redis broker (not those a worker holds)."""
    from celery import current_app as app

    from kernel.queues import QUEUES

    family = GaugeMetricFamily(
        "cc_celery_queue_length",
        "Tasks waiting in a Celery queue on the broker (ingest, route, outbound, reports, "
        "celery). No sample on the embedded default (tasks run in the calling process).",
        labels=["queue"],
    )
    broker = settings.CELERY_BROKER_URL
    if not broker.startswith(("redis://", "rediss://", "unix://")):
        return [family]  # embedded: nothing ever waits on a broker
    import redis
    from kombu.transport.redis import PRIORITY_STEPS, Channel

    client = redis.Redis.from_url(broker, socket_timeout=2, socket_connect_timeout=2)
    steps = app.conf.broker_transport_options.get("priority_steps", PRIORITY_STEPS)
    try:
        with client.pipeline(transaction=False) as pipe:
            for name in QUEUES:
                for step in steps:  # kombu keeps one list per priority step (step 0: the name)
                    pipe.llen(f"{name}{Channel.sep}{step}" if step else name)
            sizes = pipe.execute()
    finally:
        client.close()
    per_queue = len(steps)
    for i, name in enumerate(QUEUES):
        family.add_metric([name], sum(sizes[i * per_queue : (i + 1) * per_queue]))
    return [family]


class ScrapeTimeCollector(Collector):
    """The figures above; a source that fails (database, broker) says so in ``cc_scrape_up``
    instead of failing the whole scrape (the process metrics still come)."""

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "cc_scrape_up",
            "Whether a source of the scrape-time figures answered: queues (database), "
            "celery (broker).",
            labels=["source"],
        )
        took = GaugeMetricFamily(
            "cc_scrape_duration_seconds",
            "Time spent reading each source of the scrape-time figures.",
            labels=["source"],
        )
        for source, read in (("queues", queue_metrics), ("celery", celery_queue_metrics)):
            started = time.perf_counter()
            try:
                families = read()
            except Exception:
                logger.exception("metrics: %s figures unavailable", source)
                up.add_metric([source], 0)
                families = []
            else:
                up.add_metric([source], 1)
            took.add_metric([source], time.perf_counter() - started)
            yield from families
        yield up
        yield took
