"""What every provider webhook view does first: POST only, bounded size, signature checked.

    @provider_webhook
    def sms_inbound(request, provider): ...

- anything but POST: 405;
- a body larger than ``TELEPHONY_WEBHOOK_MAX_BYTES``: 413, refused before it is read;
- a missing or wrong signature: 403 (checked against ``PUBLIC_BASE_URL`` + the path and query,
  the URL the provider was configured with; without ``PUBLIC_BASE_URL``, the URL Django sees);
- a :class:`~.base.WebhookError` raised by the view (missing or malformed field): 400 with the
  reason in plain text.

Every answer is timed and every error counted per provider and webhook
(``cc_webhook_duration_seconds``, ``cc_webhook_errors_total``: docs/operations.md, "Metrics").
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from kernel import instruments

from . import get_provider
from .base import Provider, WebhookError

logger = logging.getLogger("channels_inbound.webhooks")

WebhookView = Callable[[HttpRequest, Provider], HttpResponse]


def public_url(request: HttpRequest) -> str:
    base = settings.PUBLIC_BASE_URL
    if base:
        return base.rstrip("/") + request.get_full_path()
    return request.build_absolute_uri()


def absolute(path: str) -> str:
    """The public URL of one of our webhook paths (what we give the provider to call back)."""
    return settings.PUBLIC_BASE_URL.rstrip("/") + path if settings.PUBLIC_BASE_URL else path


def _plain(status: int, text: str) -> HttpResponse:
    return HttpResponse(text + "\n", status=status, content_type="text/plain; charset=utf-8")


def provider_webhook(view: WebhookView) -> Callable[..., HttpResponse]:
    @csrf_exempt
    @functools.wraps(view)
    def wrapper(request: HttpRequest, provider: str = "") -> HttpResponse:
        started = time.perf_counter()
        status = 500  # an exception escaping the view
        try:
            response = _checked(view, request, provider)
            status = response.status_code
            return response
        finally:
            instruments.webhook_answered(
                provider=provider or settings.TELEPHONY_PROVIDER,
                webhook=view.__name__,
                status=status,
                seconds=time.perf_counter() - started,
            )

    return wrapper


def _checked(view: WebhookView, request: HttpRequest, provider: str) -> HttpResponse:
    if request.method != "POST":
        response = _plain(405, "POST only")
        response["Allow"] = "POST"
        return response
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return _plain(400, "bad Content-Length")
    if length > settings.TELEPHONY_WEBHOOK_MAX_BYTES:
        return _plain(413, f"body larger than {settings.TELEPHONY_WEBHOOK_MAX_BYTES} bytes")
    adapter = get_provider(provider or None)
    try:
        if len(request.body) > settings.TELEPHONY_WEBHOOK_MAX_BYTES:  # chunked, no length
            return _plain(413, f"body larger than {settings.TELEPHONY_WEBHOOK_MAX_BYTES} bytes")
        params = request.POST
    except Exception:  # RequestDataTooBig, TooManyFieldsSent, malformed multipart
        logger.warning("unreadable webhook body on %s", request.path)
        return _plain(400, "unreadable form body")
    if not adapter.validate_request(
        url=public_url(request), params=params, headers=request.headers
    ):
        logger.warning("bad or missing signature on %s", request.path)
        return _plain(403, "invalid signature")
    try:
        return view(request, adapter)
    except WebhookError as exc:
        return _plain(400, str(exc))


def markup(provider: Provider, body: str) -> HttpResponse:
    return HttpResponse(body, content_type=f"{provider.voice_content_type}; charset=utf-8")
