"""Who the provider's claims are on this site: match, refuse, or create (the only write path of
single sign-on accounts)."""

from __future__ import annotations

import enum
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone

from kernel.roles import ADMINISTRATOR, AGENT, SUPERVISOR

from .models import MAPPABLE_ROLES, ExternalIdentity, IdentityProvider, ProviderSecondFactor


class Refusal(enum.StrEnum):
    UNKNOWN = "unknown"  # nobody matches and accounts are not created
    INACTIVE = "inactive"  # the account is disabled
    OTHER_ORGANISATION = "other_organisation"  # the account belongs to another body
    AMBIGUOUS = "ambiguous"  # several accounts share the e-mail address
    LINKED_ELSEWHERE = "linked_elsewhere"  # the account is linked to another sub
    UNLINKED = "unlinked"  # matching by sub: an unlinked account of this body has the address
    MISSING_CLAIM = "missing_claim"  # no sub, or no e-mail address when matching by it
    NO_ROLE = "no_role"  # roles come from the provider and none of its values maps to one
    PLATFORM_ADMIN = "platform_admin"  # superusers sign in with their password only


class SignInRefused(Exception):
    def __init__(self, reason: Refusal) -> None:
        super().__init__(reason.value)
        self.reason = reason


def _claim_values(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list | tuple | set):
        return [str(v) for v in value]
    return str(value).replace(",", " ").split()


def mapped_roles(provider: IdentityProvider, claims: dict[str, Any]) -> set[str] | None:
    """The roles the provider grants (``None``: roles are not taken from it)."""
    if not provider.role_claim:
        return None
    mapping = provider.role_mapping or {}
    values = _claim_values(claims.get(provider.role_claim))
    return {mapping[v] for v in values if mapping.get(v) in MAPPABLE_ROLES}


def second_factor_accepted(provider: IdentityProvider, claims: dict[str, Any]) -> str:
    """The accepted ``acr`` or ``amr`` value the ID token carries ('' when none, or when the
    provider has no accepted values)."""
    acr = claims.get("acr")
    if acr is not None and str(acr) in provider.accepted_acr:
        return f"acr={acr}"
    for amr in _claim_values(claims.get("amr")):
        if amr in provider.accepted_amr:
            return f"amr={amr}"
    return ""


def _find(provider: IdentityProvider, claims: dict[str, Any]) -> Any:
    User = get_user_model()
    sub = str(claims["sub"])
    link = (
        ExternalIdentity.objects.select_related("user").filter(provider=provider, sub=sub).first()
    )
    if link is not None:
        return link.user
    if provider.match_on == IdentityProvider.MatchOn.SUB:
        return None
    email = (claims.get("email") or "").strip()
    if not email:
        raise SignInRefused(Refusal.MISSING_CLAIM)
    if claims.get("email_verified") is False:
        raise SignInRefused(Refusal.MISSING_CLAIM)
    users = list(User.objects.filter(email__iexact=email)[:2])
    if len(users) > 1:
        raise SignInRefused(Refusal.AMBIGUOUS)
    if not users:
        return None
    user = users[0]
    if ExternalIdentity.objects.filter(provider=provider, user=user).exists():
        # The account was this provider's other sub: an address reassigned to someone else.
        raise SignInRefused(Refusal.LINKED_ELSEWHERE)
    return user


def _check(provider: IdentityProvider, user: Any) -> None:
    membership = getattr(user, "membership", None)
    if user.is_superuser:
        raise SignInRefused(Refusal.PLATFORM_ADMIN)
    if membership is None or membership.organisation_id != provider.organisation_id:
        raise SignInRefused(Refusal.OTHER_ORGANISATION)
    if not user.is_active:
        raise SignInRefused(Refusal.INACTIVE)


def _username(claims: dict[str, Any]) -> str:
    User = get_user_model()
    base = (claims.get("email") or f"sso-{claims['sub']}").strip().lower()[:140]
    candidate, n = base, 1
    while User.objects.filter(username__iexact=candidate).exists():
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def _set_roles(user: Any, roles: set[str]) -> None:
    groups = {g.name: g for g in Group.objects.filter(name__in=MAPPABLE_ROLES)}
    for name in MAPPABLE_ROLES:
        group = groups.get(name) or Group.objects.get_or_create(name=name)[0]
        if name in roles:
            user.groups.add(group)
        else:
            user.groups.remove(group)
    staff = bool(roles & {SUPERVISOR, ADMINISTRATOR})
    if user.is_staff != staff:
        user.is_staff = staff
        user.save(update_fields=["is_staff"])


def _create(provider: IdentityProvider, claims: dict[str, Any], roles: set[str] | None) -> Any:
    from agents.models import AgentProfile
    from organisations.models import Membership

    User = get_user_model()
    email = (claims.get("email") or "").strip()
    holder = (
        User.objects.filter(email__iexact=email).select_related("membership").first()
        if email
        else None
    )
    if holder is not None:
        # Never a second account for an address: in this body, an administrator links the
        # existing one (matching by sub); in another body, it is not this provider's.
        membership = getattr(holder, "membership", None)
        if membership is not None and membership.organisation_id == provider.organisation_id:
            raise SignInRefused(Refusal.UNLINKED)
        raise SignInRefused(Refusal.OTHER_ORGANISATION)
    user = User(
        username=_username(claims),
        email=email,
        first_name=str(claims.get("given_name") or "")[:150],
        # ProConnect gives usual_name; others family_name.
        last_name=str(claims.get("usual_name") or claims.get("family_name") or "")[:150],
    )
    user.set_unusable_password()  # signs in through the provider only (until one is set)
    user.save()
    Membership.objects.create(user=user, organisation_id=provider.organisation_id)
    _set_roles(user, roles if roles is not None else {AGENT})
    AgentProfile.objects.create(
        organisation_id=provider.organisation_id,
        user=user,
        team=provider.new_account_team,
        languages=["fr"],
    )
    return user


@transaction.atomic
def do_sign_in_from_claims(provider: IdentityProvider, claims: dict[str, Any]) -> Any:
    """The user these verified claims are, after every refusal rule; links the ``sub`` at the
    first sign-in and applies the provider's roles when it gives them."""
    if not claims.get("sub"):
        raise SignInRefused(Refusal.MISSING_CLAIM)
    roles = mapped_roles(provider, claims)
    if roles is not None and not roles:
        raise SignInRefused(Refusal.NO_ROLE)
    user = _find(provider, claims)
    if user is None:
        if not provider.create_accounts or provider.new_account_team_id is None:
            raise SignInRefused(Refusal.UNKNOWN)
        user = _create(provider, claims, roles)
    else:
        _check(provider, user)
        if roles is not None:
            _set_roles(user, roles)
    link, _created = ExternalIdentity.objects.get_or_create(
        provider=provider, user=user, defaults={"sub": str(claims["sub"])}
    )
    link.last_login_at = timezone.now()
    link.save(update_fields=["last_login_at"])
    return user


def provider_second_factor(provider: IdentityProvider, user: Any, what: str) -> Any:
    device, _created = ProviderSecondFactor.objects.get_or_create(
        provider=provider, user=user, defaults={"name": f"{provider.name} ({what})"[:64]}
    )
    if device.name != f"{provider.name} ({what})"[:64] or not device.confirmed:
        device.name = f"{provider.name} ({what})"[:64]
        device.confirmed = True
        device.save(update_fields=["name", "confirmed"])
    return device
