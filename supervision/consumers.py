"""The wallboard's WebSocket (``/ws/supervision/wallboard/``): supervisors only, scoped by team.

Protocol (JSON): the server sends ``{"type": "snapshot", "data": {...}}`` (see
``supervision.selectors.wallboard_snapshot``) when the socket opens, then again after events
reach the supervisors' group of an organisation the socket's scope covers (interaction moves,
offers, agent states, skill changes: ``kernel.events.supervisors_group``; a wallboard
never hears of another organisation's events),
coalesced over ``WALLBOARD_COALESCE_SECONDS`` so a burst of events costs one snapshot, and at
least every ``WALLBOARD_REFRESH_SECONDS`` as a safety net. The browser ticks waits and times in
state every second between snapshots. The client may send ``{"type": "refresh"}``.

Close codes: 4401 not logged in, 4403 not a supervisor or second factor missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings

from agents.second_factor import session_passed_second_factor
from kernel import logs
from kernel.consumers import JsonConsumer
from kernel.events import supervisors_group
from kernel.socket_groups import session_group, user_group

from .access import Scope, scope_for
from .selectors import wallboard_snapshot

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403


def coalesce_seconds() -> float:
    return float(getattr(settings, "WALLBOARD_COALESCE_SECONDS", 0.25))


def refresh_seconds() -> float:
    return float(getattr(settings, "WALLBOARD_REFRESH_SECONDS", 10.0))


@database_sync_to_async
def _admit(user: Any, session: Any) -> tuple[Scope | None, list[str], int]:
    """(scope, the organisations' event groups it listens to, close code)."""
    if not user or not getattr(user, "is_authenticated", False) or not user.is_active:
        return None, [], CLOSE_UNAUTHENTICATED
    scope = scope_for(user)
    if scope is None:
        return None, [], CLOSE_FORBIDDEN
    if not session_passed_second_factor(user, session):
        return None, [], CLOSE_FORBIDDEN
    # A supervisor of no team sees nothing: they listen to no organisation either.
    orgs = [] if scope.sees_nothing else scope.organisation_ids
    return scope, [supervisors_group(org) for org in orgs], 0


@database_sync_to_async
def _snapshot(scope: Scope) -> dict[str, Any]:
    return wallboard_snapshot(scope)


def _extra_groups(user_id: int, session_key: str | None) -> list[str]:
    """The console's per-user and per-session groups: logging out (or being disabled)
    closes the wallboard too."""
    groups = [user_group(user_id)]
    if session_key:
        groups.append(session_group(session_key))
    return groups


class WallboardConsumer(JsonConsumer):
    supervision_scope: Scope | None = None
    connected_at: float | None = None

    async def connect(self) -> None:
        self.groups_joined: list[str] = []
        self._pending: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None
        user = self.scope.get("user")
        session = self.scope.get("session")
        # Every line of this socket carries its id, user and organisation.
        logs.bind(
            request_id=logs.scope_request_id(self.scope),
            user_id=user.pk if user is not None and user.is_authenticated else None,
        )
        scope, org_groups, code = await _admit(user, session)
        if scope is None:
            logs.socket_event("wallboard", "refused", code=code)
            await self.close(code=code)
            return
        logs.bind(organisation_id=scope.organisation_id, agent_id=scope.principal.agent_id)
        self.supervision_scope = scope
        session_key = getattr(session, "session_key", None)
        groups = [*org_groups, *_extra_groups(user.pk, session_key)]
        for group in groups:
            await self.channel_layer.group_add(group, self.channel_name)
        self.groups_joined = groups
        await self.accept()
        self.connected_at = time.monotonic()
        logs.socket_event("wallboard", "connect")
        await self.send_snapshot()
        self._ticker = asyncio.create_task(self._tick())

    async def disconnect(self, code: int) -> None:
        logs.socket_closed("wallboard", self.connected_at, code)
        for task in (self._pending, self._ticker):
            if task is not None:
                task.cancel()
        for group in self.groups_joined:
            await self.channel_layer.group_discard(group, self.channel_name)
        self.groups_joined = []

    async def send_snapshot(self) -> None:
        if self.supervision_scope is None:
            return
        try:
            data = await _snapshot(self.supervision_scope)
        except Exception:  # a failed read must not kill the socket; the next event retries
            logger.exception("wallboard snapshot failed")
            return
        await self.send_json({"type": "snapshot", "data": data})

    async def _tick(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            while True:
                await asyncio.sleep(refresh_seconds())
                await self.send_snapshot()

    async def _send_later(self) -> None:
        try:
            await asyncio.sleep(coalesce_seconds())
            self._pending = None
            await self.send_snapshot()
        except asyncio.CancelledError:
            pass

    async def cc_event(self, message: dict[str, Any]) -> None:
        if self._pending is None:
            self._pending = asyncio.create_task(self._send_later())

    async def cc_force_close(self, message: dict[str, Any]) -> None:
        await self.close(code=CLOSE_UNAUTHENTICATED)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "refresh":
            await self.send_snapshot()
