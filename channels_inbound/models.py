"""Where citizens write or call us: our numbers and addresses, each bound to a queue."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from interactions.models import Channel
from organisations.models import OrganisationOwned


class Endpoint(OrganisationOwned):
    """One of our public numbers, mailboxes or chat widgets, and where its contacts go.

    ``address`` is normalised like a citizen identity: E.164 for numbers, the bare lower-case
    address for mailboxes, the widget key for chat.
    """

    organisation_from = ("queue",)

    channel = models.CharField(_("channel"), max_length=8, choices=Channel.choices)
    address = models.CharField(_("address"), max_length=254)
    name = models.CharField(_("name"), max_length=100)
    queue = models.ForeignKey(
        "configuration.Queue",
        verbose_name=_("queue"),
        on_delete=models.PROTECT,
        related_name="endpoints",
        help_text=_("Where new interactions from this endpoint wait."),
    )
    active = models.BooleanField(_("active"), default=True)
    # SMS numbers only: off by default, since each acknowledgement is one more SMS to pay for.
    acknowledge = models.BooleanField(
        _("acknowledge new conversations"),
        default=False,
        help_text=_(
            "SMS numbers: send each new conversation an SMS saying it was received, with the "
            "link to follow the request (one SMS more per conversation)."
        ),
    )

    class Meta:
        verbose_name = _("endpoint")
        verbose_name_plural = _("endpoints")
        ordering = ["channel", "address"]
        constraints = [
            models.UniqueConstraint(fields=["channel", "address"], name="endpoint_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.address})"
