"""Who needs a second factor, whether a session has passed it, and what the console socket
needs to admit an agent. Teleworkers (``AgentProfile.remote``), supervisors, administrators and
data-protection officers must use one; whether a session passed it is the kernel's
(:mod:`kernel.second_factor`)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group
from django.db.models import Exists, OuterRef
from django_otp import user_has_device
from django_otp.plugins.otp_totp.models import TOTPDevice

from kernel.roles import ADMINISTRATOR, DATA_PROTECTION_OFFICER, SUPERVISOR
from kernel.second_factor import session_device_confirmed

from .models import AgentProfile


def second_factor_required(user: Any) -> bool:
    """Teleworkers, supervisors, administrators and data-protection officers must use a second
    factor."""
    if not getattr(user, "is_authenticated", False):
        return False
    if user.is_staff or user.is_superuser:
        return True
    if user.groups.filter(name__in=[SUPERVISOR, ADMINISTRATOR, DATA_PROTECTION_OFFICER]).exists():
        return True
    profile = getattr(user, "agent_profile", None)
    return bool(profile is not None and profile.remote)


def second_factor_expected(user: Any) -> bool:
    """The user must pass the second factor: it is required, or they enrolled a device."""
    return second_factor_required(user) or user_has_device(user, confirmed=True)


def session_passed_second_factor(user: Any, session: Any) -> bool:
    """A session that logged in with a code carries the device's id (when one is expected)."""
    if not second_factor_expected(user):
        return True
    return session_device_confirmed(user, session)


def agent_admission(user_id: int) -> dict[str, Any] | None:
    """What the console socket needs to admit a user, in one query: the agent profile's id,
    whether the user is a teleworker, a supervisor/administrator, or has a confirmed device."""
    return (
        AgentProfile.objects.filter(user_id=user_id)
        .annotate(
            privileged=Exists(
                Group.objects.filter(user=OuterRef("user_id"), name__in=[SUPERVISOR, ADMINISTRATOR])
            ),
            has_device=Exists(
                TOTPDevice.objects.filter(user_id=OuterRef("user_id"), confirmed=True)
            ),
        )
        .values("pk", "organisation_id", "remote", "privileged", "has_device")
        .first()
    )
