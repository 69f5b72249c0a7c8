"""SMS: what the provider delivered, who opted out, what we sent and how it went.

:class:`InboundSms` is written first, in the webhook request, with a unique constraint on the
provider's message id: a retried or concurrent delivery of the same ``MessageSid`` creates
nothing. The rest (citizen, interaction, routing) happens after the commit, in a task.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class InboundSms(models.Model):
    class State(models.TextChoices):
        RECEIVED = "received", _("received")
        INGESTED = "ingested", _("recorded")
        OPT_OUT = "opt_out", _("opt-out")
        OPT_IN = "opt_in", _("opt-in")
        FAILED = "failed", _("failed")

    provider = models.CharField(_("provider"), max_length=16)
    message_sid = models.CharField(_("provider id"), max_length=64)
    account_sid = models.CharField(_("account"), max_length=64, blank=True)
    sender = models.CharField(_("from"), max_length=64)
    recipient = models.CharField(_("to"), max_length=64)
    body = models.TextField(_("text"), blank=True)
    media = models.JSONField(_("media"), default=list, blank=True)
    state = models.CharField(
        _("state"), max_length=10, choices=State.choices, default=State.RECEIVED
    )
    error = models.TextField(_("error"), blank=True)
    message = models.ForeignKey(
        "interactions.Message",
        verbose_name=_("message"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    received_at = models.DateTimeField(_("received at"), default=timezone.now)
    processed_at = models.DateTimeField(_("processed at"), null=True, blank=True)

    class Meta:
        verbose_name = _("received SMS")
        verbose_name_plural = _("received SMS")
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "message_sid"], name="inbound_sms_sid_unique"
            ),
        ]
        indexes = [
            models.Index(
                fields=["received_at"],
                condition=models.Q(state="received"),
                name="inbound_sms_pending_idx",
            ),
            # A batch reads its locked senders' waiting rows in reception order.
            models.Index(
                fields=["sender", "id"],
                condition=models.Q(state="received"),
                name="inbound_sms_pending_sender_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.message_sid} ({self.state})"


class SmsOptOut(models.Model):
    """A number that sent STOP: no SMS is sent to it until it sends START."""

    phone = models.CharField(_("phone number"), max_length=20, unique=True)
    active = models.BooleanField(_("opted out"), default=True)
    keyword = models.CharField(_("keyword"), max_length=20, blank=True)
    changed_at = models.DateTimeField(_("changed at"), default=timezone.now)

    class Meta:
        verbose_name = _("SMS opt-out")
        verbose_name_plural = _("SMS opt-outs")
        ordering = ["-changed_at"]

    def __str__(self) -> str:
        return self.phone


# Delivery statuses in the order they can happen; a callback never moves a message backwards
# (callbacks arrive out of order), and the three final ones never change into each other.
STATUS_RANK = {
    "pending": 0,
    "accepted": 1,
    "scheduled": 1,
    "queued": 2,
    "sending": 3,
    "sent": 4,
    "delivered": 5,
    "undelivered": 5,
    "failed": 5,
    "refused": 5,
    "read": 6,
}


class OutboundSms(models.Model):
    """An SMS we send, and its delivery status as the provider reports it."""

    interaction = models.ForeignKey(
        "interactions.Interaction",
        verbose_name=_("interaction"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    message = models.OneToOneField(
        "interactions.Message",
        verbose_name=_("message"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="outbound_sms",
    )
    to = models.CharField(_("to"), max_length=20)
    from_number = models.CharField(_("from"), max_length=20)
    body = models.TextField(_("text"))
    sid = models.CharField(_("provider id"), max_length=64, null=True, blank=True, unique=True)
    status = models.CharField(_("delivery status"), max_length=16, default="pending")
    error_code = models.CharField(_("error code"), max_length=10, blank=True)
    error = models.TextField(_("error"), blank=True)
    # Hand-overs to the provider tried so far (transient failures are retried with back-off).
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    status_at = models.DateTimeField(_("status changed at"), null=True, blank=True)

    class Meta:
        verbose_name = _("sent SMS")
        verbose_name_plural = _("sent SMS")
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.to}: {self.status}"


class SmsStatusEvent(models.Model):
    """One delivery-status callback, stored once per (message id, status)."""

    sid = models.CharField(_("provider id"), max_length=64)
    status = models.CharField(_("status"), max_length=16)
    error_code = models.CharField(_("error code"), max_length=10, blank=True)
    received_at = models.DateTimeField(_("received at"), default=timezone.now)

    class Meta:
        verbose_name = _("SMS status callback")
        verbose_name_plural = _("SMS status callbacks")
        ordering = ["received_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["sid", "status"], name="sms_status_event_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.sid}: {self.status}"
