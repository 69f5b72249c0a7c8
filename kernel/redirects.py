"""Where a ``next`` parameter may send the browser: back into this site only."""

from __future__ import annotations

from django.http import HttpRequest
from django.utils.http import url_has_allowed_host_and_scheme


def safe_next_url(request: HttpRequest, candidate: str | None, fallback: str) -> str:
    """``candidate`` when it is a relative URL of this site (``/console/?tab=2``), else
    ``fallback``. Absolute URLs, scheme-relative ones (``//evil.example``), other schemes
    (``javascript:``) and backslash tricks are refused: no open redirect through ``next``."""
    target = (candidate or "").strip()
    if (
        target.startswith("/")
        and not target.startswith(("//", "/\\"))
        and url_has_allowed_host_and_scheme(
            target, allowed_hosts=set(), require_https=request.is_secure()
        )
    ):
        return target
    return fallback
