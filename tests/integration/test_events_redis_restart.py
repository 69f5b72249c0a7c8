"""The channel layer's failure paths (issue 12): an idle console socket is never dropped, and
the first event published after a Redis restart is delivered, not lost.

The restart test runs its OWN redis-server on a spare loopback port (never the machine's): it
kills it with SIGKILL and starts it again on the same port."""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from channels_redis.core import RedisChannelLayer
from django.conf import settings
from django.test import Client

from contactcentre.asgi import application
from kernel import events
from organisations.models import Membership, sole_organisation

# ---------------------------------------------------------------------------------------------
# An idle console socket (the real ASGI app on the configured channels-redis layer)


def _socket(client: Client) -> WebsocketCommunicator:
    name = settings.SESSION_COOKIE_NAME
    cookie = f"{name}={client.cookies[name].value}".encode()
    headers = [(b"host", b"localhost"), (b"origin", b"http://localhost"), (b"cookie", cookie)]
    return WebsocketCommunicator(application, "/ws/console/", headers=headers)


def _agent_client(make_user: Callable[..., Any]) -> Client:
    user = make_user("idle-agent")
    Membership.objects.create(user=user, organisation_id=sole_organisation())
    client = Client()
    client.force_login(user)
    return client


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivateRedis:
    def __init__(self, port: int) -> None:
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary is not None
        options = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no"]
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), *options],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"the private redis-server on port {self.port} did not start")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = PrivateRedis(_free_port())
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_first_publish_after_a_redis_restart_is_delivered(
    private_redis: PrivateRedis, settings: Any
) -> None:
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [private_redis.url], "prefix": f"t{uuid.uuid4().hex[:8]}"},
        }
    }
    group = "restart-probe"
    prefix = settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"]
    assert isinstance(get_channel_layer(), RedisChannelLayer)  # events publishes through it

    def publish(n: int) -> Callable[[], None]:
        return lambda: events.publish("test.restart", {"n": n}, groups=[group], persist=False)

    # the long-lived publisher (events' own loop) connects and publishes once
    first = _join_and_wait_prefixed(private_redis.url, prefix, group, publish(1))
    assert first["payload"] == {"n": 1}
    # Redis is killed and restarts on the same port (empty: --save '')
    private_redis.kill()
    private_redis.start()
    # the member re-joins (a console re-subscribes on reconnect); the publisher's pooled
    # connection is the dead one: its next event must still arrive
    second = _join_and_wait_prefixed(private_redis.url, prefix, group, publish(2))
    assert second["event"] == "test.restart"
    assert second["payload"] == {"n": 2}


def _join_and_wait_prefixed(
    url: str, prefix: str, group: str, publish: Callable[[], None]
) -> dict[str, Any]:
    """A group member (its own layer, like a console in a web process) joins ``group``; the
    publisher then publishes; returns what the member receives."""

    async def run() -> dict[str, Any]:
        member = RedisChannelLayer(hosts=[url], prefix=prefix)
        channel = await member.new_channel()
        await member.group_add(group, channel)
        await sync_to_async(publish, thread_sensitive=False)()
        try:
            return await asyncio.wait_for(member.receive(channel), timeout=8)
        finally:
            await member.close_pools()

    return asyncio.run(run())
