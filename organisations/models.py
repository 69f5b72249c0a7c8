"""Organisations: the public bodies sharing one installation, each a separate data controller.

Every queue, team, agent, skill, endpoint, flow, canned response, wrap-up code, citizen record
and interaction belongs to exactly one :class:`Organisation`. A user belongs to at most one
(:class:`Membership`); platform administrators (superusers, or the ``platform_administrator``
group) belong to none and manage them all. Nothing crosses organisations except through an
active :class:`SharingAgreement`, which a platform administrator sets up and which is audited.
"""

from __future__ import annotations

import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models, transaction
from django.utils.translation import gettext_lazy as _

from kernel.errors import SingleCodeError

SIRET_VALIDATOR = RegexValidator(r"^\d{14}$", _("A SIRET number has 14 digits."))


def validate_time_zone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(_("Unknown time zone: %(tz)s"), params={"tz": value})


class Organisation(models.Model):
    """A public body (a CAF, a mairie, a préfecture) and the data it controls."""

    name = models.CharField(_("name"), max_length=200, unique=True)
    slug = models.SlugField(_("short name"), max_length=50, unique=True)
    siret = models.CharField(_("SIRET"), max_length=14, blank=True, validators=[SIRET_VALIDATOR])
    dpo_name = models.CharField(_("data-protection officer"), max_length=200, blank=True)
    dpo_email = models.EmailField(_("data-protection contact e-mail"), blank=True)
    brand_colour = models.CharField(
        _("brand colour"),
        max_length=7,
        default="#000091",
        validators=[RegexValidator(r"^#[0-9a-fA-F]{6}$", _("A colour like #000091."))],
    )
    logo_url = models.CharField(_("logo URL"), max_length=300, blank=True)
    time_zone = models.CharField(
        _("time zone"), max_length=64, default="Europe/Paris", validators=[validate_time_zone]
    )
    default_language = models.CharField(
        _("default language"), max_length=8, default="fr", choices=settings.LANGUAGES
    )
    active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("organisation")
        verbose_name_plural = _("organisations")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class OrganisationRequired(SingleCodeError, ValueError):
    """A record was created without its organisation on an installation that has several."""

    default_code = "organisation_required"


def sole_organisation() -> int:
    """The default organisation of a new record: the only one of a single-body installation.

    On a fresh installation with none, the first is created ("Mon organisation", renamed in the
    admin). With several, nothing is guessed: the caller must say which (an explicit error
    rather than a record silently landing in another body's data).
    """
    ids = list(Organisation.objects.order_by("pk").values_list("pk", flat=True)[:2])
    if len(ids) == 1:
        return ids[0]
    if ids:
        raise OrganisationRequired(
            "Several organisations exist: name the organisation of a new record "
            "(?organisation=<id> in the API)."
        )
    with transaction.atomic():
        org, _created = Organisation.objects.get_or_create(
            slug="mon-organisation", defaults={"name": "Mon organisation"}
        )
    return org.pk


def sole_organisation_if_one() -> int | None:
    """A form's initial organisation: the only one, or none to choose from when several."""
    try:
        return sole_organisation()
    except OrganisationRequired:
        return None


class Membership(models.Model):
    """The organisation a user works for. Their role stays a group (agent, supervisor,
    administrator); an administrator with a membership administers that organisation only."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        on_delete=models.CASCADE,
        related_name="membership",
    )
    organisation = models.ForeignKey(
        Organisation,
        verbose_name=_("organisation"),
        on_delete=models.PROTECT,
        related_name="memberships",
        default=sole_organisation_if_one,
    )

    class Meta:
        verbose_name = _("membership")
        verbose_name_plural = _("memberships")

    def __str__(self) -> str:
        return f"{self.user} → {self.organisation}"


class SharingAgreement(models.Model):
    """``grantee`` may read the citizens and interactions of ``owner`` (read only), e.g. a
    France Services desk serving several bodies. Set up by a platform administrator only;
    every creation and revocation is recorded here (who, when, why)."""

    owner = models.ForeignKey(
        Organisation,
        verbose_name=_("organisation sharing its data"),
        on_delete=models.CASCADE,
        related_name="shares_given",
    )
    grantee = models.ForeignKey(
        Organisation,
        verbose_name=_("organisation allowed to read it"),
        on_delete=models.CASCADE,
        related_name="shares_received",
    )
    reason = models.CharField(_("legal basis and purpose"), max_length=300)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("set up by"),
        null=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(_("set up at"), auto_now_add=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("revoked by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)

    class Meta:
        verbose_name = _("sharing agreement")
        verbose_name_plural = _("sharing agreements")
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(owner=models.F("grantee")), name="sharing_not_self"
            ),
            models.UniqueConstraint(
                fields=["owner", "grantee"],
                condition=models.Q(revoked_at__isnull=True),
                name="one_active_sharing_per_pair",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.owner} → {self.grantee}"

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class OrganisationMismatch(SingleCodeError, ValueError):
    """A record would link two organisations' data (e.g. an interaction of one body in another
    body's queue): refused, whatever interface asked."""

    default_code = "other_organisation"


class OrganisationOwned(models.Model):
    """A record that belongs to exactly one organisation.

    When none is given, it comes from the record's parents named in ``organisation_from`` (an
    interaction from its queue, an identity from its citizen...), else from
    :func:`sole_organisation`. On creation, and whenever a parent changes through ``save``, every
    parent must belong to the same organisation: the isolation of the data controllers is a
    property of the model, not of each interface.
    """

    organisation = models.ForeignKey(
        Organisation,
        verbose_name=_("organisation"),
        on_delete=models.PROTECT,
        related_name="+",
    )
    organisation_from: tuple[str, ...] = ()

    class Meta:
        abstract = True

    def save(self, *args: object, **kwargs: object) -> None:
        update_fields = kwargs.get("update_fields")
        changed = None if update_fields is None else {str(f) for f in update_fields}  # type: ignore[attr-defined]
        if self.organisation_id is None:
            parents = self._parent_organisation_ids()
            self.organisation_id = parents[0][1] if parents else self.default_organisation_id()
        elif not self._state.adding and changed is not None:
            parents = self._parent_organisation_ids(changed)
        else:
            parents = self._parent_organisation_ids()
        for attr, org_id in parents:
            if org_id != self.organisation_id:
                raise OrganisationMismatch(
                    f"{type(self).__name__}.{attr} belongs to organisation #{org_id}, "
                    f"not #{self.organisation_id}"
                )
        super().save(*args, **kwargs)  # type: ignore[arg-type]

    def default_organisation_id(self) -> int:
        """The organisation of a new record with no parent to take it from."""
        return sole_organisation()

    def _parent_organisation_ids(self, only: set[str] | None = None) -> list[tuple[str, int]]:
        found = []
        for attr in self.organisation_from:
            if only is not None and attr not in only:
                continue
            if getattr(self, f"{attr}_id", None) is None:
                continue
            org_id = getattr(getattr(self, attr), "organisation_id", None)
            if org_id is not None:
                found.append((attr, org_id))
        return found
