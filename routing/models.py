"""Routing's own records: offers made to agents and the decisions behind them (the queues,
skills and teams they refer to are in ``configuration``)."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class OfferStatus(models.TextChoices):
    PENDING = "pending", _("waiting for the agent")
    ACCEPTED = "accepted", _("accepted")
    DECLINED = "declined", _("declined")
    EXPIRED = "expired", _("expired (missed)")
    CANCELLED = "cancelled", _("cancelled")
    # Accepted, but the call could not be connected to the agent's phone (busy, no answer):
    # excludes the agent like a decline.
    FAILED = "failed", _("failed")
    # Accepted, but the telephony provider failed the bridge after its retries: the agent is
    # passed over for ROUTING_PROVIDER_ERROR_EXCLUSION_SECONDS only (not their fault).
    PROVIDER_ERROR = "provider", _("telephony provider error")


class Offer(models.Model):
    """A reservation: one interaction offered to one agent until ``expires_at``.

    At most one pending offer per interaction (a database constraint). An agent who declined
    or let an offer expire, or whose phone could not be reached for it, is never offered that
    interaction again.
    """

    interaction = models.ForeignKey(
        "interactions.Interaction", on_delete=models.CASCADE, related_name="offers"
    )
    agent = models.ForeignKey(
        "agents.AgentProfile", on_delete=models.CASCADE, related_name="offers"
    )
    channel = models.CharField(_("channel"), max_length=8)
    status = models.CharField(
        _("status"), max_length=10, choices=OfferStatus.choices, default=OfferStatus.PENDING
    )
    created_at = models.DateTimeField(_("offered at"))
    expires_at = models.DateTimeField(_("expires at"))
    responded_at = models.DateTimeField(_("answered at"), null=True, blank=True)

    class Meta:
        verbose_name = _("offer")
        verbose_name_plural = _("offers")
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["interaction"],
                condition=models.Q(status="pending"),
                name="one_pending_offer_per_interaction",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "expires_at"], name="offer_pending_idx"),
            models.Index(fields=["agent", "status"], name="offer_agent_idx"),
        ]

    def __str__(self) -> str:
        return f"offer #{self.pk}: interaction #{self.interaction_id} → agent #{self.agent_id}"


class RoutingDecision(models.Model):
    """Why an interaction went to an agent (or moved queue): candidates, scores, rule."""

    interaction = models.ForeignKey(
        "interactions.Interaction", on_delete=models.CASCADE, related_name="routing_decisions"
    )
    offer = models.OneToOneField(
        Offer, null=True, blank=True, on_delete=models.SET_NULL, related_name="decision"
    )
    agent = models.ForeignKey(
        "agents.AgentProfile",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    action = models.CharField(_("action"), max_length=10)
    rule = models.CharField(_("deciding rule"), max_length=32)
    at = models.DateTimeField(_("at"), db_index=True)
    details = models.JSONField(_("details"), default=dict)

    class Meta:
        verbose_name = _("routing decision")
        verbose_name_plural = _("routing decisions")
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"#{self.interaction_id}: {self.action} ({self.rule})"
