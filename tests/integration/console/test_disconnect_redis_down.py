"""A console closing while the channel layer's Redis is down (issue 12, found in chaos logs):
leaving its groups fails, which used to log an ``Exception inside application`` traceback for
every console that closed during the outage. It is now one warning, without a traceback."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from tests.integration.test_events_redis_restart import PrivateRedis, private_redis

from .test_catch_up import _socket

__all__ = ["private_redis"]  # the fixture, used below

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]


async def test_a_console_closing_while_redis_is_down_logs_a_warning_not_a_traceback(
    make_user: Callable[..., Any],
    settings: Any,
    private_redis: PrivateRedis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "kernel.channel_layer.RedisChannelLayer",
            "CONFIG": {"hosts": [private_redis.url], "prefix": f"down{os.getpid()}"},
        }
    }
    user = await sync_to_async(make_user)("alice")
    socket = await sync_to_async(_socket)(user)
    connected, _ = await socket.connect()
    assert connected
    assert (await socket.receive_json_from(timeout=3))["type"] == "hello"
    # when Redis dies and the console closes
    private_redis.kill()
    with caplog.at_level(logging.WARNING):
        await socket.disconnect()
    # then warnings say the groups were not left, and nothing is logged with a traceback
    ours = [r for r in caplog.records if r.name == "console.consumers"]
    assert ours[0].getMessage().startswith("console groups not left, channel layer unavailable")
    assert {r.levelno for r in ours} == {logging.WARNING}
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []


async def test_a_closed_transport_while_leaving_groups_is_a_warning_too(
    make_user: Callable[..., Any],
    private_redis: PrivateRedis,
    settings: Any,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # uvloop raises RuntimeError ("unable to perform operation on <TCPTransport closed=True>")
    # when Redis died under a pooled connection (bench/chaos.py's Redis restart)
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "kernel.channel_layer.RedisChannelLayer",
            "CONFIG": {"hosts": [private_redis.url], "prefix": f"closed{os.getpid()}"},
        }
    }
    user = await sync_to_async(make_user)("bob")
    socket = await sync_to_async(_socket)(user)
    connected, _ = await socket.connect()
    assert connected
    assert (await socket.receive_json_from(timeout=3))["type"] == "hello"
    layer = get_channel_layer()

    async def closed_transport(group: str, channel: str) -> None:
        raise RuntimeError("unable to perform operation on <TCPTransport closed=True>")

    monkeypatch.setattr(layer, "group_discard", closed_transport)
    with caplog.at_level(logging.WARNING):
        await socket.disconnect()
    ours = [r for r in caplog.records if r.name == "console.consumers"]
    assert ours[0].getMessage().startswith("console groups not left, channel layer unavailable")
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []
