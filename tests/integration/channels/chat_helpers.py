"""Builders for the web chat tests: a mairie's widget with topics and a bot, an agent, and a
citizen's socket (``WebsocketCommunicator`` against the project's ASGI application)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.utils import timezone

from agents.models import AgentPresence, AgentProfile, AgentSkill, AgentState
from channels_inbound.chat import ratelimit
from channels_inbound.chat.models import ChatTopic, ChatWidget
from channels_inbound.models import Endpoint
from configuration.models import Queue, Skill
from flows.actions import do_create_flow_version, do_publish_flow_version
from flows.models import EndpointFlow, Flow

KEY = "mairie-exemple-2026"
ORIGIN = "https://www.mairie-exemple.fr"
HOST = b"contact.example.gouv.fr"

BOT_FLOW: dict[str, Any] = {
    "start": "accueil",
    "language": "fr",
    "nodes": {
        "accueil": {
            "type": "message",
            "text": "Bonjour, je suis l'assistant de la mairie.",
            "next": "menu",
        },
        "menu": {
            "type": "menu",
            "prompt": {"text": "Votre demande concerne :"},
            "options": [
                {"key": "1", "label": "Un acte de naissance", "next": "pour_qui"},
                {"key": "2", "label": "Autre chose", "next": "file"},
            ],
            "retries": 1,
            "invalid": {"text": "Choisissez une des réponses proposées."},
        },
        "pour_qui": {
            "type": "menu",
            "prompt": {"text": "Pour vous ou pour un proche ?"},
            "options": [
                {"key": "1", "label": "Pour moi", "next": "prioritaire"},
                {"key": "2", "label": "Pour un proche", "next": "file"},
            ],
        },
        "prioritaire": {
            "type": "set",
            "skills": {"etat-civil": 3},
            "priority": 2,
            "next": "file",
        },
        "file": {"type": "queue", "text": "Je vous mets en relation avec un conseiller."},
    },
}


def make_widget(*, flow: dict[str, Any] | None = BOT_FLOW, key: str = KEY) -> ChatWidget:
    for code in ("etat-civil", "urbanisme"):
        Skill.objects.get_or_create(code=code, defaults={"name": code})
    queue, _ = Queue.objects.get_or_create(
        code="mairie", defaults={"name": "Mairie d'Exemple", "sla_target_seconds": 60}
    )
    endpoint = Endpoint.objects.create(
        channel="chat", address=key, name="Mairie d'Exemple", queue=queue
    )
    widget = ChatWidget.objects.create(
        endpoint=endpoint,
        title="Mairie d'Exemple",
        allowed_origins=f"{ORIGIN}\nhttps://*.exemple.gouv.fr",
    )
    ChatTopic.objects.create(
        widget=widget,
        position=1,
        label="État civil",
        label_en="Civil status",
        skills={"etat-civil": 2},
    )
    ChatTopic.objects.create(widget=widget, position=2, label="Urbanisme", skills={"urbanisme": 1})
    if flow is not None:
        bot = Flow.objects.create(name=f"Assistant {key}")
        version = do_create_flow_version(flow=bot, graph=flow)
        do_publish_flow_version(version=version)
        EndpointFlow.objects.create(endpoint=endpoint, flow=bot)
    return widget


def make_agent(
    username: str = "claire", skills: dict[str, int] | None = None, *, available: bool = True
) -> AgentProfile:
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user(username, password="x", first_name="Claire")
    agent = AgentProfile.objects.create(user=user, languages=["fr"])
    for code, level in (skills or {"etat-civil": 4, "urbanisme": 4}).items():
        skill, _ = Skill.objects.get_or_create(code=code, defaults={"name": code})
        AgentSkill.objects.create(agent=agent, skill=skill, level=level)
    now = timezone.now()
    AgentPresence.objects.filter(agent=agent).update(
        state=AgentState.AVAILABLE if available else AgentState.OFFLINE,
        last_heartbeat_at=now,
        state_since=now,
        idle_since=now,
    )
    return agent


def topic_id(widget: ChatWidget, label: str) -> int:
    return int(widget.topics.get(label=label).pk)


@pytest.fixture(autouse=True)
def fresh_rate_limits() -> Iterator[None]:
    """Every test starts with full buckets (they live in Redis under CI)."""

    def clear() -> None:
        ratelimit.reset_memory_buckets()
        if settings.REDIS_URL:
            import redis

            client = redis.Redis.from_url(settings.REDIS_URL)
            keys = list(client.scan_iter(f"{ratelimit.KEY_PREFIX}*"))
            if keys:
                client.delete(*keys)
            client.close()

    clear()
    yield
    clear()


class Citizen:
    """One browser tab: a socket to the widget and the frames it received."""

    def __init__(self, communicator: WebsocketCommunicator) -> None:
        self.ws = communicator
        self.frames: list[dict[str, Any]] = []

    async def send(self, **frame: Any) -> None:
        await self.ws.send_json_to(frame)

    async def next(self, timeout: float = 5) -> dict[str, Any]:
        frame: dict[str, Any] = await self.ws.receive_json_from(timeout=timeout)
        self.frames.append(frame)
        return frame

    async def until(self, kind: str, timeout: float = 5, **match: Any) -> dict[str, Any]:
        """The next frame of type ``kind`` (matching ``match``), skipping the others."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            left = deadline - loop.time()
            try:
                # (a timeout here also stops the application: only at the very end)
                frame = await self.next(timeout=max(left, 0.01))
            except TimeoutError:
                raise AssertionError(f"no {kind} {match} frame; got {self.frames[-10:]}") from None
            if frame.get("type") == kind and all(frame.get(k) == v for k, v in match.items()):
                return frame

    async def nothing(self, timeout: float = 0.3) -> bool:
        return await self.ws.receive_nothing(timeout=timeout)

    async def close(self) -> None:
        await self.ws.disconnect()


def communicator(
    *, origin: str | None = ORIGIN, key: str = KEY, ip: str = "192.0.2.10"
) -> WebsocketCommunicator:
    from contactcentre.asgi import application

    headers = [(b"host", HOST)]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    ws = WebsocketCommunicator(application, f"/ws/chat/{key}/", headers=headers)
    ws.scope["client"] = (ip, 50000)
    return ws


async def connect(
    *, origin: str | None = ORIGIN, key: str = KEY, ip: str = "192.0.2.10"
) -> Citizen:
    ws = communicator(origin=origin, key=key, ip=ip)
    connected, code = await ws.connect()
    assert connected, f"refused with {code}"
    return Citizen(ws)


async def start_chat(
    citizen: Citizen, *, name: str = "Awa Diallo", topic: int | None = None, token: Any = None
) -> dict[str, Any]:
    """hello, then the pre-chat form (``topic``: the widget's first topic by default)."""
    if topic is None:
        from asgiref.sync import sync_to_async

        topic = await sync_to_async(
            lambda: (
                ChatTopic.objects.filter(widget__endpoint__address=KEY)
                .order_by("position")
                .values_list("pk", flat=True)
                .first()
            )
        )()
    await citizen.send(type="hello", token=token, lang="fr")
    hello = await citizen.until("welcome")
    assert hello["state"] == "prechat"
    await citizen.send(type="start", name=name, topic=topic)
    return await citizen.until("welcome")
