"""Whether a login session passed a second factor: django-otp's device bound to the session.

Who must pass one is a policy of the agents app (:mod:`agents.second_factor`: teleworkers and
the privileged roles)."""

from __future__ import annotations

from typing import Any

DEVICE_SESSION_KEY = "otp_device_id"  # django_otp's own session key


def session_device_confirmed(user: Any, session: Any) -> bool:
    """The session passed a second factor: a confirmed device of this user, of any kind (a
    TOTP code, or the identity provider's MFA accepted at a single sign-on, sso/)."""
    from django_otp.models import Device

    persistent_id = session.get(DEVICE_SESSION_KEY) if session is not None else None
    if not persistent_id:
        return False
    device = Device.from_persistent_id(str(persistent_id))
    return device is not None and device.user_id == user.pk and bool(device.confirmed)
