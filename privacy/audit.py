"""Writing the access log: one call in each view that shows citizen data.

``log_access(request.user, AccessAction.VIEW_THREAD, interaction)`` records who saw what and
when. Rows name objects by type and id only (never a citizen's number, address, name or text),
so they survive an erasure unchanged. Configuration changes are written by PostgreSQL triggers
instead (migration 0002), which ``QuerySet.update()`` cannot bypass.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Model

from organisations.authz import Principal

from .models import AccessAction, AccessLog


def _organisation_id(obj: Model | None) -> int | None:
    if obj is None:
        return None
    if obj._meta.label_lower == "organisations.organisation":
        return int(obj.pk)
    org = getattr(obj, "organisation_id", None)
    if org is None and hasattr(obj, "interaction"):
        org = getattr(obj.interaction, "organisation_id", None)
    return org


def log_access(
    user: Any,
    action: AccessAction | str,
    obj: Model | None = None,
    *,
    organisation_id: int | None = None,
    **details: Any,
) -> AccessLog:
    """Append one line to the access log (in the caller's transaction)."""
    authenticated = bool(getattr(user, "is_authenticated", False))
    if authenticated:
        actor_id, actor_name = user.pk, str(user.get_username())[:150]
    elif isinstance(user, Principal) and user.token_name:  # an integration's service token
        actor_id, actor_name = None, f"token:{user.token_name}"
    else:  # the system (the purge)
        actor_id, actor_name = None, ""
    return AccessLog.objects.create(
        actor_id=actor_id,
        actor_name=actor_name[:150],
        organisation_id=organisation_id if organisation_id is not None else _organisation_id(obj),
        action=str(action),
        object_type=obj._meta.label_lower if obj is not None else "",
        object_id=str(obj.pk) if obj is not None else "",
        details=details,
    )
