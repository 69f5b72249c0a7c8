"""The citizen record ("tell us once"): one person, many phone numbers and addresses."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from organisations.models import OrganisationOwned


class Contact(OrganisationOwned):
    """A citizen, as known to one organisation (the same person writing to the CAF and to the
    mairie is two records). A merged contact keeps pointing at the one it was merged into."""

    organisation_from = ("merged_into",)

    display_name = models.CharField(_("name"), max_length=200, blank=True)
    preferred_language = models.CharField(
        _("preferred language"), max_length=8, default="fr", choices=settings.LANGUAGES
    )
    notes = models.TextField(_("notes"), blank=True)
    merged_into = models.ForeignKey(
        "self",
        verbose_name=_("merged into"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="merged_contacts",
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("citizen")
        verbose_name_plural = _("citizens")
        ordering = ["-id"]

    def __str__(self) -> str:
        return self.display_name or _("Citizen #%(id)s") % {"id": self.pk}

    @property
    def is_merged(self) -> bool:
        return self.merged_into_id is not None


class IdentityKind(models.TextChoices):
    PHONE = "phone", _("phone number")
    EMAIL = "email", _("e-mail address")
    CHAT = "chat", _("chat visitor")


class ContactIdentity(OrganisationOwned):
    """A normalised way to recognise a citizen: E.164 number, bare e-mail address, chat id.
    Unique per organisation: each body resolves its own citizens."""

    organisation_from = ("contact",)

    contact = models.ForeignKey(
        Contact, verbose_name=_("citizen"), on_delete=models.CASCADE, related_name="identities"
    )
    kind = models.CharField(_("kind"), max_length=8, choices=IdentityKind.choices)
    value = models.CharField(_("value"), max_length=254)
    verified = models.BooleanField(_("verified"), default=False)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("identity")
        verbose_name_plural = _("identities")
        constraints = [
            models.UniqueConstraint(
                fields=["organisation", "kind", "value"], name="contact_identity_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.value}"


class Case(OrganisationOwned):
    """A file opened for a citizen (a benefits claim, a residence permit...); its reference is
    quoted in e-mail subjects so replies find their way back."""

    organisation_from = ("contact",)

    class Status(models.TextChoices):
        OPEN = "open", _("open")
        CLOSED = "closed", _("closed")

    reference = models.CharField(_("reference"), max_length=32, unique=True)
    contact = models.ForeignKey(
        Contact, verbose_name=_("citizen"), on_delete=models.PROTECT, related_name="cases"
    )
    subject = models.CharField(_("subject"), max_length=200)
    status = models.CharField(_("status"), max_length=8, choices=Status.choices, default="open")
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)

    class Meta:
        verbose_name = _("case")
        verbose_name_plural = _("cases")
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.reference} – {self.subject}"


class ContactMerge(models.Model):
    """Audit of a merge: who merged which record into which, and what moved."""

    source = models.ForeignKey(
        Contact, on_delete=models.PROTECT, related_name="+", verbose_name=_("merged citizen")
    )
    target = models.ForeignKey(
        Contact, on_delete=models.PROTECT, related_name="+", verbose_name=_("kept citizen")
    )
    merged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    merged_at = models.DateTimeField(_("merged at"), auto_now_add=True)
    moved = models.JSONField(_("moved records"), default=dict)

    class Meta:
        verbose_name = _("citizen merge")
        verbose_name_plural = _("citizen merges")
        ordering = ["-merged_at"]

    def __str__(self) -> str:
        return f"#{self.source_id} → #{self.target_id}"


class IdentityRemoval(models.Model):
    """Audit of an identity an agent took off a citizen's record (a wrong number or address):
    which one, from whom, by whom and when. The record and its history stay."""

    contact = models.ForeignKey(
        Contact,
        on_delete=models.PROTECT,
        related_name="identity_removals",
        verbose_name=_("citizen"),
    )
    kind = models.CharField(_("kind"), max_length=8, choices=IdentityKind.choices)
    value = models.CharField(_("value"), max_length=254)
    removed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("removed by"),
    )
    removed_at = models.DateTimeField(_("removed at"), auto_now_add=True)

    class Meta:
        verbose_name = _("identity removal")
        verbose_name_plural = _("identity removals")
        ordering = ["-removed_at"]

    def __str__(self) -> str:
        return f"#{self.contact_id}: {self.get_kind_display()} {self.value}"
