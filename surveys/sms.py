"""SMS replies to a survey: "4", "5 merci" answer it; anything else is a normal message.

The SMS ingestion asks :func:`classify_survey_reply` what each received SMS is before it
becomes a message (``channels_inbound.sms.actions.classify_inbound``, through
``INBOUND_CLASSIFIERS``); an answer is handled by :func:`record_survey_reply`
(``INBOUND_HANDLERS``), both registered when the app loads, in the ingestion's transaction,
with the sender's ingestion lock held. STOP and START never get here:
the webhook handles them first (``SmsOptOut``), and a number that sent STOP is never surveyed.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.utils import timezone

from contacts.actions import phone_or_none
from interactions.channels import Channel

from .actions import AlreadyAnswered, SurveyError, address_key, do_answer_survey
from .answers import parse_answer
from .models import SurveyInvitation

if TYPE_CHECKING:
    from channels_inbound.sms.models import InboundSms
    from interactions.models import Message

SURVEY_ANSWER = "survey_answer"


def _phone(raw: str) -> str:
    return phone_or_none(raw) or raw


def _open_invitation(inbound: InboundSms) -> SurveyInvitation | None:
    """The latest survey SMS sent to this number from the number it wrote to, still open."""
    since = timezone.now() - timedelta(seconds=settings.SURVEY_ANSWER_MAX_AGE_SECONDS)
    return (
        SurveyInvitation.objects.filter(
            channel=Channel.SMS,
            status=SurveyInvitation.Status.SENT,
            address=address_key(_phone(inbound.sender)),
            our_address=_phone(inbound.recipient),
            sent_at__gte=since,
        )
        .order_by("-sent_at", "-id")
        .first()
    )


def classify_survey_reply(inbound: InboundSms) -> str | None:
    """``SURVEY_ANSWER`` when the SMS starts with a score 1-5 and a survey awaits one from this
    number; otherwise None (it is an ordinary message)."""
    if parse_answer(inbound.body) is None or _open_invitation(inbound) is None:
        return None
    return SURVEY_ANSWER


def record_survey_reply(inbound: InboundSms) -> Message | None:
    """Record the score (the rest of the text is the comment). No message is created."""
    parsed = parse_answer(inbound.body)
    invitation = _open_invitation(inbound)
    if parsed is None or invitation is None:  # pragma: no cover - classified just before
        return None
    score, comment = parsed
    # Answered meanwhile: impossible under the sender's ingestion lock, harmless anyway.
    with contextlib.suppress(AlreadyAnswered, SurveyError):
        do_answer_survey(invitation_id=invitation.pk, score=score, comment=comment)
    return None


def register() -> None:
    """Plug into the SMS ingestion (``channels_inbound.sms.actions``) when the app loads."""
    from channels_inbound.sms.actions import INBOUND_CLASSIFIERS, INBOUND_HANDLERS

    if classify_survey_reply not in INBOUND_CLASSIFIERS:
        INBOUND_CLASSIFIERS.append(classify_survey_reply)
    INBOUND_HANDLERS[SURVEY_ANSWER] = record_survey_reply
