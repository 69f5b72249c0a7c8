"""API tokens: personal tokens (a person's, short-lived) and service tokens (an integration's).

Only a SHA-256 hash of a token is stored, with a short public prefix to find its row and to
recognise it in lists (``ccp_<prefix>_<secret>`` for a person, ``ccs_<prefix>_<secret>`` for a
service). The secret itself is shown once, when the token is made, and never again.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from organisations.models import Organisation


class RevokeReason(models.TextChoices):
    LOGOUT = "logout", pgettext_lazy("API token revoked on", "logged out")
    IDLE = "idle", _("session ended for inactivity")
    PASSWORD = "password", _("password changed")
    API = "api", _("revoked by its holder")
    ADMIN = "admin", _("revoked by an administrator")


class TokenQuerySet(models.QuerySet):
    def active(self) -> TokenQuerySet:
        now = timezone.now()
        return self.filter(revoked_at=None).filter(
            models.Q(expires_at=None) | models.Q(expires_at__gt=now)
        )


class PersonalToken(models.Model):
    """A person's API token: expires, and is revoked when they log out, when their session
    ends for inactivity and when their password changes."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        on_delete=models.CASCADE,
        related_name="api_tokens",
    )
    prefix = models.CharField(_("prefix"), max_length=16, unique=True)
    key_hash = models.CharField(_("hash of the token"), max_length=64)
    # The user's get_session_auth_hash() when the token was made: a password change (or reset)
    # changes it, and the token stops working.
    auth_hash = models.CharField(max_length=128, editable=False)
    second_factor = models.BooleanField(_("made with a second factor"), default=False)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    expires_at = models.DateTimeField(_("expires at"))
    last_used_at = models.DateTimeField(_("last used at"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)
    revoked_reason = models.CharField(
        _("why revoked"), max_length=16, choices=RevokeReason.choices, blank=True
    )

    objects = TokenQuerySet.as_manager()

    class Meta:
        verbose_name = _("personal API token")
        verbose_name_plural = _("personal API tokens")
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["user", "revoked_at"])]

    def __str__(self) -> str:
        return f"ccp_{self.prefix}…"


class ServiceToken(models.Model):
    """An integration's token: acts for one organisation, read only or read-write."""

    class Scope(models.TextChoices):
        READ = "read", _("read only")
        WRITE = "write", _("read and write")

    name = models.CharField(_("name"), max_length=100)
    organisation = models.ForeignKey(
        Organisation,
        verbose_name=_("organisation"),
        on_delete=models.CASCADE,
        related_name="service_tokens",
    )
    scope = models.CharField(_("scope"), max_length=8, choices=Scope.choices, default=Scope.READ)
    prefix = models.CharField(_("prefix"), max_length=16, unique=True, editable=False)
    key_hash = models.CharField(_("hash of the token"), max_length=64, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=pgettext_lazy("API token", "created by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        editable=False,
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)
    expires_at = models.DateTimeField(
        _("expires at"), null=True, blank=True, help_text=_("Empty: until revoked.")
    )
    last_used_at = models.DateTimeField(_("last used at"), null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True, editable=False)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=pgettext_lazy("API token", "revoked by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        editable=False,
    )

    objects = TokenQuerySet.as_manager()

    class Meta:
        verbose_name = _("service token")
        verbose_name_plural = _("service tokens")
        ordering = ["organisation", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["organisation", "name"],
                condition=models.Q(revoked_at=None),
                name="apitokens_service_name_unique_while_active",
                violation_error_message=_(
                    "This organisation already has an active service token with this name."
                ),
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} (ccs_{self.prefix}…)"

    @property
    def writes(self) -> bool:
        return self.scope == self.Scope.WRITE
