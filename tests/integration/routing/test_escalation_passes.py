"""With a broker, queueing an interaction schedules a routing pass for each escalation step."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from configuration.models import EscalationStep
from contactcentre.celery import ROUTE_QUEUE
from tests.support import celery_broker, clear_broker, redis_db_url

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]

BROKER_DB = 3  # REDIS_URL's database + 3 (tests/support.py)


def test_a_pass_is_scheduled_at_each_step(settings: Any, queue: Any, arrive: Any) -> None:
    import redis

    broker = redis_db_url(BROKER_DB)
    client = redis.Redis.from_url(broker)
    clear_broker(broker)
    with celery_broker(broker, settings):
        # given a queue that relaxes its requirements after 30 s and 90 s
        q = queue("sejour", {"sejour": 4})
        EscalationStep.objects.create(queue=q, after_seconds=30, min_level_cap=2)
        EscalationStep.objects.create(queue=q, after_seconds=90, any_agent_of_team=True)

        # when an interaction is queued (the on-commit hooks run: transactional test)
        arrive(q)

    # then the broker holds passes due at the steps (plus the immediate one)
    messages = [json.loads(raw) for raw in client.lrange(ROUTE_QUEUE, 0, -1)]
    assert {m["headers"]["task"] for m in messages} == {"routing.route_pending"}
    etas = sorted(m["headers"]["eta"] for m in messages if m["headers"].get("eta"))
    assert len(etas) == 2
    body = json.loads(base64.b64decode(messages[0]["body"]))
    assert body[0] == []  # no arguments: a pass reads everything from the database
