"""Flow definitions and their versions.

A :class:`Flow` is a named SVI (or chat-bot) script; its graph lives in numbered
:class:`FlowVersion` rows. A version is edited as a draft, validated and published; a published
version never changes (a call in progress keeps running the version it started with), and
publishing another one archives it. :class:`EndpointFlow` says which number runs which flow.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from organisations.models import OrganisationOwned


class Flow(OrganisationOwned):
    name = models.CharField(_("name"), max_length=100)
    description = models.TextField(_("description"), blank=True)
    published_version = models.ForeignKey(
        "FlowVersion",
        verbose_name=_("published version"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("flow")
        verbose_name_plural = _("flows")
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["organisation", "name"], name="flow_name_per_org"),
        ]

    def __str__(self) -> str:
        return self.name


class FlowVersion(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", _("draft")
        PUBLISHED = "published", _("published")
        ARCHIVED = "archived", _("archived")

    flow = models.ForeignKey(
        Flow, verbose_name=_("flow"), on_delete=models.CASCADE, related_name="versions"
    )
    number = models.PositiveIntegerField(_("version"), editable=False)
    graph = models.JSONField(_("graph"), default=dict)
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.DRAFT, editable=False
    )
    note = models.CharField(_("change note"), max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("created by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    published_at = models.DateTimeField(_("published at"), null=True, blank=True, editable=False)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("published by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )

    class Meta:
        verbose_name = _("flow version")
        verbose_name_plural = _("flow versions")
        ordering = ["flow", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["flow", "number"], name="flow_version_number_unique"),
            models.UniqueConstraint(
                fields=["flow"],
                condition=models.Q(status="published"),
                name="flow_one_published_version",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.flow} v{self.number} ({self.get_status_display()})"

    @property
    def nodes(self) -> dict[str, Any]:
        nodes: dict[str, Any] = self.graph.get("nodes", {})
        return nodes


class EndpointFlow(models.Model):
    """The flow a number (or chat widget) runs when a citizen reaches it."""

    endpoint = models.OneToOneField(
        "channels_inbound.Endpoint",
        verbose_name=_("endpoint"),
        on_delete=models.CASCADE,
        related_name="flow_binding",
    )
    flow = models.ForeignKey(
        Flow, verbose_name=_("flow"), on_delete=models.PROTECT, related_name="bindings"
    )

    class Meta:
        verbose_name = _("flow of an endpoint")
        verbose_name_plural = _("flows of endpoints")

    def __str__(self) -> str:
        return f"{self.endpoint} → {self.flow}"
