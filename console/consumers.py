"""The agent console's WebSocket: one per open console.

Protocol (JSON both ways; docs/console.md):

- server → ``{"type": "hello", "agent_id"}`` once accepted;
- console → ``{"type": "resume", "last_event_id": N}``: the server answers with the events after
  ``N`` (``{"type": "replay", "events": [...]}``) or, when they are gone, a fresh snapshot
  (``{"type": "snapshot", "state": {...}}``); then live events follow as
  ``{"type": "event", "id", "event", "payload", "at"}``;
- console → ``{"type": "heartbeat"}`` every ``CONSOLE_HEARTBEAT_SECONDS``: presence's proof of
  life; the server answers ``{"type": "heartbeat.ack"}`` and closes the socket if the session
  has ended meanwhile (logout elsewhere, idle timeout, account disabled);
- console → ``{"type": "typing", "interaction_id"}`` while the agent types a chat reply.

Close codes: 4401 not logged in / session over, 4403 not an agent or second factor missing.
"""

from __future__ import annotations

import logging
from importlib import import_module
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase

from agents.models import AgentProfile
from agents.presence import do_heartbeat
from contactcentre.events import agent_group

from . import outbox, replies
from .groups import session_group, user_group
from .middleware import idle_seconds_left
from .security import session_passed_second_factor
from .state import build_snapshot

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403


@database_sync_to_async
def _admit(user: Any, session: SessionBase | None) -> tuple[int | None, int]:
    """(agent id, close code) for the socket's user."""
    if not user or not user.is_authenticated or not user.is_active:
        return None, CLOSE_UNAUTHENTICATED
    left = idle_seconds_left(session) if session is not None else None
    if left is not None and left <= 0:
        return None, CLOSE_UNAUTHENTICATED
    agent_id = AgentProfile.objects.filter(user=user).values_list("pk", flat=True).first()
    if agent_id is None:
        return None, CLOSE_FORBIDDEN
    if not session_passed_second_factor(user, session):
        return None, CLOSE_FORBIDDEN
    do_heartbeat(agent_id=agent_id)
    return agent_id, 0


@database_sync_to_async
def _still_valid(user_id: int, session_key: str | None, agent_id: int) -> bool:
    """The session still exists and is not idle, the account is active: then a heartbeat."""
    from django.contrib.auth import get_user_model

    if not get_user_model().objects.filter(pk=user_id, is_active=True).exists():
        return False
    if session_key:
        store: SessionBase = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
        if not store.exists(session_key):
            return False
        left = idle_seconds_left(store)
        if left is not None and left <= 0:
            return False
    do_heartbeat(agent_id=agent_id)
    return True


@database_sync_to_async
def _resume(agent_id: int, last_event_id: int) -> dict[str, Any]:
    events = outbox.events_after(agent_id, last_event_id)
    if events is None:
        agent = AgentProfile.objects.get(pk=agent_id)
        return {"type": "snapshot", "state": build_snapshot(agent)}
    return {"type": "replay", "events": events}


class AgentConsoleConsumer(AsyncJsonWebsocketConsumer):
    agent_id: int | None = None
    groups_joined: list[str]

    async def connect(self) -> None:
        self.groups_joined = []
        user = self.scope.get("user")
        session = self.scope.get("session")
        agent_id, code = await _admit(user, session)
        if agent_id is None:
            await self.close(code=code)
            return
        self.agent_id = agent_id
        self.user_id = user.pk
        self.session_key = getattr(session, "session_key", None)
        groups = [agent_group(agent_id), user_group(self.user_id)]
        if self.session_key:
            groups.append(session_group(self.session_key))
        for group in groups:
            await self.channel_layer.group_add(group, self.channel_name)
        self.groups_joined = groups
        await self.accept()
        await self.send_json({"type": "hello", "agent_id": agent_id})

    async def disconnect(self, code: int) -> None:
        for group in self.groups_joined:
            await self.channel_layer.group_discard(group, self.channel_name)
        self.groups_joined = []

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if self.agent_id is None or not isinstance(content, dict):
            return
        kind = content.get("type")
        if kind == "heartbeat":
            if await _still_valid(self.user_id, self.session_key, self.agent_id):
                await self.send_json({"type": "heartbeat.ack"})
            else:
                await self.send_json({"type": "closed", "reason": "session"})
                await self.close(code=CLOSE_UNAUTHENTICATED)
        elif kind == "resume":
            last = content.get("last_event_id")
            last_id = last if isinstance(last, int) and not isinstance(last, bool) else 0
            await self.send_json(await _resume(self.agent_id, last_id))
        elif kind == "typing":
            interaction_id = content.get("interaction_id")
            if isinstance(interaction_id, int):
                await database_sync_to_async(replies.send_typing)(
                    interaction_id=interaction_id, agent_id=self.agent_id
                )

    async def cc_event(self, message: dict[str, Any]) -> None:
        await self.send_json(
            {
                "type": "event",
                "id": message.get("id"),
                "event": message["event"],
                "payload": message["payload"],
                "at": message.get("at"),
            }
        )

    async def cc_force_close(self, message: dict[str, Any]) -> None:
        await self.send_json({"type": "closed", "reason": message.get("reason", "")})
        await self.close(code=CLOSE_UNAUTHENTICATED)
