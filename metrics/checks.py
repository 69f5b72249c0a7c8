"""System checks of the metrics endpoint's settings."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured

from kernel.clientip import networks

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
    from kernel.instruments import MULTIPROC_DIR

    if settings.PROMETHEUS_MULTIPROC_DIR != MULTIPROC_DIR:
        problems.append(
            Warning(
                "PROMETHEUS_MULTIPROC_DIR differs between the settings "
                f"({settings.PROMETHEUS_MULTIPROC_DIR!r}) and this process's environment when "
                f"prometheus-client started ({MULTIPROC_DIR!r}): this process's own counters "
                "are not in the directory /metrics reads.",
                hint="Set PROMETHEUS_MULTIPROC_DIR in the environment of every process, not in "
                "a settings override.",
                id="metrics.W002",
            )
        )
    return problems
