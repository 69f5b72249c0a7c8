"""System checks of the metrics endpoint's settings."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured

from contactcentre.clientip import networks

MIN_TOKEN_LENGTH = 24


@register(Tags.security)
def check_metrics_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    problems: list[CheckMessage] = []
    try:
        networks(settings.METRICS_ALLOWED_NETWORKS)
    except ImproperlyConfigured as exc:
        problems.append(Error(f"METRICS_ALLOWED_NETWORKS: {exc}.", id="metrics.E001"))
    token = settings.METRICS_TOKEN
    if token and len(token) < MIN_TOKEN_LENGTH:
        problems.append(
            Warning(
                f"METRICS_TOKEN is shorter than {MIN_TOKEN_LENGTH} characters.",
                hint='Use a long random value: python3 -c "import secrets; '
                'print(secrets.token_urlsafe(32))"',
                id="metrics.W001",
            )
        )
    return problems
