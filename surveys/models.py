"""Satisfaction surveys: what each queue asks (:class:`SurveySettings`) and, per interaction,
the one survey sent after it ended (:class:`SurveyInvitation`).

The answer itself is a ``supervision.SatisfactionResponse`` (one per interaction, by
constraint), the row the supervisors' reports and the wallboard already count as CSAT.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from interactions.channels import Channel


class SurveySettings(models.Model):
    """The satisfaction survey of one queue: on or off, per channel, its delay and its text."""

    queue = models.OneToOneField(
        "configuration.Queue",
        verbose_name=_("queue"),
        on_delete=models.CASCADE,
        related_name="survey_settings",
    )
    enabled = models.BooleanField(_("survey on"), default=False)
    on_chat = models.BooleanField(_("web chat"), default=True)
    on_sms = models.BooleanField(_("SMS"), default=True)
    on_email = models.BooleanField(_("e-mail"), default=True)
    on_voice = models.BooleanField(_("phone (after the call)"), default=True)
    delay_seconds = models.PositiveIntegerField(
        _("delay after closing (seconds)"),
        default=600,
        help_text=_(
            "SMS and e-mail go this long after the interaction closed; the chat asks at once."
        ),
    )
    question_fr = models.CharField(
        _("question in French"),
        max_length=300,
        blank=True,
        help_text=_("Empty: the standard question."),
    )
    question_en = models.CharField(
        _("question in English"),
        max_length=300,
        blank=True,
        help_text=_("Empty: the standard question."),
    )

    class Meta:
        verbose_name = _("satisfaction survey settings")
        verbose_name_plural = _("satisfaction survey settings")

    def __str__(self) -> str:
        return str(self.queue)

    def on(self, channel: str) -> bool:
        return self.enabled and bool(getattr(self, f"on_{channel}", False))


class SurveyInvitation(models.Model):
    """The survey of one interaction: at most one, by constraint (``interaction`` is unique)."""

    class Status(models.TextChoices):
        SCHEDULED = "scheduled", _("scheduled")
        SENT = "sent", pgettext_lazy("survey status", "sent")
        ANSWERED = "answered", pgettext_lazy("survey status", "answered")
        SKIPPED = "skipped", _("not sent")

    interaction = models.OneToOneField(
        "interactions.Interaction",
        verbose_name=_("interaction"),
        on_delete=models.CASCADE,
        related_name="survey_invitation",
    )
    channel = models.CharField(_("channel"), max_length=8)
    language = models.CharField(_("language"), max_length=8, default="fr")
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.SCHEDULED
    )
    # Why it was not sent (opted_out, no_address, ...), or why sending failed.
    reason = models.CharField(_("reason"), max_length=200, blank=True)
    # A keyed digest of the citizen's number or address (actions.address_key: an SMS reply is
    # matched on it and on our number), never the number itself.
    address = models.CharField(_("sent to"), max_length=254, blank=True)
    our_address = models.CharField(_("sent from"), max_length=254, blank=True)
    due_at = models.DateTimeField(_("due at"))
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    answered_at = models.DateTimeField(
        pgettext_lazy("survey", "answered at"), null=True, blank=True
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("survey invitation")
        verbose_name_plural = _("survey invitations")
        ordering = ["-id"]
        indexes = [
            models.Index(
                fields=["due_at"],
                condition=models.Q(status="scheduled"),
                name="survey_invitation_due_idx",
            ),
            models.Index(
                fields=["address", "sent_at"],
                condition=models.Q(status="sent", channel=Channel.SMS),
                name="survey_invitation_sms_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.interaction_id} ({self.channel}, {self.status})"
