"""Channels groups of every socket of one user or one login session, besides ``agent.<id>``
(:mod:`kernel.events`): the console and the wallboard join them, logging out, disabling an
account or a supervisor's log-out closes them."""

from __future__ import annotations

import hashlib

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer


def user_group(user_id: int) -> str:
    """Every socket of one user (closed when the account is disabled)."""
    return f"user.{user_id}"


def session_group(session_key: str) -> str:
    """Every socket of one login session (closed at logout). Hashed: group names are visible in
    Redis, session keys must not be."""
    digest = hashlib.sha256(session_key.encode()).hexdigest()[:40]
    return f"session.{digest}"


def close_sockets(group: str, *, reason: str) -> None:
    """Ask every socket in ``group`` to close (logout, account disabled): each consumer handles
    ``cc.force_close``."""
    layer = get_channel_layer()
    if layer is None:
        return
    async_to_sync(layer.group_send)(group, {"type": "cc.force_close", "reason": reason})
