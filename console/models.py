"""The console's own data: the agent event outbox, wrap-up codes and canned responses."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from organisations.models import OrganisationOwned


class AgentEvent(models.Model):
    """One event sent to an agent's consoles, written in the transaction that caused it.

    The live message carries this row's id; a console that reconnects sends the last id it
    applied and gets the rows after it replayed (or a fresh snapshot when they were pruned).
    ``agent_id`` is a plain column, not a foreign key: the outbox must never make the write
    that publishes fail, and pruning removes old rows anyway.
    """

    agent_id = models.BigIntegerField(_("agent"))
    event = models.CharField(_("event"), max_length=64)
    payload = models.JSONField(_("payload"), default=dict)
    created_at = models.DateTimeField(_("created at"))

    class Meta:
        verbose_name = _("agent event")
        verbose_name_plural = _("agent events")
        ordering = ["id"]
        indexes = [
            models.Index(fields=["agent_id", "id"], name="agent_event_replay_idx"),
            models.Index(fields=["created_at"], name="agent_event_prune_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.event} → agent #{self.agent_id}"


class WrapUpCode(OrganisationOwned):
    """The outcome an agent chooses when wrapping up (managed in the admin)."""

    code = models.SlugField(_("code"), max_length=50)
    label = models.CharField(_("label"), max_length=150)
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("wrap-up code")
        verbose_name_plural = _("wrap-up codes")
        ordering = ["label"]
        constraints = [
            models.UniqueConstraint(fields=["organisation", "code"], name="wrapup_code_per_org"),
        ]

    def __str__(self) -> str:
        return self.label


class InteractionWrapUp(models.Model):
    """What the agent recorded when closing an interaction: outcome code and notes."""

    interaction = models.OneToOneField(
        "interactions.Interaction",
        verbose_name=_("interaction"),
        on_delete=models.CASCADE,
        related_name="wrap_up",
    )
    code = models.ForeignKey(
        WrapUpCode,
        verbose_name=_("wrap-up code"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    notes = models.TextField(_("wrap-up notes"), blank=True)
    agent = models.ForeignKey(
        "agents.AgentProfile",
        verbose_name=_("agent"),
        null=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(_("created at"))

    class Meta:
        verbose_name = _("wrap-up")
        verbose_name_plural = _("wrap-ups")

    def __str__(self) -> str:
        return f"#{self.interaction_id}: {self.code or '-'}"


class CannedResponse(OrganisationOwned):
    """A ready-made answer the agent inserts into the composer (managed in the admin)."""

    organisation_from = ("queue",)

    title = models.CharField(_("title"), max_length=150)
    text = models.TextField(_("text"))
    language = models.CharField(
        _("language"), max_length=8, default="fr", choices=settings.LANGUAGES
    )
    queue = models.ForeignKey(
        "configuration.Queue",
        verbose_name=_("queue"),
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        help_text=_("Empty: offered for every queue."),
    )
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("canned response")
        verbose_name_plural = _("canned responses")
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title
