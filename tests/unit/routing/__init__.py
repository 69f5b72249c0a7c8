"""Pure routing tests (no Django, no database), and the builders they share."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from routing.policy import DEFAULT_CAPACITY, AgentSnapshot, InteractionSnapshot

ALL_CHANNELS = frozenset({"voice", "chat", "email", "sms"})


def agent(
    agent_id: int,
    skills: Mapping[str, int] | None = None,
    *,
    languages: Iterable[str] = ("fr",),
    channels: Iterable[str] = ALL_CHANNELS,
    load: Mapping[str, int] | None = None,
    capacity: Mapping[str, int] | None = None,
    **kw: Any,
) -> AgentSnapshot:
    return AgentSnapshot(
        agent_id=agent_id,
        skills=dict(skills or {}),
        languages=frozenset(languages),
        available_channels=frozenset(channels),
        capacity=dict(DEFAULT_CAPACITY if capacity is None else capacity),
        load=dict(load or {}),
        **kw,
    )


def contact(
    interaction_id: int,
    skills: Mapping[str, int] | None = None,
    *,
    channel: str = "voice",
    queue_id: int = 1,
    enqueued_at: float = 0.0,
    **kw: Any,
) -> InteractionSnapshot:
    return InteractionSnapshot(
        interaction_id=interaction_id,
        channel=channel,
        queue_id=queue_id,
        enqueued_at=enqueued_at,
        required_skills=dict(skills or {}),
        **kw,
    )
