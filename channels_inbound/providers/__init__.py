"""Provider adapters for SMS and phone: see :mod:`.base`.

``get_provider()`` returns the webhook dialect named by ``TELEPHONY_PROVIDER`` (or by the
webhook's URL), ``get_backend()`` the REST backend named by ``TELEPHONY_BACKEND``.
"""

from __future__ import annotations

from django.conf import settings
from django.utils.module_loading import import_string

from .base import Backend, Provider

PROVIDERS = {"twilio": "channels_inbound.providers.twilio.TwilioProvider"}


def get_provider(name: str | None = None) -> Provider:
    path = PROVIDERS.get(name or settings.TELEPHONY_PROVIDER, name or settings.TELEPHONY_PROVIDER)
    provider: Provider = import_string(path)()
    return provider


def get_backend() -> Backend:
    backend: Backend = import_string(settings.TELEPHONY_BACKEND)()
    return backend


def outbound_retry_countdown(attempt: int, first: float | None = None) -> float:
    """Seconds before the attempt after ``attempt`` (1-based) of any outbound provider work
    (SMS, e-mail, media fetch, call bridge): doubling from ``first`` (by default
    ``OUTBOUND_RETRY_BACKOFF_S``; a call bridge waits less, its caller on hold), capped at one
    hour (within the broker's visibility timeout)."""
    base = settings.OUTBOUND_RETRY_BACKOFF_S if first is None else first
    return float(min(3600, base * 2 ** (attempt - 1)))
