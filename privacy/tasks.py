"""The nightly retention purge (CELERY_BEAT_SCHEDULE "privacy-purge", and the embedded
scheduler on the default install)."""

from __future__ import annotations

from celery import shared_task

from .retention import purge as run_purge


@shared_task(name="privacy.purge", ignore_result=True)
def purge() -> int:
    return sum(line.count for line in run_purge())
