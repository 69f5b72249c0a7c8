"""A Celery worker survives a restart of its broker (Redis) while it holds a countdown task.

With celery 5.7.0 the worker died here: on the connection loss it closed the broken connection,
the Redis channel's close restored the held (unacknowledged, ``task_acks_late``) countdown
message through a transport whose connection info was already gone, and the resulting
``AttributeError`` ("'NoneType' object has no attribute 'hostname'") was an "Unrecoverable
error": exit 1, nothing ingested until a supervisor restarted it. pyproject.toml keeps celery
below 5.7 for this (docs/operations.md, "Redis restarted").

The test runs its OWN redis-server on a spare loopback port (never the machine's): it kills it
and starts it again, empty, on the same port, as bench/chaos.py does.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from channels_inbound.models import Endpoint
from channels_inbound.sms.models import InboundSms
from channels_inbound.sms.tasks import ingest_pending_sms
from configuration.models import Queue
from contactcentre.celery import app
from interactions.models import Message
from tests.integration.test_events_redis_restart import PrivateRedis, _free_port
from tests.support import celery_broker, reset_celery_connections, start_workers, stop_workers

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

NUMBER = "+33900000077"


@pytest.fixture
def own_redis() -> Iterator[PrivateRedis]:
    # Never skipped: the worker's broker must be a Redis this test may kill.
    assert shutil.which("redis-server"), "redis-server is not installed (this test needs it)"
    server = PrivateRedis(_free_port())
    server.start()
    yield server  # pytest resumes here after the test whatever its outcome
    server.kill()


def _until(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.3)
    return condition()


def _scheduled_ids() -> set[str]:
    replies = app.control.inspect(timeout=1.0).scheduled() or {}
    return {entry["request"]["id"] for entries in replies.values() for entry in entries}


@pytest.mark.django_db(transaction=True)
def test_a_worker_holding_a_countdown_task_survives_a_redis_restart(
    own_redis: PrivateRedis, settings: Any
) -> None:
    queue = Queue.objects.create(code="restart", name="Restart")
    Endpoint.objects.create(channel="sms", address=NUMBER, name="SMS", queue=queue)
    with celery_broker(own_redis.url, settings):
        [worker] = start_workers(1, own_redis.url)
        try:
            # given a worker holding a countdown task (reserved, not acknowledged: acks_late)
            held = ingest_pending_sms.apply_async(countdown=120)
            assert _until(lambda: held.id in _scheduled_ids(), 15), "the worker never held it"

            # when Redis is killed and starts again (empty) on the same port
            own_redis.kill()
            own_redis.start()
            reset_celery_connections()
            time.sleep(1)  # the worker notices the lost connection

            # then the worker is still running, reconnects and runs a task sent after the restart
            assert worker.poll() is None, f"the worker exited (code {worker.returncode})"
            sms = InboundSms.objects.create(
                provider="twilio",
                message_sid="SM" + "7" * 32,
                sender="+33612345678",
                recipient=NUMBER,
                body="Bonjour après le redémarrage",
            )
            ingest_pending_sms.delay()

            def ingested() -> bool:
                sms.refresh_from_db()
                return sms.state == InboundSms.State.INGESTED

            assert _until(ingested, 30), f"not ingested after the restart: {sms.state}"
            assert Message.objects.get(provider_id=sms.message_sid).text == sms.body
            assert worker.poll() is None, f"the worker exited (code {worker.returncode})"
        finally:
            stop_workers([worker])
