"""Site-wide HTTP middleware of the project (response headers and the like)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import HttpRequest, HttpResponseBadRequest, HttpResponseBase, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.utils.translation import gettext as _

PERMISSIONS_POLICY_HEADER = "Permissions-Policy"


def build_permissions_policy(policy: Mapping[str, Sequence[str]]) -> str:
    """``{"camera": [], "fullscreen": ["self"]}`` → ``camera=(), fullscreen=(self)``.

    Allow-list entries are ``self``, ``*`` or an origin (quoted in the header, as the
    structured-field syntax wants)."""

    def item(source: str) -> str:
        return source if source in {"self", "*"} else f'"{source}"'

    return ", ".join(
        f"{feature}=({' '.join(item(s) for s in sources)})" for feature, sources in policy.items()
    )


class PermissionsPolicyMiddleware:
    """Sends ``Permissions-Policy`` (settings.PERMISSIONS_POLICY) on every response, unless the
    view set one itself. The header is built once, at start-up."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response
        self.header = build_permissions_policy(getattr(settings, "PERMISSIONS_POLICY", {}))

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if self.header and PERMISSIONS_POLICY_HEADER not in response:
            response[PERMISSIONS_POLICY_HEADER] = self.header
        return response


def _has_nul(value: Any) -> bool:
    """A NUL character in a decoded JSON value (keys included)."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def request_has_nul(request: HttpRequest) -> bool:
    """A NUL character (raw or percent-encoded ``%00``) in the path, the query string, a form
    field or a JSON value. PostgreSQL cannot store one in text, and no field of ours takes
    one. Only file contents of multipart bodies may hold them (binary data)."""
    if "\x00" in request.path or "\x00" in request.path_info:
        return True
    query = request.META.get("QUERY_STRING", "")
    if "\x00" in query or "%00" in query:
        return True
    if request.method in {"GET", "HEAD", "OPTIONS"} and not request.META.get("CONTENT_LENGTH"):
        return False
    content_type = request.content_type or ""
    if content_type == "multipart/form-data":
        fields = [(key, value) for key, values in request.POST.lists() for value in values]
        names = [upload.name or "" for _key, uploads in request.FILES.lists() for upload in uploads]
        return any("\x00" in key + value for key, value in fields) or any(
            "\x00" in name for name in names
        )
    body = request.body
    if b"\x00" in body:
        return True
    if content_type == "application/x-www-form-urlencoded":
        return b"%00" in body
    if content_type == "application/json" or content_type.endswith("+json"):
        if b"\\u0000" not in body.lower():
            return False
        try:
            return _has_nul(json.loads(body))
        except ValueError:
            return False  # not JSON: the view says so
    return False


class RejectNulMiddleware:
    """Answers 400 with a clear message to a request holding a NUL character (see
    :func:`request_has_nul`), instead of letting it reach the database and fail there."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    # Provider webhooks carry citizens' own text: a NUL in an SMS is dropped by the channel
    # (what was sent is stored, never refused, or the provider would retry and then lose it).
    EXEMPT_PREFIXES = ("/webhooks/",)

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if request.path.startswith(self.EXEMPT_PREFIXES):
            return self.get_response(request)
        try:
            refused = request_has_nul(request)
        except (RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent, MultiPartParserError):
            refused = False  # the usual handling (400 or 413) happens where the body is read
        if not refused:
            return self.get_response(request)
        message = _("The request contains a null character (NUL), which is not allowed.")
        if request.path.startswith("/api/") or "json" in request.headers.get("Accept", ""):
            return JsonResponse({"error": "nul_character", "detail": message}, status=400)
        return HttpResponseBadRequest(message, content_type="text/plain; charset=utf-8")
