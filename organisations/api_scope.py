"""How every REST viewset uses the authorization layer (:mod:`organisations.authz`).

- Reads: ``get_queryset`` starts from :func:`authz.visible`, so list and detail only ever hold
  rows the caller may read; a row out of scope answers 404 (ids cannot be probed across
  organisations).
- Writes: :meth:`ScopedViewSetMixin.check_change` (authz's ``editable``) answers 403 for a row
  the caller sees but may not change; the app's action (``do_*``) checks again with the actor.
- Input: foreign keys are looked up in :func:`authz.visible` / :func:`authz.editable` querysets
  built per request (:func:`request_user`), so a record never links to another organisation's.
"""

from __future__ import annotations

from typing import Any, TypeVar

from django.contrib.auth import get_user_model
from django.db.models import Model, QuerySet
from django.utils.translation import gettext as _
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request

from organisations import authz

M = TypeVar("M", bound=Model)


def request_user(serializer: Any) -> Any:
    """The user behind the request a serializer was given in its context (None without one)."""
    request = serializer.context.get("request") if hasattr(serializer, "context") else None
    return getattr(request, "user", None)


def audit_user(user: Any) -> Any:
    """The user to record as author of a change: a user row, or None for an integration's
    service token (its requests carry a service principal, not a row of the user table)."""
    return user if isinstance(user, get_user_model()) else None


def int_param(request: Request, name: str) -> int | None:
    """A numeric query parameter, or None when absent; anything else answers 400."""
    raw = request.query_params.get(name)
    if not raw:
        return None
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise ValidationError({name: _("Expected a number.")}) from None


def own_rows(user: Any, qs: QuerySet[M]) -> QuerySet[M]:
    """The rows of ``qs`` the user may link a new or changed record to: readable, and of the
    user's own organisation (never another's shared through an agreement)."""
    p = authz.principal_for(user)
    rows = authz.visible(user, qs)
    if p.is_platform_admin:
        return rows
    if p.organisation_id is None:
        return rows.none()
    return rows.filter(organisation_id=p.organisation_id)


class ScopedViewSetMixin(GenericAPIView):
    """Reads through ``visible`` (404 outside it), writes checked with ``editable`` (403)."""

    def scoped(self, qs: QuerySet[M]) -> QuerySet[M]:
        return authz.visible(self.request.user, qs)

    def check_change(self, obj: Model) -> None:
        if not authz.can_change(self.request.user, obj):
            raise PermissionDenied(_("You may not change this record."))
