"""The chat's reactions to interaction status changes: the citizen's window follows the life
cycle (an agent joined, the conversation ended) without the router knowing about chat."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from interactions.channels import Channel
from interactions.models import Interaction
from kernel import event_catalogue
from kernel.events import publish

from .events import chat_group
from .models import ChatSession, ChatState
from .selectors import agent_name, display_state


def on_status_changed(
    *, interaction: Interaction, from_status: str, to_status: str, now: datetime, **_: Any
) -> None:
    if interaction.channel != Channel.CHAT:
        return
    sessions = list(
        ChatSession.objects.filter(
            interaction_id=interaction.pk, state=ChatState.HANDED_OVER
        ).values_list("pk", flat=True)
    )
    if not sessions:
        return
    state = display_state(ChatState.HANDED_OVER, to_status)
    agent = agent_name(interaction.assigned_agent_id) if state == "chatting" else ""
    publish(
        *event_catalogue.chat_state(state=state, agent=agent),
        groups=[chat_group(s) for s in sessions],
    )


def connect() -> None:
    from interactions.signals import interaction_status_changed

    interaction_status_changed.connect(on_status_changed, dispatch_uid="channels_chat.status")
