"""Helpers for tests that need real Celery workers on a real Redis broker."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[1]


def redis_db_url(offset: int = 0) -> str:
    """A Redis database for a test, picked from configuration, never a fixed number.

    ``offset=0`` is this run's own database (``REDIS_URL``'s). A test whose broker must hold
    nothing of another test's (a worker of an earlier test still draining, messages read back
    from the broker) takes the database ``offset`` after it, wrapping around the server's
    databases (16 unless the server says otherwise): a run's extra databases move with its
    ``REDIS_URL`` (the offsets in use are 1 to 7: runs 8 databases apart never meet). Nothing is
    flushed: see :func:`clear_broker`.
    """
    parts = urlsplit(settings.REDIS_URL)
    if not offset:
        return settings.REDIS_URL
    base = int(parts.path.strip("/") or 0)
    number = (base + offset) % _database_count(settings.REDIS_URL)
    return urlunsplit(parts._replace(path=f"/{number}"))


def _database_count(url: str) -> int:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        answer: dict[str, Any] = client.config_get("databases")  # type: ignore[assignment]
        return int(answer.get("databases") or 16)
    except redis.RedisError:  # CONFIG refused (managed Redis): the server default
        return 16
    finally:
        client.close()


def broker_keys() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(key names, key patterns) that a test's Celery broker, its workers and the tasks'
    coalescing flags create in Redis: the queues (and their priority lists), kombu's exchange
    bindings, the unacknowledged messages, task results, the routing pass and SMS ingestion
    flags."""
    from channels_inbound.sms.actions import INGEST_QUEUED_KEY
    from kernel.queues import QUEUES
    from routing.triggers import PASS_AGAIN_KEY, PASS_QUEUED_KEY, PASS_RUNNING_KEY

    names = (
        *QUEUES,
        "unacked",
        "unacked_index",
        "unacked_mutex",
        PASS_QUEUED_KEY,
        PASS_RUNNING_KEY,
        PASS_AGAIN_KEY,
        INGEST_QUEUED_KEY,
    )
    patterns = (
        "_kombu.*",  # exchange bindings (kombu 5.5: also _kombu.binding_permanent.*, ...deadlines)
        "*.reply.celery.pidbox",  # replies to a ping
        "celery-task-meta-*",
        *(f"{q}\x06\x16*" for q in QUEUES),  # a queue's priority lists
    )
    return names, patterns


def clear_broker(url: str) -> int:
    """Delete the keys of :func:`broker_keys` in the database at ``url``, and nothing else
    (never FLUSHDB: the database may hold a developer's data). Returns how many went."""
    import redis

    names, patterns = broker_keys()
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        keys: set[str | bytes] = set(names)
        for pattern in patterns:
            keys.update(client.scan_iter(match=pattern, count=1000))
        return int(client.delete(*keys))
    finally:
        client.close()


def reset_celery_connections() -> None:
    """Forget pooled broker connections so the next publish uses ``app.conf.broker_url``."""
    from contactcentre.celery import app

    # Only drop the references: kombu keeps one pool per broker URL in a global registry and
    # hands it back when a test returns to that URL, so closing it would break later tests.
    # (The coalescing flags' Redis client is one per URL: kernel.triggers.)
    app._pool = None  # type: ignore[attr-defined]
    app.amqp._producer_pool = None  # type: ignore[attr-defined]


@contextmanager
def celery_broker(url: str, django_settings: Any) -> Iterator[None]:
    """Publish this test's tasks to a real broker at ``url`` (not eagerly)."""
    from contactcentre.celery import app

    old = (app.conf.task_always_eager, app.conf.broker_url)
    django_settings.CELERY_TASK_ALWAYS_EAGER = False
    django_settings.CELERY_EMBEDDED = False
    django_settings.REDIS_URL = url
    # celery < 5.7 reads the Django setting (CELERY_BROKER_URL) before app.conf's broker_url
    django_settings.CELERY_BROKER_URL = url
    app.conf.update(task_always_eager=False, broker_url=url)
    reset_celery_connections()
    try:
        yield
    finally:
        app.conf.update(task_always_eager=old[0], broker_url=old[1])
        reset_celery_connections()


def start_workers(
    count: int,
    broker: str,
    *,
    extra_env: dict[str, str] | None = None,
    log_file: Path | None = None,
    loglevel: str = "ERROR",
) -> Any:
    """Start ``count`` real Celery worker processes on ``broker``, using the test database.

    Returns the processes once every worker answers a ping (60 s at most).
    """
    from django.db import connection

    from contactcentre.celery import app
    from kernel.queues import QUEUES

    db = connection.settings_dict
    database_url = (
        f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
        if settings.IS_POSTGRES
        else os.environ.get("DATABASE_URL", "")
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "contactcentre.settings_test",
        "TEST_CELERY_EAGER": "false",
        "DATABASE_URL": database_url,
        "REDIS_URL": broker,
        "CELERY_BROKER_URL": broker,
        **(extra_env or {}),
    }
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "contactcentre",
                "worker",
                "--queues",
                ",".join(QUEUES),  # every queue a task is routed to (contactcentre/celery.py)
                "--pool",
                "solo",
                "--loglevel",
                loglevel,
                "--hostname",
                f"w{i}-{os.getpid()}-{time.monotonic_ns()}@%h",
                "--without-gossip",
                "--without-mingle",
            ],
            cwd=ROOT,
            env=env,
            # the workers' log lines (stdout and stderr) in that file, else the test's output
            stdout=log_file.open("a") if log_file is not None else None,
            stderr=subprocess.STDOUT if log_file is not None else None,
        )
        for i in range(count)
    ]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if len(app.control.ping(timeout=1.0) or []) >= count:
            return processes
        if any(p.poll() is not None for p in processes):
            break
    stop_workers(processes)
    pytest.fail(f"{count} Celery workers did not all answer on {broker}")


def stop_workers(processes: list[Any]) -> None:
    for p in processes:
        if p.poll() is None:
            p.terminate()
    for p in processes:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
