"""The REST API's token authentication: ``Authorization: Bearer <token>`` (``Token <token>``
is still accepted, as with the former DRF tokens)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AnonymousUser
from django.utils.translation import gettext as _
from django.utils.translation import pgettext
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from organisations import authz

from .actions import InvalidToken, check_token
from .models import PersonalToken, ServiceToken

KEYWORDS = (b"bearer", b"token")


def _service_models() -> frozenset[str]:
    """Models a service token may read (and, with the write scope, add and change): its
    organisation's data, not the accounts, memberships, audit or tokens."""
    return frozenset(
        label
        for label in authz.ORGANISATION_PATH
        if label not in authz.ADMIN_ONLY
        and label not in authz.PLATFORM_ONLY
        and not label.startswith(("organisations.", "apitokens."))
    )


class ServiceUser(AnonymousUser):
    """The user of a request made with a service token: not a row of the user table, but
    authenticated, acting as :meth:`authz.Principal.for_service` for its organisation."""

    is_active = True  # type: ignore[assignment]

    def __init__(self, token: ServiceToken) -> None:
        self.service_token = token
        self.username = f"service:{token.name}"  # type: ignore[assignment]
        setattr(
            self,
            authz._CACHE_ATTR,
            authz.Principal.for_service(
                organisation_id=token.organisation_id, write=token.writes, name=token.name
            ),
        )

    def __str__(self) -> str:
        return self.username

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ServiceUser) and other.service_token.pk == self.service_token.pk

    def __hash__(self) -> int:
        return hash(("service", self.service_token.pk))

    @property
    def is_anonymous(self) -> bool:  # type: ignore[override]
        return False

    @property
    def is_authenticated(self) -> bool:  # type: ignore[override]
        return True

    def get_username(self) -> str:
        return self.username

    def has_perm(self, perm: str, obj: Any = None) -> bool:
        app_label, _dot, codename = perm.partition(".")
        action, _sep, model = codename.partition("_")
        if f"{app_label}.{model}" not in _service_models():
            return False
        if action == "view":
            return True
        return self.service_token.writes and action in ("add", "change")

    def has_perms(self, perm_list: Any, obj: Any = None) -> bool:
        return all(self.has_perm(perm, obj) for perm in perm_list)

    def has_module_perms(self, module: str) -> bool:
        return any(label.startswith(f"{module}.") for label in _service_models())


class APITokenAuthentication(BaseAuthentication):
    """Personal tokens authenticate as their user; service tokens as a :class:`ServiceUser`.
    ``request.auth`` is the token's row."""

    def authenticate(self, request: Request) -> tuple[Any, PersonalToken | ServiceToken] | None:
        header = get_authorization_header(request).split()
        if not header or header[0].lower() not in KEYWORDS:
            return None
        if len(header) != 2:
            raise AuthenticationFailed(_("Invalid token header: give one token after Bearer."))
        try:
            raw = header[1].decode("ascii")
        except UnicodeError:
            raise AuthenticationFailed(pgettext("API token", "Invalid token.")) from None
        try:
            token = check_token(raw)
        except InvalidToken as exc:
            raise AuthenticationFailed(str(exc)) from None
        if isinstance(token, PersonalToken):
            return token.user, token
        return ServiceUser(token), token

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'
