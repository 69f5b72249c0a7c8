"""Builders for routing tests: skills, queues, agents that are logged in and available."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from agents.models import AgentPresence, AgentProfile, AgentSkill, AgentState
from configuration.models import Queue, QueueSkill, Skill
from interactions.actions import do_create_interaction
from interactions.models import Interaction


@pytest.fixture
def skill(db: Any) -> Callable[[str], Skill]:
    def make(code: str) -> Skill:
        return Skill.objects.get_or_create(code=code, defaults={"name": code})[0]

    return make


@pytest.fixture
def queue(skill: Callable[[str], Skill]) -> Callable[..., Queue]:
    def make(code: str = "caf", needs: dict[str, int] | None = None, **fields: Any) -> Queue:
        q = Queue.objects.create(code=code, name=code, **fields)
        for skill_code, level in (needs or {}).items():
            QueueSkill.objects.create(queue=q, skill=skill(skill_code), min_level=level)
        return q

    return make


@pytest.fixture
def agent(skill: Callable[[str], Skill]) -> Callable[..., AgentProfile]:
    def make(
        username: str,
        skills: dict[str, int] | None = None,
        *,
        available: bool = True,
        channels: list[str] | None = None,
        now: datetime | None = None,
        **profile: Any,
    ) -> AgentProfile:
        now = now or timezone.now()
        user = get_user_model().objects.create_user(username, password="x")
        a = AgentProfile.objects.create(
            user=user, languages=profile.pop("languages", ["fr"]), **profile
        )
        for code, level in (skills or {}).items():
            AgentSkill.objects.create(agent=a, skill=skill(code), level=level)
        AgentPresence.objects.filter(agent=a).update(
            state=AgentState.AVAILABLE if available else AgentState.OFFLINE,
            last_heartbeat_at=now,
            state_since=now,
            idle_since=now,
            **({"channels_enabled": channels} if channels is not None else {}),
        )
        return a

    return make


@pytest.fixture
def arrive() -> Callable[..., Interaction]:
    def make(
        queue: Queue, channel: str = "voice", *, now: datetime | None = None, **kw: Any
    ) -> Interaction:
        return do_create_interaction(
            channel=channel, contact=kw.pop("contact", None), queue=queue, now=now, **kw
        )

    return make
