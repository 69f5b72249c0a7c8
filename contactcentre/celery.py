"""The Celery application.

With ``REDIS_URL`` set, a worker (``celery -A contactcentre worker``) and beat
(``celery -A contactcentre beat``) run as their own processes. Without it, tasks run eagerly in
the calling process and :mod:`contactcentre.embedded` runs the periodic schedule in a thread.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "contactcentre.settings")

app = Celery("contactcentre")
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
# Outbound provider work (call bridging, SMS sending, fetching MMS and voicemail media) has its
# own queue, so a slow or stalled provider can never hold the workers that ingest and route
# (docs/operations.md: run a worker with ``-Q outbound``). Every other task stays on the default
# queue.
OUTBOUND_QUEUE = "outbound"
app.conf.task_routes = {
    "channels_voice.bridge_call": {"queue": OUTBOUND_QUEUE},
    "channels_sms.send_outbound": {"queue": OUTBOUND_QUEUE},
    "channels_media.fetch": {"queue": OUTBOUND_QUEUE},
}
# CELERY_TIMEZONE is not set: Celery then follows Django's TIME_ZONE.
# CELERY_BROKER_TRANSPORT_OPTIONS (the visibility timeout) comes from settings: it must exceed
# the longest countdown any task is scheduled with (contactcentre/settings.py says which).
app.autodiscover_tasks()
