"""Sign-in through an organisation's OpenID Connect provider (ProConnect, Keycloak, Azure AD...).

- :class:`IdentityProvider`: one per organisation, set up by its administrator: where the
  provider is (discovery URL), this site's client credentials, how accounts are matched,
  whether unknown people get an account (and in which team), which claim (if any) gives
  roles, and which ``acr``/``amr`` values count as the second factor;
- :class:`ExternalIdentity`: the link between a user and the provider's ``sub`` (made at the
  first sign-in, or by an administrator when accounts are matched by ``sub``);
- :class:`ProviderSecondFactor`: a django-otp device standing for "the provider checked a
  second factor" in the session that signed in through it (never one the user enrolled).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _
from django_otp.models import Device, DeviceManager

from kernel.roles import ADMINISTRATOR, AGENT, DATA_PROTECTION_OFFICER, SUPERVISOR
from organisations.models import OrganisationOwned

# Roles a provider's claim may grant (never the platform administrator's).
MAPPABLE_ROLES = (AGENT, SUPERVISOR, ADMINISTRATOR, DATA_PROTECTION_OFFICER)


def _words(value: str) -> list[str]:
    return [w for w in value.replace(",", " ").split() if w]


class IdentityProvider(OrganisationOwned):
    class Kind(models.TextChoices):
        PROCONNECT = "proconnect", "ProConnect"
        OIDC = "oidc", _("Other OpenID Connect provider")

    class MatchOn(models.TextChoices):
        EMAIL = "email", _("e-mail address")
        SUB = "sub", _("subject identifier (sub)")

    organisation_from = ("new_account_team",)

    name = models.CharField(
        _("name shown on the login page"),
        max_length=100,
        help_text=_('"Log in with <name>": ProConnect, or your provider\'s name.'),
    )
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices, default=Kind.OIDC)
    enabled = models.BooleanField(_("enabled"), default=True)
    discovery_url = models.URLField(
        _("discovery URL"),
        max_length=500,
        help_text=_(
            "The provider's /.well-known/openid-configuration (its issuer followed by that path)."
        ),
    )
    client_id = models.CharField(_("client id"), max_length=255)
    client_secret = models.CharField(_("client secret"), max_length=500)
    scopes = models.CharField(
        _("scopes"),
        max_length=300,
        default="openid email profile",
        help_text=_("Space-separated; openid is always requested."),
    )
    acr_values = models.CharField(
        _("acr values requested"),
        max_length=200,
        blank=True,
        help_text=_("Sent as acr_values in the authorization request (e.g. eidas1), if any."),
    )
    signing_algorithm = models.CharField(
        _("ID token signing algorithm"),
        max_length=10,
        default="RS256",
        choices=[(a, a) for a in ("RS256", "RS384", "RS512", "ES256", "ES384", "ES512")],
    )
    match_on = models.CharField(
        _("match accounts by"), max_length=10, choices=MatchOn.choices, default=MatchOn.EMAIL
    )
    create_accounts = models.BooleanField(
        _("create unknown accounts"),
        default=False,
        help_text=_(
            "A person the provider knows but this site does not gets an agent account, with no "
            "skills, in the team below."
        ),
    )
    new_account_team = models.ForeignKey(
        "configuration.Team",
        verbose_name=_("team of new accounts"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    role_claim = models.CharField(
        _("role claim"),
        max_length=100,
        blank=True,
        help_text=_(
            "Empty: roles are never taken from the provider. Otherwise the claim whose values "
            "the mapping below turns into roles, at every sign-in."
        ),
    )
    role_mapping = models.JSONField(
        _("role mapping"),
        default=dict,
        blank=True,
        help_text=_(
            'Claim value -> role, e.g. {"cc-agents": "agent", "cc-chefs": "supervisor"}. '
            "Roles: agent, supervisor, administrator, data_protection_officer."
        ),
    )
    mfa_acr_values = models.CharField(
        _("acr values accepted as second factor"),
        max_length=300,
        blank=True,
        help_text=_("Space-separated; empty: the acr claim never counts as a second factor."),
    )
    mfa_amr_values = models.CharField(
        _("amr values accepted as second factor"),
        max_length=300,
        blank=True,
        help_text=_(
            "Space-separated (e.g. mfa otp hwk); empty: the amr claim never counts as a second "
            "factor."
        ),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("identity provider")
        verbose_name_plural = _("identity providers")
        constraints = [
            models.UniqueConstraint(fields=["organisation"], name="sso_one_provider_per_org")
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def scope_list(self) -> list[str]:
        scopes = _words(self.scopes)
        return scopes if "openid" in scopes else ["openid", *scopes]

    @property
    def accepted_acr(self) -> set[str]:
        return set(_words(self.mfa_acr_values))

    @property
    def accepted_amr(self) -> set[str]:
        return set(_words(self.mfa_amr_values))

    def clean(self) -> None:
        errors: dict[str, Any] = {}
        if self.create_accounts and self.new_account_team_id is None:
            errors["new_account_team"] = _("New accounts need a team.")
        mapping = self.role_mapping or {}
        if not isinstance(mapping, dict) or not all(
            isinstance(k, str) and v in MAPPABLE_ROLES for k, v in mapping.items()
        ):
            errors["role_mapping"] = _(
                "An object of claim values to roles (agent, supervisor, administrator, "
                "data_protection_officer)."
            )
        elif self.role_claim and not mapping:
            errors["role_mapping"] = _("A role claim needs a mapping.")
        if errors:
            raise ValidationError(errors)


class ExternalIdentity(models.Model):
    """This user is the provider's ``sub``."""

    provider = models.ForeignKey(
        IdentityProvider,
        verbose_name=_("identity provider"),
        on_delete=models.CASCADE,
        related_name="identities",
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        on_delete=models.CASCADE,
        related_name="external_identities",
    )
    sub = models.CharField(_("subject identifier (sub)"), max_length=255)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    last_login_at = models.DateTimeField(_("last sign-in"), null=True, blank=True)

    class Meta:
        verbose_name = _("external identity")
        verbose_name_plural = _("external identities")
        constraints = [
            models.UniqueConstraint(fields=["provider", "sub"], name="sso_sub_unique"),
            models.UniqueConstraint(fields=["provider", "user"], name="sso_user_once"),
        ]

    def __str__(self) -> str:
        return f"{self.user} = {self.provider}:{self.sub}"


class _NotEnrolledManager(DeviceManager):
    def devices_for_user(self, user: Any, confirmed: bool | None = None) -> Any:
        # Never one of "the user's devices": it does not make a second factor expected of
        # them at a password login, nor offer itself on the code page.
        return self.none()


class ProviderSecondFactor(Device):
    """The provider's MFA, accepted as this site's second factor for the session that signed in
    with an accepted ``acr``/``amr`` (django-otp keeps its persistent id in that session only).
    It verifies no code."""

    provider: models.ForeignKey[IdentityProvider, IdentityProvider] = models.ForeignKey(
        IdentityProvider, on_delete=models.CASCADE, related_name="+"
    )

    objects = _NotEnrolledManager()

    class Meta:
        verbose_name = _("provider's second factor")
        verbose_name_plural = _("providers' second factors")
        constraints = [
            models.UniqueConstraint(fields=["provider", "user"], name="sso_factor_once"),
        ]

    def verify_token(self, token: Any) -> bool:
        return False
