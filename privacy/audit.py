"""Writing the access log: the privacy app's access recorder behind ``kernel.audit``.

Views that show citizen data call ``kernel.audit.log_access(request.user,
AccessAction.VIEW_THREAD, interaction)``; :func:`record_access`, registered by
``PrivacyConfig.ready()``, writes the line in the caller's transaction. Rows name objects by
type and id only (never a citizen's number, address, name or text), so they survive an erasure
unchanged. Configuration changes are written by PostgreSQL triggers instead (migration 0002),
which ``QuerySet.update()`` cannot bypass.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Model

from organisations.authz import Principal

from .models import AccessLog


def _organisation_id(obj: Model | None) -> int | None:
    if obj is None:
        return None
    if obj._meta.label_lower == "organisations.organisation":
        return int(obj.pk)
    org = getattr(obj, "organisation_id", None)
    if org is None and hasattr(obj, "interaction"):
        org = getattr(obj.interaction, "organisation_id", None)
    return org


def record_access(
    user: Any,
    action: str,
    obj: Model | None,
    organisation_id: int | None,
    details: dict[str, Any],
) -> None:
    """Append one line to the access log (in the caller's transaction)."""
    authenticated = bool(getattr(user, "is_authenticated", False))
    if authenticated:
        actor_id, actor_name = user.pk, str(user.get_username())[:150]
    elif isinstance(user, Principal) and user.token_name:  # an integration's service token
        actor_id, actor_name = None, f"token:{user.token_name}"
    else:  # the system (the purge)
        actor_id, actor_name = None, ""
    AccessLog.objects.create(
        actor_id=actor_id,
        actor_name=actor_name[:150],
        organisation_id=organisation_id if organisation_id is not None else _organisation_id(obj),
        action=action,
        object_type=obj._meta.label_lower if obj is not None else "",
        object_id=str(obj.pk) if obj is not None else "",
        details=details,
    )
