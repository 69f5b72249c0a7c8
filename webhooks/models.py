"""Outgoing webhooks: an organisation's subscriptions, each delivery and each attempt.

A delivery row is written in the transaction of the change it reports (``receivers.py``), so an
accepted event is never lost: the Celery task that sends it is queued after the commit, and the
periodic sweep sends whatever a lost task, a stopped worker or a broker outage left behind.
docs/operations.md, "Outgoing webhooks", describes the payload and the signature.
"""

from __future__ import annotations

import secrets
import uuid

from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from organisations.models import OrganisationOwned


class Event(models.TextChoices):
    """The events a subscription may ask for (the catalogue: docs/operations.md)."""

    INTERACTION_CREATED = "interaction.created", _("interaction created")
    INTERACTION_ASSIGNED = "interaction.assigned", _("interaction assigned to an agent")
    INTERACTION_CLOSED = "interaction.closed", _("interaction closed")
    SURVEY_ANSWERED = "survey.answered", _("satisfaction survey answered")


# Sent by the admin's "send a test delivery" only (never subscribed to).
TEST_EVENT = "webhook.test"


def new_secret() -> str:
    """A signing secret: 32 random bytes, URL-safe (43 characters), prefixed for recognition."""
    return "whsec_" + secrets.token_urlsafe(32)


class Subscription(OrganisationOwned):
    """One receiver of an organisation's events: where, which events, and the shared secret
    each delivery is signed with."""

    name = models.CharField(_("name"), max_length=200)
    url = models.URLField(
        _("target URL"),
        max_length=500,
        help_text=_("HTTPS address that receives the events (POST, JSON body)."),
    )
    secret = models.CharField(
        _("signing secret"),
        max_length=100,
        default=new_secret,
        help_text=_("Shared with the receiver, which checks each delivery's signature with it."),
    )
    events = models.JSONField(_("events"), default=list, blank=True)
    active = models.BooleanField(
        pgettext_lazy("webhook subscription", "active"),
        default=True,
        help_text=_("Switched off automatically after too many failed attempts in a row."),
    )
    consecutive_failures = models.PositiveIntegerField(_("failed attempts in a row"), default=0)
    disabled_at = models.DateTimeField(_("disabled at"), null=True, blank=True)
    disabled_reason = models.CharField(_("why it was disabled"), max_length=500, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("webhook subscription")
        verbose_name_plural = _("webhook subscriptions")
        ordering = ["organisation_id", "name"]

    def __str__(self) -> str:
        return self.name


class Delivery(models.Model):
    """One event for one subscription: the exact body sent on every attempt, and its state."""

    class Status(models.TextChoices):
        PENDING = "pending", _("pending")
        DELIVERED = "delivered", _("delivered")
        FAILED = "failed", _("failed")

    subscription = models.ForeignKey(
        Subscription,
        verbose_name=_("subscription"),
        on_delete=models.CASCADE,
        related_name="deliveries",
    )
    event = models.CharField(_("event"), max_length=64)
    # The event's id: the same for every subscription and every attempt (receivers de-duplicate
    # on it: a delivery may arrive twice, e.g. when the answer was lost).
    event_id = models.UUIDField(_("event id"), default=uuid.uuid4)
    body = models.TextField(_("body"))
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.PENDING
    )
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt at"))
    # Held by the attempt under way until then (another copy of the task, or the sweep, skips
    # it); an attempt whose worker died is taken again once it has passed.
    lease_until = models.DateTimeField(null=True, blank=True)
    is_test = models.BooleanField(_("test delivery"), default=False)
    created_at = models.DateTimeField(_("created at"))
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(
        _("last HTTP status"), null=True, blank=True
    )
    last_error = models.CharField(_("last error"), max_length=500, blank=True)

    class Meta:
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                name="webhook_delivery_due_idx",
                condition=models.Q(status="pending"),
            ),
            models.Index(fields=["created_at"], name="webhook_delivery_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event} #{self.pk}"


class DeliveryAttempt(models.Model):
    """One HTTP attempt of a delivery: when, the answer's status code, how long, what failed."""

    delivery = models.ForeignKey(
        Delivery, verbose_name=_("delivery"), on_delete=models.CASCADE, related_name="log"
    )
    number = models.PositiveSmallIntegerField(_("attempt"))
    at = models.DateTimeField(_("at"))
    status_code = models.PositiveSmallIntegerField(_("HTTP status"), null=True, blank=True)
    duration_ms = models.PositiveIntegerField(_("duration (ms)"), default=0)
    error = models.CharField(_("error"), max_length=500, blank=True)

    class Meta:
        verbose_name = _("delivery attempt")
        verbose_name_plural = _("delivery attempts")
        ordering = ["delivery_id", "number"]

    def __str__(self) -> str:
        return f"{self.delivery_id}/{self.number}"
