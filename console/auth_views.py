"""Second-factor pages (verify, enrol) and the idle-timeout ping."""

from __future__ import annotations

import time

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render, resolve_url
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST
from django_otp import login as otp_login
from django_otp.plugins.otp_totp.models import TOTPDevice

from kernel.redirects import safe_next_url

from .middleware import PASSIVE_HEADER, idle_seconds_left, touch

ENROL_SESSION_KEY = "cc_otp_enrol_device"


def _next(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    return safe_next_url(request, target, resolve_url(settings.LOGIN_REDIRECT_URL))


def _check(device: TOTPDevice, token: str) -> tuple[bool, str]:
    allowed, _details = device.verify_is_allowed()
    if not allowed:
        return False, _("Too many wrong codes: wait a moment before trying again.")
    if device.verify_token(token.replace(" ", "")):
        return True, ""
    return False, _("This code is not valid. Check your device's clock and try again.")


@login_required
def otp_verify(request: HttpRequest) -> HttpResponse:
    device = TOTPDevice.objects.filter(user=request.user, confirmed=True).first()
    if device is None:
        return redirect("otp-enrol")
    error = ""
    if request.method == "POST":
        ok, error = _check(device, request.POST.get("token", ""))
        if ok:
            otp_login(request, device)
            return redirect(_next(request))
    return render(request, "registration/otp_verify.html", {"error": error, "next": _next(request)})


@login_required
def otp_enrol(request: HttpRequest) -> HttpResponse:
    """Show a QR code and the secret; the first valid code confirms the device."""
    import qrcode
    import qrcode.image.svg

    if TOTPDevice.objects.filter(user=request.user, confirmed=True).exists():
        return redirect("otp-verify")
    device = TOTPDevice.objects.filter(
        user=request.user, confirmed=False, pk=request.session.get(ENROL_SESSION_KEY)
    ).first()
    if device is None:
        device = TOTPDevice.objects.create(user=request.user, name="console", confirmed=False)
        request.session[ENROL_SESSION_KEY] = device.pk
    error = ""
    if request.method == "POST":
        ok, error = _check(device, request.POST.get("token", ""))
        if ok:
            device.confirmed = True
            device.save(update_fields=["confirmed"])
            otp_login(request, device)
            request.session.pop(ENROL_SESSION_KEY, None)
            return redirect(_next(request))
    svg = qrcode.make(device.config_url, image_factory=qrcode.image.svg.SvgPathImage).to_string(
        encoding="unicode"
    )
    secret = device.config_url.split("secret=", 1)[1].split("&", 1)[0]
    return render(
        request,
        "registration/otp_enrol.html",
        {"error": error, "qr_svg": svg, "secret": secret, "next": _next(request)},
    )


@require_POST
def session_ping(request: HttpRequest) -> JsonResponse:
    """The agent is here (or pressed "Stay logged in"): the idle clock starts again. With the
    passive header it only reports the time left (another tab may have been used)."""
    if not request.user.is_authenticated:
        return JsonResponse({"detail": _("Your session has ended.")}, status=401)
    if not request.headers.get(PASSIVE_HEADER):
        touch(request)
    left = idle_seconds_left(request.session)
    return JsonResponse(
        {
            "seconds_left": round(
                left if left is not None else settings.CONSOLE_IDLE_TIMEOUT_SECONDS
            ),
            "server_time": time.time(),
        }
    )
