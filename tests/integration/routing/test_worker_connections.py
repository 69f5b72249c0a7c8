"""A prefork Celery worker keeps its PostgreSQL connections from one task to the next.

Celery's Django fixup (celery 5.6) closed the connection pool of a prefork child before and
after every task (celery/celery#10554): each routing pass and each ingestion run started two new
PostgreSQL backends, cold, which was most of what a pass cost in the live loop beyond its own
work (docs/benchmarks.md, "Loop"). contactcentre/celery.py makes the task boundaries release
connections as a web request does: back to the process's pool, which stays open, and a broken
connection replaced by a new one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.db import connection

from contactcentre.celery import app
from tests.support import celery_broker, clear_broker, redis_db_url, stop_workers

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

ROOT = Path(__file__).resolve().parents[3]
BROKER_DB = 5  # REDIS_URL's database + 5 (tests/support.py)


@pytest.fixture
def prefork_worker(settings: Any) -> Iterator[redis.Redis]:
    """One worker as production runs it: prefork (one child), the database pool on."""
    if connection.vendor != "postgresql":
        pytest.skip("the connection pool is PostgreSQL's")
    broker = redis_db_url(BROKER_DB)
    clear_broker(broker)
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "contactcentre.settings_test",
        "TEST_CELERY_EAGER": "false",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "DATABASE_POOL": "true",
        "REDIS_URL": broker,
        "CELERY_BROKER_URL": broker,
    }
    command = [
        sys.executable,
        *("-m", "celery", "-A", "contactcentre", "worker", "--queues", "celery"),
        *("--pool", "prefork", "--concurrency", "1", "--loglevel", "ERROR"),
        *("--include", "tests.integration.routing.worker_probe"),
        *("--hostname", f"conn-{os.getpid()}-{time.monotonic_ns()}@%h"),
        "--without-gossip",
        "--without-mingle",
    ]
    with celery_broker(broker, settings):
        worker = subprocess.Popen(command, cwd=ROOT, env=env)
        try:
            deadline = time.monotonic() + 120
            while not app.control.ping(timeout=1.0):
                if worker.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("the worker did not answer")
            client = redis.Redis.from_url(broker)
            try:
                yield client
            finally:
                client.close()
        finally:
            stop_workers([worker])


def _probe(client: redis.Redis) -> tuple[int, int]:
    """Run the probe task on the worker: (the child process, its PostgreSQL backend)."""
    key = f"tests:probe:{uuid.uuid4().hex}"
    app.send_task("tests.worker_probe", args=[key])
    reply = client.blpop([key], timeout=30)
    assert reply is not None, "the probe task did not run"
    process, backend = reply[1].split()
    return int(process), int(backend)


def test_a_worker_child_keeps_its_database_connections_between_tasks(
    prefork_worker: redis.Redis,
) -> None:
    # when one worker child runs tasks in a row
    runs = [_probe(prefork_worker) for _ in range(8)]

    # then the tasks reuse the connections of the child's pool (its idle ones handed out in
    # turn: the two it keeps, and one more it may open while the first two connect), not a new
    # backend per task
    assert len({process for process, _backend in runs}) == 1
    opened = {backend for _process, backend in runs}
    assert len(opened) <= 3

    # and when those connections die between two tasks (PostgreSQL restarted, backends killed)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS t(pid)", [list(opened)]
        )
    time.sleep(0.5)

    # then the next tasks still run, on new connections
    after = [_probe(prefork_worker) for _ in range(2)]
    assert not {backend for _process, backend in after} & opened
