"""Queues by kind of work: every task lands on a known queue, and every queue has a consumer in
each way the project starts workers (docker-compose, the README's manual start, the test and
chaos harnesses, the ingest benchmark), so no task waits forever on a queue nobody reads."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml

from contactcentre.celery import app
from contactcentre.embedded import load_task_modules
from kernel.queues import (
    DEFAULT_QUEUE,
    INGEST_QUEUE,
    OUTBOUND_QUEUE,
    QUEUES,
    REPORTS_QUEUE,
    ROUTE_QUEUE,
)

ROOT = Path(__file__).resolve().parents[2]


def queue_of(task_name: str) -> str:
    route = app.amqp.router.route({}, task_name)
    return str(route["queue"].name)


def queues_in(command: str) -> set[str]:
    """The queues a ``celery worker`` command line consumes (the default queue without -Q)."""
    words = shlex.split(command)
    for flag in ("-Q", "--queues"):
        if flag in words:
            return set(words[words.index(flag) + 1].split(","))
    return {DEFAULT_QUEUE}


def test_every_task_goes_to_a_known_queue_by_kind() -> None:
    load_task_modules()
    names = [n for n in app.tasks if not n.startswith("celery.")]
    assert names
    unknown = {n: queue_of(n) for n in names if queue_of(n) not in QUEUES}
    assert unknown == {}
    # the kinds the live loop depends on are apart from providers and reports
    assert queue_of("channels_sms.ingest_pending") == INGEST_QUEUE
    assert queue_of("routing.route_pending") == ROUTE_QUEUE
    assert queue_of("routing.expire_offers") == ROUTE_QUEUE
    assert queue_of("channels_sms.send_outbound") == OUTBOUND_QUEUE
    assert queue_of("channels_voice.bridge_call") == OUTBOUND_QUEUE
    assert queue_of("supervision.any_report") == REPORTS_QUEUE


def test_docker_compose_workers_consume_every_queue() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    consumed: set[str] = set()
    for service in services.values():
        command = service.get("command") or []
        if "worker" in command and "celery" in command:
            consumed |= queues_in(shlex.join(command))
    assert consumed == set(QUEUES)


def test_documented_and_harness_workers_consume_every_queue() -> None:
    starts = {
        "README.md": (ROOT / "README.md").read_text(),
        "bench/chaos_stack.py": (ROOT / "bench/chaos_stack.py").read_text(),
    }
    for where, text in starts.items():
        found: set[str] = set()
        # "-Q a,b" on a command line, or a quoted list of queues a harness passes to -Q
        pattern = r"(?:-Q|--queues)[\s\"',]+([a-z,]+)|\"([a-z]+(?:,[a-z]+)+)\""
        for match in re.finditer(pattern, text):
            found |= set((match.group(1) or match.group(2)).split(","))
        assert found >= set(QUEUES), where
    from bench.ingest import WORKER_QUEUES

    assert {q for queues in WORKER_QUEUES for q in queues.split(",")} >= set(QUEUES)
    operations = (ROOT / "docs/operations.md").read_text()
    for queue in QUEUES:
        assert f"`{queue}`" in operations, queue
