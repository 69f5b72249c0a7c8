"""Celery tasks of the e-mail channel: thin interfaces over the services (idempotent)."""

from __future__ import annotations

import smtplib
from typing import Any

from celery import shared_task


@shared_task(bind=True, name="channels_email.send_message", max_retries=None, acks_late=True)
def send_email_message(self: Any, message_id: int) -> bool:
    """Send a recorded outbound e-mail; retried with back-off while the relay refuses, like SMS
    (``OUTBOUND_MAX_ATTEMPTS``, ``OUTBOUND_RETRY_BACKOFF_S``; eagerly: one after the other)."""
    from django.conf import settings

    from channels_inbound.providers import outbound_retry_countdown as retry_countdown

    from .outbound import mark_failed, note_retry, send_outbound_message

    attempt = self.request.retries + 1
    while True:
        try:
            return send_outbound_message(message_id)
        except (OSError, smtplib.SMTPException) as exc:
            if attempt >= settings.OUTBOUND_MAX_ATTEMPTS:
                mark_failed(message_id, repr(exc)[:200], attempts=attempt)
                return False
            countdown = retry_countdown(attempt)
            note_retry(message_id, attempt=attempt, countdown=countdown, error=repr(exc)[:200])
            if not self.request.is_eager:
                raise self.retry(exc=exc, countdown=countdown) from exc
            attempt += 1


@shared_task(name="channels_email.imap_poll", acks_late=True, ignore_result=True)
def imap_poll() -> int:
    """Read new mail from the configured IMAP mailbox (the beat entry when IMAP_HOST is set)."""
    from .imap import ImapSettings, poll_mailbox

    config = ImapSettings.from_settings()
    if config is None:
        return 0
    return poll_mailbox(config).ingested
