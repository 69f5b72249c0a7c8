"""Celery tasks of the web chat: the e-mailed transcript and the sweep of gone visitors."""

from __future__ import annotations

import smtplib
from typing import Any

from celery import shared_task


@shared_task(bind=True, name="channels_chat.send_transcript", max_retries=4, acks_late=True)
def send_chat_transcript(self: Any, session_id: str, email: str) -> bool:
    """E-mail the conversation to the citizen; retried with back-off while the relay refuses."""
    from .transcript import send_transcript

    try:
        return send_transcript(session_id=session_id, email=email)
    except (OSError, smtplib.SMTPException) as exc:
        if self.request.is_eager or self.request.retries >= self.max_retries:
            return False
        raise self.retry(exc=exc, countdown=min(1800, 60 * 2**self.request.retries)) from exc


@shared_task(
    bind=True, name="channels_chat.send_transcript_confirmation", max_retries=4, acks_late=True
)
def send_chat_transcript_confirmation(self: Any, session_id: str, email: str, url: str) -> bool:
    """E-mail the link that confirms the address before the conversation is sent there."""
    from .transcript import send_confirmation

    try:
        return send_confirmation(session_id=session_id, email=email, url=url)
    except (OSError, smtplib.SMTPException) as exc:
        if self.request.is_eager or self.request.retries >= self.max_retries:
            return False
        raise self.retry(exc=exc, countdown=min(1800, 60 * 2**self.request.retries)) from exc


@shared_task(name="channels_chat.sweep", acks_late=True, ignore_result=True)
def sweep_chats() -> int:
    """Abandon waiting chats whose citizen closed the page and did not come back."""
    from .actions import do_abandon_gone_chats

    return do_abandon_gone_chats()
