"""Announced commitments (per organisation and channel) and the citizens' follow-up links."""

from __future__ import annotations

from django.core.validators import MaxValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from interactions.models import Channel
from organisations.models import OrganisationOwned


class Commitment(OrganisationOwned):
    """What an organisation announces for one channel (Services Publics+ engagements): the
    answer delay, and optionally the rates it aims at. Shown beside the published results and
    on the follow-up page of a request."""

    channel = models.CharField(_("channel"), max_length=8, choices=Channel.choices)
    answer_delay_seconds = models.PositiveIntegerField(
        _("announced answer delay (seconds)"),
        help_text=_("For example 86400 for one day, 432000 for five days, 180 for 3 minutes."),
    )
    answer_rate_target = models.PositiveSmallIntegerField(
        _("target answer rate (%)"),
        null=True,
        blank=True,
        validators=[MaxValueValidator(100)],
    )
    within_delay_target = models.PositiveSmallIntegerField(
        _("target share answered within the delay (%)"),
        null=True,
        blank=True,
        validators=[MaxValueValidator(100)],
    )
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("announced commitment")
        verbose_name_plural = _("announced commitments")
        ordering = ["organisation_id", "channel"]
        constraints = [
            models.UniqueConstraint(
                fields=["organisation", "channel"], name="commitment_one_per_channel"
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_channel_display()}: {self.answer_delay_seconds} s"


class FollowLink(OrganisationOwned):
    """One signed "follow my request" link given to a citizen for one interaction.

    Only a hash of the link's random part is stored: nobody can rebuild a link from the
    database. Revoking (or deleting) the row makes the link answer like an unknown one."""

    organisation_from = ("interaction",)

    interaction = models.ForeignKey(
        "interactions.Interaction",
        verbose_name=_("interaction"),
        on_delete=models.CASCADE,
        related_name="follow_links",
    )
    nonce_hash = models.CharField(_("hash of the link"), max_length=64, unique=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)
    last_viewed_at = models.DateTimeField(_("last viewed at"), null=True, blank=True)

    class Meta:
        verbose_name = _("follow-up link")
        verbose_name_plural = _("follow-up links")
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"#{self.pk} → {self.interaction_id}"

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None
