"""Public pages (no login): a citizen's follow-up page, an organisation's quality results and
their open data. French first; ``?lang=en`` for English."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone, translation
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from channels_inbound.chat import ratelimit
from kernel.clientip import client_ip_for_request
from organisations.models import Organisation

from . import follow, opendata
from .figures import published_results
from .presentation import follow_context, quality_context

View = Callable[..., HttpResponse]


def _language(request: HttpRequest, default: str = "fr") -> str:
    asked = request.GET.get("lang", "")
    return asked if asked in ("fr", "en") else default


def in_language(view: View) -> View:
    """Render in the language of ``?lang=`` (French unless English is asked for)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        language = _language(request)
        with translation.override(language):
            response = view(request, *args, **kwargs)
        response["Content-Language"] = language
        return response

    return wrapper


def _public_headers(response: HttpResponse) -> HttpResponse:
    # A follow-up link is a secret: never sent on as a Referer, never indexed.
    response["Referrer-Policy"] = "no-referrer"
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


def _follow_limit() -> ratelimit.Limit:
    burst, per_minute = getattr(settings, "FOLLOW_RATE_LIMIT_IP", (30, 30))
    return ratelimit.Limit(int(burst), float(per_minute))


def _not_found(request: HttpRequest) -> HttpResponse:
    response = render(request, "publicquality/follow_unknown.html", status=404)
    return _public_headers(response)


@never_cache
@require_GET
@in_language
def follow_page(request: HttpRequest, token: str) -> HttpResponse:
    """The state of one request. Every request costs a token of the caller's address bucket,
    found or not, so links cannot be guessed by volume; all failures look alike (404)."""
    ident = client_ip_for_request(request) or "unknown"
    verdict = async_to_sync(ratelimit.take)("follow", ident, _follow_limit())
    if not verdict.allowed:
        response = render(request, "publicquality/follow_limited.html", status=429)
        response["Retry-After"] = str(max(1, int(verdict.retry_after + 0.999)))
        return _public_headers(response)
    try:
        link = follow.link_for_token(token)
    except follow.UnknownLink:
        return _not_found(request)
    follow.mark_viewed(link)
    state = follow.state_of(link.interaction)
    context = follow_context(state, token=token)
    return _public_headers(render(request, "publicquality/follow.html", context))


def _organisation(slug: str) -> Organisation:
    return get_object_or_404(Organisation, slug=slug, active=True)


@require_GET
@in_language
def quality_page(request: HttpRequest, org_slug: str) -> HttpResponse:
    organisation = _organisation(org_slug)
    results = published_results(organisation, timezone.localdate())
    context = quality_context(organisation, results)
    context["language"] = _language(request)
    return render(request, "publicquality/quality.html", context)


def _open_data(org_slug: str) -> tuple[Organisation, Any]:
    organisation = _organisation(org_slug)
    return organisation, published_results(organisation, timezone.localdate())


@require_GET
def quality_csv(request: HttpRequest, org_slug: str) -> HttpResponse:
    organisation, results = _open_data(org_slug)
    response = HttpResponse(
        opendata.as_csv(organisation, results), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="qualite-{organisation.slug}.csv"'
    response["Access-Control-Allow-Origin"] = "*"
    return response


@require_GET
def quality_json(request: HttpRequest, org_slug: str) -> HttpResponse:
    organisation, results = _open_data(org_slug)
    body = opendata.as_json(organisation, results, timezone.now())
    response = HttpResponse(
        json.dumps(body, ensure_ascii=False, indent=2), content_type="application/json"
    )
    response["Access-Control-Allow-Origin"] = "*"
    return response
