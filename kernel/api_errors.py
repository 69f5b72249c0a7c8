"""The REST API's one mapping from business errors to HTTP (DRF's ``EXCEPTION_HANDLER``).

Every :class:`~kernel.errors.ApplicationError` an action raises answers
``{"code": ..., "detail": ...}`` (plus the error's own ``extra()`` fields) with the status of its
kind (``kernel.errors.HTTP_STATUS``: invalid 400, forbidden 403, not found 404, conflict
409). ``error`` repeats ``code``: the name API v1 clients read before it was called ``code``.
Anything else is DRF's own answer.
"""

from __future__ import annotations

from typing import Any

from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from .errors import ApplicationError


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ApplicationError):
        return Response(
            {"code": exc.code, "detail": str(exc), "error": exc.code, **exc.extra()},
            status=exc.http_status,
        )
    return drf_exception_handler(exc, context)
