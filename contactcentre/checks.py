"""System checks of the project (``manage.py check --deploy``)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, register
from django.core.exceptions import ImproperlyConfigured

from kernel.clientip import networks

# Django's own weak-key rule (security.W009), here an error: signed sessions, password-reset
# links and chat visitor tokens can be forged with a known or guessable key.
INSECURE_PREFIX = "django-insecure"
MIN_LENGTH = 50
MIN_UNIQUE_CHARACTERS = 5


def secret_key_problem(key: str) -> str | None:
    if not key:
        return "it is empty"
    if key.startswith(INSECURE_PREFIX):
        return "it is the development default (or another 'django-insecure' key)"
    if len(key) < MIN_LENGTH or len(set(key)) < MIN_UNIQUE_CHARACTERS:
        return (
            f"it is weak (fewer than {MIN_LENGTH} characters or {MIN_UNIQUE_CHARACTERS} "
            "different characters)"
        )
    return None


@register(Tags.security, deploy=True)
def check_secret_key(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    problem = secret_key_problem(str(getattr(settings, "SECRET_KEY", "") or ""))
    if problem is None:
        return []
    return [
        Error(
            f"DJANGO_SECRET_KEY is not safe for production: {problem}.",
            hint='Set DJANGO_SECRET_KEY to a long random value: python3 -c "import secrets; '
            'print(secrets.token_urlsafe(50))"',
            id="contactcentre.E001",
        )
    ]


@register(Tags.security)
def check_networks(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """TRUSTED_PROXIES and HEALTHZ_INTERNAL_NETWORKS hold addresses or CIDR networks."""
    errors: list[CheckMessage] = []
    for name in ("TRUSTED_PROXIES", "HEALTHZ_INTERNAL_NETWORKS"):
        try:
            networks(getattr(settings, name, ()))
        except ImproperlyConfigured as exc:
            errors.append(Error(f"{name}: {exc}.", id="contactcentre.E002"))
    return errors
