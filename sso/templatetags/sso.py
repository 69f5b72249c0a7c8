"""``{% sso_login_buttons next %}``: the login page's "Log in with <provider>" links, one per
organisation with an enabled provider."""

from __future__ import annotations

from typing import Any

from django import template

register = template.Library()


@register.inclusion_tag("sso/login_buttons.html")
def sso_login_buttons(next_url: str = "") -> dict[str, Any]:
    from sso.models import IdentityProvider

    providers = (
        IdentityProvider.objects.filter(enabled=True, organisation__active=True)
        .select_related("organisation")
        .order_by("organisation__name")
    )
    return {"providers": list(providers), "next": next_url}
