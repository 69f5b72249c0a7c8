"""Interactions and messages: every contact on every channel lands here, in one queue model."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from organisations.models import OrganisationOwned

from .channels import Channel as ChannelName
from .lifecycle import Status


class Channel(models.TextChoices):
    """The model fields' choices: the names of ``interactions.channels.Channel`` (the one list,
    importable by pure modules) with their labels."""

    VOICE = ChannelName.VOICE.value, _("phone")
    SMS = ChannelName.SMS.value, _("SMS")
    EMAIL = ChannelName.EMAIL.value, _("e-mail")
    CHAT = ChannelName.CHAT.value, _("web chat")


class Direction(models.TextChoices):
    INBOUND = "inbound", _("inbound")
    OUTBOUND = "outbound", _("outbound")


class Interaction(OrganisationOwned):
    """One conversation with a citizen on one channel, from arrival to closure."""

    organisation_from = ("queue", "contact", "assigned_agent")

    channel = models.CharField(_("channel"), max_length=8, choices=Channel.choices)
    direction = models.CharField(
        _("direction"), max_length=8, choices=Direction.choices, default=Direction.INBOUND
    )
    contact = models.ForeignKey(
        "contacts.Contact",
        verbose_name=_("citizen"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="interactions",
    )
    case = models.ForeignKey(
        "contacts.Case",
        verbose_name=_("case"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="interactions",
    )
    queue = models.ForeignKey(
        "configuration.Queue",
        verbose_name=_("queue"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="interactions",
    )
    subject = models.CharField(_("subject"), max_length=255, blank=True)
    priority = models.SmallIntegerField(_("priority"), default=0)
    # Snapshot of what the interaction needs, taken from the queue, the SVI choices and the
    # channel when it is queued: {"skill code": minimum level 1-5}.
    required_skills = models.JSONField(_("required skills"), default=dict, blank=True)
    language = models.CharField(_("language"), max_length=8, default="fr", blank=True)
    status = models.CharField(
        _("status"), max_length=12, choices=Status.choices, default=Status.NEW, db_index=True
    )
    sla_due_at = models.DateTimeField(_("answer due by"), null=True, blank=True)
    assigned_agent = models.ForeignKey(
        "agents.AgentProfile",
        verbose_name=_("agent"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="interactions",
    )
    # The provider's reference for the whole conversation (CallSid, e-mail thread root...).
    external_ref = models.CharField(_("provider reference"), max_length=255, blank=True)
    routing_step = models.PositiveSmallIntegerField(_("escalation step"), default=0)
    # When it entered its current queue: the escalation steps' clock (reset by an overflow
    # or a transfer, while queued_at keeps the citizen's whole wait).
    queue_entered_at = models.DateTimeField(_("entered its queue at"), null=True, blank=True)

    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    queued_at = models.DateTimeField(_("queued at"), null=True, blank=True)
    offered_at = models.DateTimeField(_("offered at"), null=True, blank=True)
    assigned_at = models.DateTimeField(_("answered at"), null=True, blank=True)
    wrap_up_at = models.DateTimeField(_("wrap-up started at"), null=True, blank=True)
    transferred_at = models.DateTimeField(_("transferred at"), null=True, blank=True)
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)
    abandoned_at = models.DateTimeField(_("abandoned at"), null=True, blank=True)

    class Meta:
        verbose_name = _("interaction")
        verbose_name_plural = _("interactions")
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["status", "queue", "priority"], name="interaction_waiting_idx"),
            models.Index(fields=["contact", "-created_at"], name="interaction_contact_idx"),
            models.Index(fields=["assigned_agent", "status"], name="interaction_agent_load_idx"),
            # The waiting line in service order (routing, queue positions).
            models.Index(
                F("priority").desc(),
                "queued_at",
                "id",
                condition=Q(status="queued"),
                name="interaction_queued_order_idx",
            ),
            # Reports: the interactions that first reached a queue in a period.
            models.Index(fields=["queued_at"], name="interaction_queued_at_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.get_channel_display()} ({self.get_status_display()})"


class InteractionTransition(models.Model):
    """Every status change, in order: the audit trail and the source of reports."""

    interaction = models.ForeignKey(
        Interaction, on_delete=models.CASCADE, related_name="transitions"
    )
    from_status = models.CharField(max_length=12, choices=Status.choices)
    to_status = models.CharField(max_length=12, choices=Status.choices)
    reason = models.CharField(_("reason"), max_length=64, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    at = models.DateTimeField(_("at"), db_index=True)

    class Meta:
        verbose_name = _("status change")
        verbose_name_plural = _("status changes")
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"#{self.interaction_id}: {self.from_status} → {self.to_status}"


class MessageDirection(models.TextChoices):
    INBOUND = "inbound", _("from the citizen")
    OUTBOUND = "outbound", _("to the citizen")
    NOTE = "note", _("internal note")


class Message(models.Model):
    """One message of an interaction. ``provider_id`` (MessageSid, Message-ID...) is unique per
    channel so a retried or concurrent webhook delivery cannot create a duplicate."""

    interaction = models.ForeignKey(
        Interaction,
        on_delete=models.CASCADE,
        related_name="messages",
        verbose_name=_("interaction"),
    )
    channel = models.CharField(_("channel"), max_length=8, choices=Channel.choices)
    direction = models.CharField(_("direction"), max_length=8, choices=MessageDirection.choices)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("author"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    text = models.TextField(_("text"), blank=True)
    # Already sanitised (nh3) when stored: safe to render.
    html = models.TextField(_("HTML"), blank=True)
    # [{"name": ..., "content_type": ..., "size": bytes, "storage_path": ...}]
    attachments = models.JSONField(_("attachments"), default=list, blank=True)
    # NULL (not "") when absent, so the unique constraint ignores messages without one.
    provider_id = models.CharField(  # noqa: DJ001
        _("provider id"), max_length=255, null=True, blank=True
    )
    delivery_status = models.CharField(_("delivery status"), max_length=16, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("message")
        verbose_name_plural = _("messages")
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "provider_id"],
                condition=models.Q(provider_id__isnull=False),
                name="message_provider_id_unique_per_channel",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_direction_display()}: {self.text[:40]}"
