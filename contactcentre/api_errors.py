"""One mapping from business errors to HTTP, shared by every API view."""

from __future__ import annotations

from typing import Any

from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from contacts.actions import ContactError
from contacts.identity import InvalidIdentity
from interactions.lifecycle import IllegalTransition
from organisations.models import OrganisationMismatch, OrganisationRequired


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, IllegalTransition):
        return Response(
            {"error": "illegal_transition", "detail": str(exc), "status": exc.current},
            status=status.HTTP_409_CONFLICT,
        )
    if isinstance(exc, InvalidIdentity):
        return Response(
            {"error": "invalid_identity", "detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST
        )
    if isinstance(exc, ContactError):
        return Response(
            {"error": "contact_rule", "detail": str(exc)}, status=status.HTTP_409_CONFLICT
        )
    if isinstance(exc, OrganisationRequired):
        return Response(
            {
                "error": "organisation_required",
                "detail": "Several organisations exist: name one with ?organisation=<id>.",
            },
            status=status.HTTP_400_BAD_REQUEST,
        )
    if isinstance(exc, OrganisationMismatch):
        return Response(
            {"error": "other_organisation", "detail": str(exc)},
            status=status.HTTP_400_BAD_REQUEST,
        )
    return drf_exception_handler(exc, context)
