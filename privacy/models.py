"""Retention durations per organisation and data class, and the append-only access log.

docs/quality-and-privacy.md ("Retention", "Audit log") describes both.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from kernel.audit import AccessAction
from organisations.models import Organisation, OrganisationOwned


class DataClass(models.TextChoices):
    MESSAGES = "messages", _("messages (text of conversations, notes, subjects)")
    ATTACHMENTS = "attachments", _("attachments")
    RECORDINGS = "recordings", _("voice recordings")
    CHAT_TRANSCRIPTS = "chat_transcripts", _("chat transcripts (bot conversation, name given)")
    PROVIDER_PAYLOADS = "provider_payloads", _("inbound provider payloads")
    CONSOLE_EVENTS = "console_events", _("console events (outbox)")
    ACCESS_LOGS = "access_logs", _("access log")


class RetentionPolicy(OrganisationOwned):
    """How long one organisation keeps one class of data (the default applies without a row)."""

    data_class = models.CharField(_("data class"), max_length=20, choices=DataClass.choices)
    days = models.PositiveIntegerField(_("kept for (days)"))
    updated_at = models.DateTimeField(_("changed at"), auto_now=True)

    class Meta:
        verbose_name = _("retention duration")
        verbose_name_plural = _("retention durations")
        constraints = [
            models.UniqueConstraint(
                fields=["organisation", "data_class"], name="privacy_retention_one_per_class"
            )
        ]

    def __str__(self) -> str:
        return f"{self.organisation_id}: {self.data_class} {self.days} d"


class AccessLog(models.Model):
    """One line of the access log. Append-only: on PostgreSQL a trigger refuses UPDATE and
    DELETE except inside the retention purge (migration 0002). Rows hold ids, never a
    citizen's identity or text, so an erasure never has to touch them.

    ``actor_id`` and ``organisation`` carry no database constraint: deleting a user or an
    organisation must neither fail nor rewrite the log.
    """

    at = models.DateTimeField(_("at"), default=timezone.now, db_index=True)
    actor_id = models.BigIntegerField(_("user id"), null=True, blank=True, db_index=True)
    actor_name = models.CharField(_("user"), max_length=150, blank=True)
    organisation = models.ForeignKey(
        Organisation,
        verbose_name=_("organisation"),
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="+",
    )
    action = models.CharField(_("action"), max_length=16, choices=AccessAction.choices)
    object_type = models.CharField(_("object type"), max_length=64, blank=True)
    object_id = models.CharField(_("object id"), max_length=64, blank=True)
    details = models.JSONField(_("details"), default=dict, blank=True)

    class Meta:
        verbose_name = _("access log entry")
        verbose_name_plural = _("access log")
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["organisation", "at"], name="privacy_log_org_at_idx")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor_name or '-'} {self.action}"
