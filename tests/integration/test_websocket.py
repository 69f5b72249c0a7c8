"""WebSockets only from our own origin, and only for logged-in agents."""

from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from contactcentre.asgi import application
from kernel.events import agent_group, publish

pytestmark = [pytest.mark.django_db(transaction=True)]


async def _session_cookie(make_user: Any, username: str = "camille") -> bytes:
    user = await sync_to_async(make_user)(username, "agent")
    client = Client()
    await sync_to_async(client.force_login)(user)
    name = settings.SESSION_COOKIE_NAME
    return f"{name}={client.cookies[name].value}".encode()


def _communicator(origin: bytes | None, cookie: bytes | None = None) -> WebsocketCommunicator:
    headers = [(b"host", b"localhost")]
    if origin is not None:
        headers.append((b"origin", origin))
    if cookie is not None:
        headers.append((b"cookie", cookie))
    return WebsocketCommunicator(application, "/ws/console/", headers=headers)


async def test_socket_from_a_foreign_origin_is_refused(make_user: Any) -> None:
    cookie = await _session_cookie(make_user)
    communicator = _communicator(b"https://evil.example", cookie)
    connected, _ = await communicator.connect()
    assert not connected


async def test_socket_without_a_session_is_closed() -> None:
    communicator = _communicator(b"http://localhost")
    connected, code = await communicator.connect()
    assert not connected
    assert code == 4401


async def test_agent_socket_from_our_origin_receives_its_events(make_user: Any) -> None:
    cookie = await _session_cookie(make_user)
    communicator = _communicator(b"http://localhost", cookie)
    connected, _ = await communicator.connect()
    assert connected
    hello = await communicator.receive_json_from()
    assert hello["type"] == "hello"
    agent_id = hello["agent_id"]

    # An event published after a commit reaches the agent's console, with its outbox id.
    await sync_to_async(publish)("offer.created", {"offer_id": 7}, groups=[agent_group(agent_id)])
    event = await communicator.receive_json_from(timeout=3)
    assert event["type"] == "event"
    assert event["event"] == "offer.created"
    assert event["payload"] == {"offer_id": 7}
    assert isinstance(event["id"], int)
    await communicator.disconnect()
