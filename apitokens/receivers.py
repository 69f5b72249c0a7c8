"""Personal tokens end with the person's session: revoked when they log out (the idle
timeout logs out too, see console/middleware.py)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_out

from .actions import revoke_personal_tokens
from .models import RevokeReason


def on_logout(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if user is not None:
        revoke_personal_tokens(user, RevokeReason.LOGOUT)


def connect() -> None:
    user_logged_out.connect(on_logout, dispatch_uid="apitokens.revoke_on_logout")
