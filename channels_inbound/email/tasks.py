"""Celery tasks of the e-mail channel: thin interfaces over the services (idempotent)."""

from __future__ import annotations

import smtplib
from typing import Any

from celery import shared_task


@shared_task(bind=True, name="channels_email.send_message", max_retries=6, acks_late=True)
def send_email_message(self: Any, message_id: int) -> bool:
    """Send a recorded outbound e-mail; retried with back-off while the relay refuses."""
    from .outbound import mark_failed, send_outbound_message

    try:
        return send_outbound_message(message_id)
    except (OSError, smtplib.SMTPException) as exc:
        if self.request.is_eager or self.request.retries >= self.max_retries:
            mark_failed(message_id, repr(exc)[:200])
            return False
        raise self.retry(exc=exc, countdown=min(3600, 30 * 2**self.request.retries)) from exc


@shared_task(name="channels_email.imap_poll", acks_late=True, ignore_result=True)
def imap_poll() -> int:
    """Read new mail from the configured IMAP mailbox (the beat entry when IMAP_HOST is set)."""
    from .imap import ImapSettings, poll_mailbox

    config = ImapSettings.from_settings()
    if config is None:
        return 0
    return poll_mailbox(config).ingested
