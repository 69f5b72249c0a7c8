"""Site-wide HTTP middleware of the project (response headers and the like)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase

PERMISSIONS_POLICY_HEADER = "Permissions-Policy"


def build_permissions_policy(policy: Mapping[str, Sequence[str]]) -> str:
    """``{"camera": [], "fullscreen": ["self"]}`` → ``camera=(), fullscreen=(self)``.

    Allow-list entries are ``self``, ``*`` or an origin (quoted in the header, as the
    structured-field syntax wants)."""

    def item(source: str) -> str:
        return source if source in {"self", "*"} else f'"{source}"'

    return ", ".join(
        f"{feature}=({' '.join(item(s) for s in sources)})" for feature, sources in policy.items()
    )


class PermissionsPolicyMiddleware:
    """Sends ``Permissions-Policy`` (settings.PERMISSIONS_POLICY) on every response, unless the
    view set one itself. The header is built once, at start-up."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response
        self.header = build_permissions_policy(getattr(settings, "PERMISSIONS_POLICY", {}))

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if self.header and PERMISSIONS_POLICY_HEADER not in response:
            response[PERMISSIONS_POLICY_HEADER] = self.header
        return response
