"""Survey writes: scheduling one survey per interaction when it ends, sending it on the
channel used, and recording the citizen's answer.

- :func:`do_schedule_survey` runs inside the transaction that ends an interaction (a receiver of
  ``interaction_status_changed``): it creates the interaction's one :class:`SurveyInvitation`
  (unique per interaction, so never twice, even when a reopened conversation ends again) and,
  after the commit, a Celery task with the queue's delay as countdown.
- :func:`do_send_survey` (the task, and :func:`do_sweep_surveys`, the beat safety net) locks the
  invitation, skipping one another worker holds, and sends it once: an SMS through
  ``do_send_sms`` (its retries; never to a number that sent STOP), an e-mail with a signed link,
  or the chat window's rating form.
- :func:`do_answer_survey` records the answer once (``supervision.do_record_satisfaction``, the
  CSAT of the reports and the wallboard); a second answer leaves the first as it was.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from interactions.actions import PreparedRows
from interactions.channels import Channel
from interactions.lifecycle import Status
from interactions.models import Interaction
from kernel.errors import ApplicationError, ErrorKind
from supervision.actions import do_record_satisfaction
from supervision.models import SatisfactionResponse

from .models import SurveyInvitation, SurveySettings
from .tokens import make_token

logger = logging.getLogger(__name__)

# Channels asked after the interaction ends (the phone asks during the call: surveys.voice).
FOLLOW_UP_CHANNELS = (Channel.CHAT.value, Channel.SMS.value, Channel.EMAIL.value)
MAX_COMMENT_CHARS = 2000


class SurveyError(ApplicationError):
    """The answer cannot be recorded; ``code`` says why: ``bad_score``, ``not_open`` (never
    sent), ``already_answered``, ``expired`` (410) or ``invalid`` (a link that is not one of
    ours, 404). ``detail`` is for the logs; the messages are the citizen's."""

    kind = ErrorKind.CONFLICT
    kinds = {
        "bad_score": ErrorKind.INVALID,
        "expired": ErrorKind.GONE,
        "invalid": ErrorKind.NOT_FOUND,
    }
    messages = {
        "bad_score": gettext_lazy("Choose a rating from 1 to 5."),
        "already_answered": gettext_lazy("You have already answered this survey. Thank you."),
        "expired": gettext_lazy("This survey has expired."),
    }

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(code)
        self.detail = detail or code


class AlreadyAnswered(SurveyError):
    def __init__(self, response: SatisfactionResponse) -> None:
        self.response = response
        super().__init__("already_answered")


@dataclass(frozen=True)
class Answer:
    invitation: SurveyInvitation
    response: SatisfactionResponse


def address_key(address: str) -> str:
    """What a survey keeps of the number or address it went to: a keyed digest (enough to match
    an SMS reply, not the number itself, so erasing a citizen leaves nothing readable here)."""
    digest = hmac.new(
        settings.SECRET_KEY.encode(), f"surveys:{address.casefold()}".encode(), hashlib.sha256
    )
    return digest.hexdigest()[:40]


# Read at every closing (the queue's settings, one row at most): compiled once.
_SETTINGS = PreparedRows(lambda queue: SurveySettings.objects.filter(queue_id=queue)[:1], "queue")


def settings_for(queue_id: int | None) -> SurveySettings | None:
    if queue_id is None:
        return None
    return _SETTINGS.first(queue=queue_id)


def language_of(interaction: Interaction) -> str:
    code = (interaction.language or "fr")[:2]
    return code if code in ("fr", "en") else "fr"


def question(survey: SurveySettings | None, language: str) -> str:
    """The queue's question in ``language`` (its text, or the standard one)."""
    custom = ""
    if survey is not None:
        custom = survey.question_en if language == "en" else survey.question_fr
    if custom:
        return custom
    with translation.override(language):
        return _("How satisfied are you with the answer you received? Rate it from 1 to 5.")


# --------------------------------------------------------------------------- scheduling


def survey_to_schedule(interaction: Interaction) -> SurveySettings | None:
    """The survey of the ended interaction's queue when it asks one on its channel (one read,
    none for a channel without follow-up or an interaction no agent answered), else None."""
    if interaction.channel not in FOLLOW_UP_CHANNELS or interaction.assigned_at is None:
        return None
    survey = _loaded_settings(interaction)
    if survey is False:
        survey = settings_for(interaction.queue_id)
    if survey is None or not survey.on(interaction.channel):
        return None
    return survey


def _loaded_settings(interaction: Interaction) -> SurveySettings | Literal[False] | None:
    """The settings of the interaction's queue read with it in this transaction
    (``select_related("queue__survey_settings")``, the console's closing), None when it has
    none, False when they were not read."""
    if interaction.queue_id is None:
        return None
    if not type(interaction).queue.is_cached(interaction):
        return False
    queue = interaction.queue
    if queue is None or not type(queue).survey_settings.is_cached(queue):
        return False
    try:
        return queue.survey_settings
    except SurveySettings.DoesNotExist:
        return None


def do_schedule_survey(
    *, interaction: Interaction, now: datetime, survey: SurveySettings | None = None
) -> SurveyInvitation | None:
    """The interaction has ended: schedule its survey when its queue asks one on its channel
    (``survey``: those settings, when the caller read them with :func:`survey_to_schedule`).

    Only an interaction an agent answered is surveyed (an abandoned one was not served).
    Returns the new invitation, or None (no survey, or one already exists)."""
    if survey is None:
        survey = survey_to_schedule(interaction)
        if survey is None:
            return None
    delay = 0 if interaction.channel == Channel.CHAT else survey.delay_seconds
    invitation, created = SurveyInvitation.objects.get_or_create(
        interaction=interaction,
        defaults={
            "channel": interaction.channel,
            "language": language_of(interaction),
            "due_at": now + timedelta(seconds=delay),
        },
    )
    if not created:
        return None
    transaction.on_commit(lambda: enqueue_send(invitation.pk, delay))
    return invitation


def enqueue_send(invitation_id: int, countdown: float) -> None:
    """Queue the sending task ``countdown`` seconds from now. A delay the broker cannot hold
    (over ``CELERY_LONGEST_COUNTDOWN_SECONDS``), or eager tasks (which ignore countdowns), leave
    it to the sweep."""
    from .tasks import send_survey

    eager = settings.CELERY_TASK_ALWAYS_EAGER
    if countdown > settings.CELERY_LONGEST_COUNTDOWN_SECONDS or (eager and countdown > 0):
        return
    try:
        send_survey.apply_async((invitation_id,), countdown=countdown)
    except Exception:  # the broker is down: the sweep sends it
        logger.warning("could not queue survey #%s; the sweep will send it", invitation_id)


# --------------------------------------------------------------------------- sending


def do_send_survey(*, invitation_id: int, now: datetime | None = None) -> SurveyInvitation | None:
    """Send a due survey once. Returns it (sent or skipped with its reason), or None when it is
    not due, already handled or held by another worker. An e-mail the relay refuses raises
    (``OSError``/``SMTPException``): nothing is marked, the task retries."""
    now = now or timezone.now()
    with transaction.atomic():
        invitation = (
            SurveyInvitation.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("interaction__queue", "interaction__organisation")
            .filter(pk=invitation_id, status=SurveyInvitation.Status.SCHEDULED, due_at__lte=now)
            .first()
        )
        if invitation is None:
            return None
        if (now - invitation.due_at).total_seconds() > settings.SURVEY_ANSWER_MAX_AGE_SECONDS:
            return _skip(invitation, "too_late")
        survey = settings_for(invitation.interaction.queue_id)
        if survey is None or not survey.on(invitation.channel):
            return _skip(invitation, "survey_off")
        text = question(survey, invitation.language)
        send = {Channel.SMS: _send_sms, Channel.EMAIL: _send_email, Channel.CHAT: _send_chat}[
            Channel(invitation.channel)
        ]
        reason = send(invitation, text)
        if reason:
            return _skip(invitation, reason)
        invitation.status = SurveyInvitation.Status.SENT
        invitation.sent_at = now
        invitation.save(update_fields=["status", "sent_at", "address", "our_address"])
    return invitation


def _skip(invitation: SurveyInvitation, reason: str) -> SurveyInvitation:
    invitation.status = SurveyInvitation.Status.SKIPPED
    invitation.reason = reason[:200]
    invitation.save(update_fields=["status", "reason"])
    logger.info("survey #%s not sent: %s", invitation.pk, reason)
    return invitation


def _send_sms(invitation: SurveyInvitation, text: str) -> str:
    """Through the SMS reply path (recorded on the interaction, sent with its retries)."""
    from channels_inbound.sms.actions import SmsError, do_send_sms

    with translation.override(invitation.language):
        body = text + " " + _("Reply with a number from 1 to 5.")
    try:
        outbound = do_send_sms(interaction=invitation.interaction, text=body)
    except SmsError as exc:  # opted_out, no_recipient, no_number...
        return exc.code
    invitation.address, invitation.our_address = address_key(outbound.to), outbound.from_number
    return ""


def citizen_email(interaction: Interaction) -> tuple[str, str]:
    """(the citizen's address, ours) of an e-mail conversation: its last inbound message's."""
    from channels_inbound.email.models import EmailThreadEntry

    row = (
        EmailThreadEntry.objects.filter(
            interaction=interaction, direction=EmailThreadEntry.Direction.INBOUND
        )
        .exclude(citizen_address="")
        .order_by("-id")
        .values_list("citizen_address", "our_address")
        .first()
    )
    return (row[0], row[1]) if row else ("", "")


def answer_url(invitation: SurveyInvitation) -> str:
    return str(settings.PUBLIC_BASE_URL).rstrip("/") + reverse(
        "survey-answer", args=[make_token(invitation.pk)]
    )


def _send_email(invitation: SurveyInvitation, text: str) -> str:
    interaction = invitation.interaction
    address, ours = citizen_email(interaction)
    if not address:
        return "no_address"
    if not settings.PUBLIC_BASE_URL:
        return "no PUBLIC_BASE_URL for the link"
    days = max(1, settings.SURVEY_ANSWER_MAX_AGE_SECONDS // 86400)
    with translation.override(invitation.language):
        name = interaction.organisation.name
        subject = _("Your opinion on our answer (%(name)s)") % {"name": name}
        body = "\n\n".join(
            [
                _("Hello,"),
                _("You recently contacted %(name)s by e-mail.") % {"name": name},
                text,
                _("Give your answer on this page (one click, no account needed):"),
                answer_url(invitation),
                _("This link is valid for %(days)s days. Please do not reply to this e-mail.")
                % {"days": days},
            ]
        )
    EmailMessage(
        subject=subject, body=body, from_email=settings.DEFAULT_FROM_EMAIL, to=[address]
    ).send()
    invitation.address, invitation.our_address = address_key(address), ours
    return ""


def _send_chat(invitation: SurveyInvitation, text: str) -> str:
    """The rating form, in the citizen's chat window (every open tab of the session)."""
    from channels_inbound.chat.events import chat_group
    from channels_inbound.chat.models import ChatSession
    from kernel import event_catalogue
    from kernel.events import publish

    sessions = list(
        ChatSession.objects.filter(interaction_id=invitation.interaction_id).values_list(
            "pk", "language"
        )
    )
    if not sessions:
        return "no_chat_session"
    invitation.language = sessions[-1][1] if sessions[-1][1] in ("fr", "en") else "fr"
    publish(
        *event_catalogue.chat_survey(
            survey=chat_survey_frame(
                invitation,
                question(settings_for(invitation.interaction.queue_id), invitation.language),
            )
        ),
        groups=[chat_group(pk) for pk, _language in sessions],
        persist=False,
    )
    return ""


def score_labels() -> list[str]:
    """What each score means, 1 to 5, in the active language (read by screen readers)."""
    return [
        _("1 out of 5: very dissatisfied"),
        _("2 out of 5: dissatisfied"),
        _("3 out of 5: neither satisfied nor dissatisfied"),
        _("4 out of 5: satisfied"),
        _("5 out of 5: very satisfied"),
    ]


def chat_survey_frame(invitation: SurveyInvitation, text: str) -> dict[str, object]:
    """What the widget needs to show the rating form: where to post and its text."""
    with translation.override(invitation.language):
        return {
            "path": reverse("survey-chat-answer", args=[make_token(invitation.pk)]),
            "question": text,
            "strings": {
                "scores": score_labels(),
                "comment_label": _("Your comment (optional)"),
                "send": _("Send my rating"),
                "thanks": _("Thank you for your answer."),
                "required": str(SurveyError.messages["bad_score"]),
                "already": str(SurveyError.messages["already_answered"]),
                "expired": str(SurveyError.messages["expired"]),
                "error": _("Your answer could not be sent. Please try again."),
            },
        }


def open_chat_survey(interaction_id: int | None) -> dict[str, object] | None:
    """The rating form a reloaded chat window shows again: its survey was shown, is not
    answered and has not expired (None otherwise)."""
    if interaction_id is None:
        return None
    invitation = (
        SurveyInvitation.objects.select_related("interaction")
        .filter(
            interaction_id=interaction_id, channel=Channel.CHAT, status=SurveyInvitation.Status.SENT
        )
        .first()
    )
    if invitation is None or invitation.sent_at is None:
        return None
    age = (timezone.now() - invitation.sent_at).total_seconds()
    if age > settings.SURVEY_ANSWER_MAX_AGE_SECONDS:
        return None
    text = question(settings_for(invitation.interaction.queue_id), invitation.language)
    return chat_survey_frame(invitation, text)


def do_sweep_surveys(*, now: datetime | None = None, limit: int = 500) -> int:
    """Safety net (Celery beat / the embedded scheduler): send the due surveys whose task was
    lost or never queued (long delays, eager tasks). Returns how many were handled."""
    now = now or timezone.now()
    due = list(
        SurveyInvitation.objects.filter(status=SurveyInvitation.Status.SCHEDULED, due_at__lte=now)
        .order_by("due_at", "id")
        .values_list("pk", flat=True)[:limit]
    )
    return sum(1 for pk in due if do_send_survey(invitation_id=pk, now=now) is not None)


# --------------------------------------------------------------------------- answering


def do_answer_survey(
    *,
    invitation_id: int,
    score: int,
    comment: str = "",
    now: datetime | None = None,
) -> Answer:
    """Record the citizen's answer once. Raises :class:`AlreadyAnswered` (with the first
    answer, which stays), or :class:`SurveyError`: ``bad_score``, ``expired`` (older than
    ``SURVEY_ANSWER_MAX_AGE_SECONDS``), ``not_open`` (never sent)."""
    now = now or timezone.now()
    if not isinstance(score, int) or not 1 <= score <= 5:
        raise SurveyError("bad_score", "a rating is a whole number from 1 to 5")
    with transaction.atomic():
        invitation = (
            SurveyInvitation.objects.select_for_update(of=("self",))
            .select_related("interaction__queue")
            .get(pk=invitation_id)
        )
        existing = SatisfactionResponse.objects.filter(
            interaction_id=invitation.interaction_id
        ).first()
        if existing is not None:
            raise AlreadyAnswered(existing)
        if invitation.status != SurveyInvitation.Status.SENT or invitation.sent_at is None:
            raise SurveyError("not_open", "this survey was not sent")
        age = (now - invitation.sent_at).total_seconds()
        if age > settings.SURVEY_ANSWER_MAX_AGE_SECONDS:
            raise SurveyError("expired", "this survey has expired")
        response = do_record_satisfaction(
            interaction=invitation.interaction,
            score=score,
            comment=comment.strip()[:MAX_COMMENT_CHARS],
            now=now,
        )
        invitation.status = SurveyInvitation.Status.ANSWERED
        invitation.answered_at = now
        invitation.save(update_fields=["status", "answered_at"])
    return Answer(invitation, response)


def do_open_voice_survey(*, interaction: Interaction, now: datetime) -> SurveyInvitation | None:
    """The caller is about to hear the post-call survey: its invitation, marked sent (None
    when the interaction already had one: at most one survey per interaction)."""
    invitation, created = SurveyInvitation.objects.get_or_create(
        interaction=interaction,
        defaults={
            "channel": Channel.VOICE,
            "language": language_of(interaction),
            "due_at": now,
            "sent_at": now,
            "status": SurveyInvitation.Status.SENT,
        },
    )
    return invitation if created else None


def ended(interaction: Interaction, to_status: str) -> bool:
    """Has the conversation ended for the citizen? Closed; for a chat, also its wrap-up (the
    citizen is still in the window, the agent writes their notes)."""
    return to_status == Status.CLOSED or (
        interaction.channel == Channel.CHAT and to_status == Status.WRAP_UP
    )
