"""The site menu's view of who is logged in (their role, from ``organisations.authz``)."""

from __future__ import annotations

from typing import Any

from django import template

register = template.Library()


@register.simple_tag(takes_context=True)
def nav_principal(context: dict[str, Any]) -> Any:
    """The request user's principal (cached on the user for the request), or None."""
    from organisations.authz import principal_for

    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    return principal_for(user)
