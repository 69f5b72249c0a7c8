"""E-mail channel state: thread index, acknowledgements sent, IMAP mailbox progress."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from organisations.models import OrganisationOwned


class EmailThreadEntry(models.Model):
    """One Message-ID we have seen or sent, and the interaction it belongs to.

    A reply's ``In-Reply-To`` / ``References`` are looked up here, so a citizen answering our
    acknowledgement or an agent's reply lands in the same interaction. ``message_id`` is stored
    without angle brackets.
    """

    class Direction(models.TextChoices):
        INBOUND = "inbound", _("from the citizen")
        OUTBOUND = "outbound", _("to the citizen")

    message_id = models.CharField(_("Message-ID"), max_length=255, unique=True)
    interaction = models.ForeignKey(
        "interactions.Interaction",
        verbose_name=_("interaction"),
        on_delete=models.CASCADE,
        related_name="email_thread_entries",
    )
    stored_message = models.ForeignKey(
        "interactions.Message",
        verbose_name=_("message"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    direction = models.CharField(_("direction"), max_length=8, choices=Direction.choices)
    # The citizen's bare address and ours (the endpoint mailbox), to address replies.
    citizen_address = models.CharField(_("citizen address"), max_length=254, blank=True)
    our_address = models.CharField(_("our address"), max_length=254, blank=True)
    subject = models.CharField(_("subject"), max_length=255, blank=True)
    # Space-separated Message-IDs of the References header (without brackets), oldest first.
    references = models.TextField(_("references"), blank=True)
    # Ours and sent by a machine (acknowledgement, notice): carries Auto-Submitted.
    auto_submitted = models.BooleanField(_("sent automatically"), default=False)
    sent_at = models.DateTimeField(_("date"), null=True, blank=True)
    created_at = models.DateTimeField(_("recorded at"), auto_now_add=True)

    class Meta:
        verbose_name = _("e-mail thread entry")
        verbose_name_plural = _("e-mail thread entries")
        ordering = ["id"]
        indexes = [models.Index(fields=["interaction", "-id"], name="email_thread_interaction_idx")]

    def __str__(self) -> str:
        return f"<{self.message_id}> → #{self.interaction_id}"


class EmailAcknowledgement(OrganisationOwned):
    """The acknowledgement an organisation sent to a sender on a given day: at most one, by
    constraint. Per organisation: a citizen who writes to the CAF and to the mairie the same day
    gets each body's acknowledgement (and its "follow my request" link); the bodies are
    separate data controllers and one's mail says nothing of the other's."""

    organisation_from = ("interaction",)

    address = models.CharField(_("address"), max_length=254)
    day = models.DateField(_("day"))
    interaction = models.ForeignKey(
        "interactions.Interaction",
        verbose_name=_("interaction"),
        on_delete=models.CASCADE,
        related_name="+",
    )
    # The acknowledgement's own Message-ID (its delivery status is on its outbound Message).
    message_id = models.CharField(_("Message-ID"), max_length=255, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("e-mail acknowledgement")
        verbose_name_plural = _("e-mail acknowledgements")
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organisation", "address", "day"], name="email_ack_once_per_org_day"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.address} {self.day}"


class ImapMailboxState(models.Model):
    """How far the IMAP poller has read one mailbox folder.

    UIDs are only meaningful within one UIDVALIDITY: when the server reports another value, the
    folder is read again from the start (the Message-ID deduplication makes that idempotent).
    """

    key = models.CharField(_("mailbox"), max_length=255, unique=True)
    uidvalidity = models.BigIntegerField(_("UIDVALIDITY"), null=True, blank=True)
    last_uid = models.BigIntegerField(_("last UID read"), default=0)
    rescans = models.PositiveIntegerField(_("rescans after a UIDVALIDITY change"), default=0)
    last_polled_at = models.DateTimeField(_("last polled at"), null=True, blank=True)
    last_error = models.CharField(_("last error"), max_length=255, blank=True)

    class Meta:
        verbose_name = _("IMAP mailbox state")
        verbose_name_plural = _("IMAP mailbox states")
        ordering = ["key"]

    def __str__(self) -> str:
        return f"{self.key} (UIDVALIDITY {self.uidvalidity}, UID {self.last_uid})"
