"""The Celery application.

With ``REDIS_URL`` set, a worker (``celery -A contactcentre worker``) and beat
(``celery -A contactcentre beat``) run as their own processes. Without it, tasks run eagerly in
the calling process and :mod:`contactcentre.embedded` runs the periodic schedule in a thread.
"""

import os
from typing import Any

from celery import Celery, signals
from celery.fixups.django import DjangoFixup

from kernel.logs import connect_celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "contactcentre.settings")

app = Celery("contactcentre")
# Structured logs: the request id handed to the tasks a request enqueues, one line per task
# run, and Django's LOGGING in workers and beat instead of Celery's own (kernel/logs.py).
connect_celery()
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    task_eager_propagates=True,
    broker_connection_retry_on_startup=True,
    enable_utc=True,
)
from kernel.queues import (  # noqa: E402
    DEFAULT_QUEUE,
    INGEST_QUEUE,
    OUTBOUND_QUEUE,
    REPORTS_QUEUE,
    ROUTE_QUEUE,
)

app.conf.task_default_queue = DEFAULT_QUEUE
app.conf.task_routes = {
    "channels_sms.ingest_pending": {"queue": INGEST_QUEUE},
    "channels_sms.sweep_inbound": {"queue": INGEST_QUEUE},
    "channels_email.imap_poll": {"queue": INGEST_QUEUE},
    "routing.*": {"queue": ROUTE_QUEUE},
    "channels_voice.bridge_call": {"queue": OUTBOUND_QUEUE},
    "channels_voice.check_bridge": {"queue": OUTBOUND_QUEUE},
    "channels_sms.send_outbound": {"queue": OUTBOUND_QUEUE},
    "channels_email.send_message": {"queue": OUTBOUND_QUEUE},
    "channels_chat.send_transcript": {"queue": OUTBOUND_QUEUE},
    "channels_chat.send_transcript_confirmation": {"queue": OUTBOUND_QUEUE},
    "channels_media.fetch": {"queue": OUTBOUND_QUEUE},
    "surveys.send": {"queue": OUTBOUND_QUEUE},
    "webhooks.deliver": {"queue": OUTBOUND_QUEUE},
    "supervision.*": {"queue": REPORTS_QUEUE},
}
# CELERY_TIMEZONE is not set: Celery then follows Django's TIME_ZONE.
# CELERY_BROKER_TRANSPORT_OPTIONS (the visibility timeout) comes from settings: it must exceed
# the longest countdown any task is scheduled with (contactcentre/settings.py says which).
app.autodiscover_tasks()


def _release_connections(**_: Any) -> None:
    """At a task's start and end: what Django does at a request's (``close_old_connections``).
    A pooled connection goes back to this process's pool, which stays open; a broken one, or
    one past ``CONN_MAX_AGE`` without a pool, is closed."""
    from django.db import close_old_connections

    close_old_connections()


@signals.worker_init.connect(weak=False)
def keep_database_pools(**_: Any) -> None:
    """Keep each worker process's database pool from one task to the next.

    Celery's Django fixup (celery 5.6) closes every connection *and its pool* before and after
    each task in a prefork child (celery/celery#10554): every task then opened a new pool, i.e.
    two new PostgreSQL connections (a backend started, authenticated, its catalogue caches
    cold) and the pool's threads. In the live loop that was about half of a routing task's
    time and most of PostgreSQL's CPU per contact (docs/benchmarks.md, "Loop"). The task
    boundaries now release connections as a web request does; the pool inherited at fork is
    still closed in each child (the fixup's ``on_worker_process_init``, unchanged)."""
    for fixup in getattr(app, "_fixups", None) or ():
        if isinstance(fixup, DjangoFixup):
            fixup.worker_fixup.close_database = _release_connections
