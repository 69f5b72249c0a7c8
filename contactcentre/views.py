from __future__ import annotations

import time

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.templatetags.static import static
from django.utils.cache import patch_cache_control
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from interactions.lifecycle import Status
from interactions.models import Interaction
from kernel.clientip import request_from_networks


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Each role's own home, where login lands: agents the console, supervisors and
    administrators the wallboard, a data-protection officer the privacy pages. Someone with no
    role yet gets a page that says so (and how many contacts wait in their organisation)."""
    from organisations.authz import Role, principal_for, visible

    who = principal_for(request.user)
    profile = getattr(request.user, "agent_profile", None)  # None for a user with no profile
    if who.is_supervisor:
        return redirect("supervision:wallboard")
    if who.role == Role.AGENT and profile is not None:
        return redirect("console:console")
    if who.is_dpo:
        return redirect("privacy:search")
    waiting = visible(request.user, Interaction).filter(status=Status.QUEUED).count()
    return render(request, "home.html", {"profile": profile, "waiting": waiting})


def _check_database() -> dict[str, object]:
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"ok": True, "vendor": connection.vendor, "ms": _ms(started)}


def _check_redis() -> dict[str, object]:
    if not settings.REDIS_URL:
        return {"ok": True, "mode": "not configured (in-memory channel layer)"}
    import redis

    started = time.perf_counter()
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
    try:
        client.ping()
    finally:
        client.close()
    return {"ok": True, "ms": _ms(started)}


def _check_celery() -> dict[str, object]:
    if settings.CELERY_EMBEDDED:
        return {"ok": True, "mode": "embedded (tasks run in the server process)"}
    from contactcentre.celery import app

    replies = app.control.ping(timeout=1.0) or []
    return {"ok": bool(replies), "workers": len(replies)}


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


@require_GET
def favicon(request: HttpRequest) -> HttpResponse:
    """``/favicon.ico``, which browsers ask for on pages that name no icon (the API's, the
    widget's host pages): the site's icon, by its static URL (hashed in production), for a day."""
    response = redirect(static("img/favicon.svg"))
    patch_cache_control(response, public=True, max_age=86400)
    return response


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Readiness: database, Redis (when configured) and Celery workers (when not embedded).
    Only internal callers get the details (:func:`internal_caller`)."""
    checks: dict[str, dict[str, object]] = {}
    for name, check in (
        ("database", _check_database),
        ("redis", _check_redis),
        ("celery", _check_celery),
    ):
        try:
            checks[name] = check()
        except Exception as exc:
            checks[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    healthy = all(bool(c["ok"]) for c in checks.values())
    status = 200 if healthy else 503
    if not internal_caller(request):
        # Which component failed, versions and timings are for the operators' network only.
        return JsonResponse({"status": "ok" if healthy else "error"}, status=status)
    return JsonResponse(
        {"status": "ok" if healthy else "unavailable", "checks": checks}, status=status
    )


def internal_caller(request: HttpRequest) -> bool:
    """The client is in ``HEALTHZ_INTERNAL_NETWORKS`` (behind ``TRUSTED_PROXIES`` only; never
    through a proxy that is not trusted: :func:`~kernel.clientip.request_from_networks`)."""
    return request_from_networks(request, settings.HEALTHZ_INTERNAL_NETWORKS)
