"""Open consoles keep their live events when the channel layer's Redis restarts empty.

Group memberships live in Redis (channels_redis core layer). After a restart they are gone:
the consoles still open on this process received no live event any more (their offers came
only through the outbox catch-up, seconds late), as bench/chaos.py found. Each console chores
round checks a marker key of the process; when it is gone, every open console joins its groups
again (console/live.py, kernel/channel_layer.py).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from agents.models import AgentState, PauseReason
from agents.presence import do_set_agent_state
from console import live
from kernel.events import agent_group

from .test_catch_up import _socket

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]

ROUND = 0.2  # CONSOLE_HEARTBEAT_FLUSH_SECONDS in these tests


async def _forget_everything_of(layer: Any, groups: list[str]) -> None:
    """What a Redis restarted empty loses for this process: its groups and its marker (only
    this test's keys are deleted; the database is shared)."""
    async with layer.connection(0) as connection:
        await connection.delete(layer._marker_key, *(layer._group_key(g) for g in groups))


async def test_open_consoles_join_their_groups_again_after_redis_lost_them(
    make_user: Callable[..., Any], settings: Any
) -> None:
    settings.CONSOLE_HEARTBEAT_FLUSH_SECONDS = ROUND
    # The core layer keeps group memberships in Redis (Pub/Sub, the default, re-subscribes on
    # its own when its connection comes back).
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "kernel.channel_layer.RedisChannelLayer",
            "CONFIG": {
                "hosts": [settings.REDIS_URL],
                "prefix": f"restart{os.getpid()}",
                "blocking_read_seconds": 2.0,
            },
        }
    }
    layer = get_channel_layer()
    assert hasattr(layer, "lost_groups")
    user = await sync_to_async(make_user)("alice")
    agent = user.agent_profile
    socket = await sync_to_async(_socket)(user)
    connected, _ = await socket.connect()
    assert connected
    assert (await socket.receive_json_from(timeout=3))["type"] == "hello"
    await asyncio.sleep(3 * ROUND)  # the chores have set the marker

    await _forget_everything_of(layer, [agent_group(agent.pk), f"user.{user.pk}"])
    # Without the rejoin, a live event is no longer delivered: check the group is empty.
    async with layer.connection(0) as connection:
        assert await connection.zcard(layer._group_key(agent_group(agent.pk))) == 0

    await asyncio.sleep(3 * ROUND)  # a round or two: the console joins its groups again
    async with layer.connection(0) as connection:
        assert await connection.zcard(layer._group_key(agent_group(agent.pk))) == 1

    await sync_to_async(do_set_agent_state)(
        agent=agent, state=AgentState.PAUSED, reason=PauseReason.SUPERVISOR
    )
    event = await socket.receive_json_from(timeout=3)
    while event["type"] != "event":  # a catch-up replay may come first; the live event follows
        event = await socket.receive_json_from(timeout=3)
    assert event["event"] == "agent.state"
    await socket.disconnect()


def test_a_console_gone_mid_round_does_not_stop_the_round() -> None:
    from tests.integration.console.test_catch_up import _Console

    gone, present = _Console(1, 4, set(), fails=True), _Console(2, 6, set())
    saved = dict(live._seen_last_round)
    recent = {1: [5], 2: [7]}
    try:
        live._seen_last_round.clear()
        live._seen_last_round.update({1: {5}, 2: {7}})

        async def round_with_events() -> int:
            def found(ids: Any) -> dict[int, dict[str, Any]]:
                return {i: {"id": i, "event": "agent.state", "payload": {}} for i in ids}

            from console import outbox

            original = outbox.events_by_ids
            outbox.events_by_ids = found
            try:
                return await live.catch_up([gone, present], recent)
            finally:
                outbox.events_by_ids = original

        assert asyncio.run(round_with_events()) == 1
    finally:
        live._seen_last_round.clear()
        live._seen_last_round.update(saved)
    assert present.pushed == [[7]]
