"""Survey tasks: each calls an action and is idempotent (``acks_late`` safe)."""

from __future__ import annotations

import smtplib
from typing import Any

from celery import shared_task

from . import actions


@shared_task(bind=True, name="surveys.send", acks_late=True, max_retries=5)
def send_survey(self: Any, invitation_id: int) -> bool:
    """Send one survey when due; an e-mail relay refusing it is retried with back-off."""
    try:
        return actions.do_send_survey(invitation_id=invitation_id) is not None
    except (OSError, smtplib.SMTPException) as exc:
        if self.request.is_eager or self.request.retries >= self.max_retries:
            return False  # still scheduled: the sweep tries again
        raise self.retry(exc=exc, countdown=min(1800, 60 * 2**self.request.retries)) from exc


@shared_task(name="surveys.sweep", acks_late=True)
def sweep_surveys() -> int:
    """Safety net: send the due surveys whose task was lost or never queued."""
    return actions.do_sweep_surveys()
