"""Second factor and idle timeout, for every page (the WebSocket checks the same rules)."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import gettext as _

from agents.second_factor import AccessFacts, access_facts

# Paths a half-logged-in user may reach (log in, log out, the code pages) and machine paths.
EXEMPT_PREFIXES = (
    "/accounts/",
    "/static/",
    "/i18n/",
    "/healthz",
    "/metrics",
    "/webhooks/",
    "/media/",
)
IDLE_EXEMPT_PREFIXES = ("/static/", "/i18n/", "/healthz", "/metrics", "/webhooks/", "/media/")
LAST_ACTIVITY_KEY = "cc_last_activity"
PASSIVE_HEADER = "X-Console-Passive"  # requests the console makes on its own (not activity)


def _wants_json(request: HttpRequest) -> bool:
    return request.path.startswith("/api/") or "application/json" in request.headers.get(
        "Accept", ""
    )


_ACCESS_ATTR = "_cc_access"


def request_access(request: HttpRequest) -> AccessFacts:
    """The signed-in user's :class:`~agents.second_factor.AccessFacts` (agent profile, roles
    needing a second factor, device), read once per request (one statement) and shared by the
    second-factor check and the console's ``agent_required``."""
    user = request.user
    cached = getattr(request, _ACCESS_ATTR, None)
    if cached is not None and cached[0] == user.pk:
        facts: AccessFacts = cached[1]
        return facts
    facts = access_facts(user)
    setattr(request, _ACCESS_ATTR, (user.pk, facts))
    return facts


class SecondFactorMiddleware:
    """A user who must pass a second factor reaches nothing else until they have."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if (
            user.is_authenticated
            and not request.path.startswith(EXEMPT_PREFIXES)
            and not getattr(user, "is_verified", lambda: False)()
            and (facts := request_access(request)).second_factor_expected(user)
        ):
            if _wants_json(request):
                return JsonResponse({"detail": _("A second factor is needed.")}, status=403)
            target = "otp-verify" if facts.has_device else "otp-enrol"
            query = urlencode({"next": request.get_full_path()})
            return redirect(f"{reverse(target)}?{query}")
        return self.get_response(request)


def idle_seconds_left(session: object, now: float | None = None) -> float | None:
    """Seconds before the session ends for inactivity (``None``: no activity recorded)."""
    last = getattr(session, "get", lambda _k: None)(LAST_ACTIVITY_KEY)
    if last is None:
        return None
    now = time.time() if now is None else now
    return settings.CONSOLE_IDLE_TIMEOUT_SECONDS - (now - float(last))


def touch(request: HttpRequest) -> None:
    request.session[LAST_ACTIVITY_KEY] = time.time()


class IdleTimeoutMiddleware:
    """End a session after ``CONSOLE_IDLE_TIMEOUT_SECONDS`` without the user doing anything.

    Every request counts as activity except those the console sends on its own (header
    ``X-Console-Passive``). The console warns before the end and lets the agent extend.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated and not request.path.startswith(IDLE_EXEMPT_PREFIXES):
            left = idle_seconds_left(request.session)
            if left is not None and left <= 0:
                from apitokens.actions import revoke_personal_tokens

                revoke_personal_tokens(request.user, "idle")  # the user's API tokens end too
                logout(request)
                if _wants_json(request):
                    return JsonResponse({"detail": _("Your session has ended.")}, status=401)
                messages.info(request, _("Your session ended after a period of inactivity."))
                query = urlencode({"next": request.get_full_path()})
                return redirect(f"{reverse('login')}?{query}")
            if not request.headers.get(PASSIVE_HEADER):
                last = request.session.get(LAST_ACTIVITY_KEY)
                if last is None or time.time() - float(last) > 5:
                    touch(request)
        return self.get_response(request)
