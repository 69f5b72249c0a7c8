"""The agent console's WebSocket: one per open console, joined to the agent's group."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from contactcentre.events import agent_group

from .models import AgentProfile


@database_sync_to_async
def _agent_id_for(user: Any) -> int | None:
    if not user or not user.is_authenticated or not user.is_active:
        return None
    return AgentProfile.objects.filter(user=user).values_list("pk", flat=True).first()


class AgentConsoleConsumer(AsyncJsonWebsocketConsumer):
    group: str | None = None

    async def connect(self) -> None:
        agent_id = await _agent_id_for(self.scope.get("user"))
        if agent_id is None:
            await self.close(code=4401)
            return
        self.group = agent_group(agent_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_json({"event": "hello", "payload": {"agent_id": agent_id}})

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def cc_event(self, message: dict[str, Any]) -> None:
        await self.send_json({"event": message["event"], "payload": message["payload"]})
