"""A task for tests/integration/routing/test_worker_connections.py, imported by the worker it
starts (``celery worker --include``): it notes which process ran it and on which PostgreSQL
backend, in a Redis list."""

from __future__ import annotations

import os

from celery import shared_task


@shared_task(name="tests.worker_probe")
def worker_probe(key: str) -> None:
    from django.db import connection

    from kernel.triggers import redis_client

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (backend,) = cursor.fetchone()
    redis_client().rpush(key, f"{os.getpid()} {backend}")
