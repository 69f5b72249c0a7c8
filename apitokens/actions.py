"""Making, checking and revoking API tokens (every write to a token goes through here).

A token is ``<kind>_<prefix>_<secret>``: ``ccp`` for a person, ``ccs`` for a service; the
prefix (12 hexadecimal characters) is public and finds the row, the secret (256 random bits)
is never stored: the row keeps the SHA-256 of the whole token.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from django.utils.translation import gettext as _
from django.utils.translation import pgettext

from agents.second_factor import second_factor_expected
from organisations import authz

from .models import PersonalToken, RevokeReason, ServiceToken

PERSONAL = "ccp"
SERVICE = "ccs"
PREFIX_BYTES = 6  # 12 hexadecimal characters
SECRET_BYTES = 32
# Write tokens' last use at most this often (one UPDATE per token and minute, not per call).
LAST_USED_GRANULARITY = timedelta(seconds=60)


class InvalidToken(Exception):
    """The token is unknown, revoked, expired or no longer valid for its account."""


class SecondFactorNeeded(PermissionDenied):
    """The account must pass a second factor before it gets a token."""


def token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def _new_secret(kind: str) -> tuple[str, str]:
    prefix = secrets.token_hex(PREFIX_BYTES)
    return prefix, f"{kind}_{prefix}_{secrets.token_urlsafe(SECRET_BYTES)}"


def parse(raw: str) -> tuple[str, str]:
    """(kind, prefix) of a presented token; InvalidToken when it has not the right shape."""
    parts = raw.split("_", 2)
    if len(parts) != 3 or parts[0] not in (PERSONAL, SERVICE) or not parts[1] or not parts[2]:
        raise InvalidToken(pgettext("API token", "Invalid token."))
    return parts[0], parts[1]


def token_ttl() -> timedelta:
    return timedelta(seconds=settings.API_TOKEN_TTL_SECONDS)


def needs_second_factor(user: Any) -> bool:
    return bool(second_factor_expected(user))


# --------------------------------------------------------------------------- personal tokens


def do_issue_personal_token(user: Any, *, second_factor: bool) -> tuple[PersonalToken, str]:
    """A new personal token for ``user`` (who has just proved who they are); returns the row
    and the token, shown once. Refused when the account needs a second factor it did not
    pass."""
    if not user.is_active:
        raise PermissionDenied(_("This account is disabled."))
    if not second_factor and needs_second_factor(user):
        raise SecondFactorNeeded(_("This account needs a second factor to get an API token."))
    now = timezone.now()
    for _attempt in range(3):
        prefix, raw = _new_secret(PERSONAL)
        try:
            with transaction.atomic():
                token = PersonalToken.objects.create(
                    user=user,
                    prefix=prefix,
                    key_hash=token_hash(raw),
                    auth_hash=user.get_session_auth_hash(),
                    second_factor=second_factor,
                    created_at=now,
                    expires_at=now + token_ttl(),
                )
            return token, raw
        except IntegrityError:  # the same random prefix twice: draw again
            continue
    raise RuntimeError("could not draw a unique token prefix")


def revoke_personal_tokens(user: Any, reason: str) -> int:
    """Revoke every active personal token of ``user``; returns how many."""
    if getattr(user, "pk", None) is None:
        return 0
    return PersonalToken.objects.filter(user_id=user.pk, revoked_at=None).update(
        revoked_at=timezone.now(), revoked_reason=reason
    )


def do_revoke_presented_token(actor: Any, token: PersonalToken | ServiceToken) -> None:
    """The holder of a token gives it up (DELETE /api/v1/auth/token/)."""
    now = timezone.now()
    if isinstance(token, PersonalToken):
        if token.user_id != getattr(actor, "pk", None):
            raise PermissionDenied(_("This is not your token."))
        PersonalToken.objects.filter(pk=token.pk, revoked_at=None).update(
            revoked_at=now, revoked_reason=RevokeReason.API
        )
    else:
        if getattr(actor, "service_token", None) != token:
            raise PermissionDenied(_("This is not your token."))
        ServiceToken.objects.filter(pk=token.pk, revoked_at=None).update(revoked_at=now)


# --------------------------------------------------------------------------- service tokens


def _check_manager(actor: Any) -> authz.Principal:
    p = authz.principal_for(actor)
    if not p.is_org_admin:
        raise authz.OutOfScope(_("Only administrators manage service tokens."))
    return p


def do_create_service_token(
    actor: Any,
    *,
    name: str,
    organisation_id: int | None,
    scope: str,
    expires_at: datetime | None = None,
) -> tuple[ServiceToken, str]:
    """A new service token in ``organisation_id`` (an organisation administrator: only their
    own); returns the row and the token, shown once."""
    _check_manager(actor)
    org_id = authz.organisation_for_new(actor, organisation_id)
    if scope not in ServiceToken.Scope.values:
        raise ValidationError({"scope": _("Unknown scope.")})
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationError({"expires_at": _("The expiry date must be in the future.")})
    prefix, raw = _new_secret(SERVICE)
    token = ServiceToken(
        name=name.strip(),
        organisation_id=org_id,
        scope=scope,
        prefix=prefix,
        key_hash=token_hash(raw),
        created_by=actor if getattr(actor, "pk", None) else None,
        expires_at=expires_at,
    )
    token.full_clean()
    token.save()
    return token, raw


def do_revoke_service_token(actor: Any, token: ServiceToken) -> bool:
    """Revoke a service token (an organisation administrator: only their organisation's).
    Returns False when it was already revoked."""
    _check_manager(actor)
    authz.check_change(actor, token)
    updated = ServiceToken.objects.filter(pk=token.pk, revoked_at=None).update(
        revoked_at=timezone.now(), revoked_by=actor if getattr(actor, "pk", None) else None
    )
    token.refresh_from_db(fields=["revoked_at", "revoked_by"])
    return bool(updated)


# --------------------------------------------------------------------------- checking


def _touch(model: type[PersonalToken | ServiceToken], token: Any, now: datetime) -> None:
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_GRANULARITY:
        model.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now


def check_token(raw: str) -> PersonalToken | ServiceToken:
    """The token row behind a presented token, or InvalidToken saying why it is refused."""
    kind, prefix = parse(raw)
    token: PersonalToken | ServiceToken | None
    if kind == PERSONAL:
        token = PersonalToken.objects.select_related("user").filter(prefix=prefix).first()
    else:
        token = ServiceToken.objects.select_related("organisation").filter(prefix=prefix).first()
    if token is None or not constant_time_compare(token.key_hash, token_hash(raw)):
        raise InvalidToken(pgettext("API token", "Invalid token."))
    now = timezone.now()
    if token.revoked_at is not None:
        raise InvalidToken(_("This token has been revoked."))
    if token.expires_at is not None and token.expires_at <= now:
        raise InvalidToken(_("This token has expired."))
    if isinstance(token, PersonalToken):
        user = token.user
        if not user.is_active:
            raise InvalidToken(_("This account is disabled."))
        if not constant_time_compare(token.auth_hash, user.get_session_auth_hash()):
            PersonalToken.objects.filter(pk=token.pk, revoked_at=None).update(
                revoked_at=now, revoked_reason=RevokeReason.PASSWORD
            )
            raise InvalidToken(_("The password has changed since this token was made."))
        if not token.second_factor and needs_second_factor(user):
            raise InvalidToken(_("This account now needs a second factor: get a new token."))
        _touch(PersonalToken, token, now)
    else:
        if not token.organisation.active:
            raise InvalidToken(_("This token's organisation is inactive."))
        _touch(ServiceToken, token, now)
    return token
