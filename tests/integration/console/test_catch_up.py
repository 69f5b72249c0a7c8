"""A console catches up on an event it missed without reconnecting (console/live.py).

The event is written to the outbox but its live message is lost (the publish to the channel
layer failed: Redis restarting, or another process on the in-memory layer). Within two rounds
of the console chores the open socket is told the newest id of its agent, the heartbeat
answer carries it too, and a ``resume`` on the same socket replays the missed event.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.test import Client

from agents.models import AgentState, PauseReason
from agents.presence import do_set_agent_state
from console import live, outbox
from contactcentre import events
from contactcentre.asgi import application

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]

ROUND = 0.2  # CONSOLE_HEARTBEAT_FLUSH_SECONDS in these tests


def _socket(user: Any) -> WebsocketCommunicator:
    client = Client()
    client.force_login(user)
    name = django_settings.SESSION_COOKIE_NAME
    cookie = f"{name}={client.cookies[name].value}".encode()
    headers = [(b"host", b"localhost"), (b"origin", b"http://localhost"), (b"cookie", cookie)]
    return WebsocketCommunicator(application, "/ws/console/", headers=headers)


async def _console(make_user: Callable[..., Any]) -> tuple[WebsocketCommunicator, Any]:
    """An open console that has applied everything so far (as the page does on load)."""
    user = await sync_to_async(make_user)("alice")
    await sync_to_async(do_set_agent_state)(agent=user.agent_profile, state=AgentState.AVAILABLE)
    socket = await sync_to_async(_socket)(user)
    connected, _ = await socket.connect()
    assert connected
    assert (await socket.receive_json_from(timeout=3))["type"] == "hello"
    last = await sync_to_async(outbox.last_event_id)(user.agent_profile.pk)
    assert last > 0
    await socket.send_json_to({"type": "resume", "last_event_id": last})
    assert (await socket.receive_json_from(timeout=3))["type"] == "replay"
    return socket, user.agent_profile


def _pause_with_the_publish_lost(agent: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as patch:
        patch.setattr(events, "_deliver", lambda deliveries: None)  # the publish never arrives
        do_set_agent_state(agent=agent, state=AgentState.PAUSED, reason=PauseReason.SUPERVISOR)


async def test_a_missed_event_reaches_the_open_console_within_two_rounds(
    make_user: Callable[..., Any], settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.CONSOLE_HEARTBEAT_FLUSH_SECONDS = ROUND
    socket, agent = await _console(make_user)
    before = await sync_to_async(outbox.last_event_id)(agent.pk)

    await sync_to_async(_pause_with_the_publish_lost)(agent, monkeypatch)
    missed = await sync_to_async(outbox.last_event_id)(agent.pk)
    assert missed > before  # in the outbox, never sent live

    # Without sending anything, the console is told it is behind (two rounds at most).
    told = await socket.receive_json_from(timeout=10 * ROUND + 3)
    assert told == {"type": "latest", "last_event_id": missed}
    # The heartbeat answer says the same.
    await socket.send_json_to({"type": "heartbeat"})
    assert await socket.receive_json_from(timeout=3) == {
        "type": "heartbeat.ack",
        "last_event_id": missed,
    }
    # It resumes on the same socket and gets the missed event.
    await socket.send_json_to({"type": "resume", "last_event_id": before})
    replay = await socket.receive_json_from(timeout=3)
    assert replay["type"] == "replay"
    caught = [e for e in replay["events"] if e["id"] > before]
    assert [(e["id"], e["event"], e["payload"]["state"]) for e in caught] == [
        (missed, "agent.state", "paused")
    ]
    # Caught up: told once, never again.
    assert await socket.receive_nothing(timeout=5 * ROUND)
    await socket.disconnect()


async def test_a_console_that_missed_nothing_is_never_told(
    make_user: Callable[..., Any], settings: Any
) -> None:
    settings.CONSOLE_HEARTBEAT_FLUSH_SECONDS = ROUND
    socket, agent = await _console(make_user)
    await sync_to_async(do_set_agent_state)(
        agent=agent, state=AgentState.PAUSED, reason=PauseReason.SUPERVISOR
    )
    live_event = await socket.receive_json_from(timeout=3)
    assert live_event["type"] == "event"
    # Several rounds pass: nothing but the heartbeat answer, which names what it already has.
    assert await socket.receive_nothing(timeout=5 * ROUND)
    await socket.send_json_to({"type": "heartbeat"})
    ack = await socket.receive_json_from(timeout=3)
    assert ack == {"type": "heartbeat.ack", "last_event_id": live_event["id"]}
    await socket.disconnect()


async def test_the_newest_ids_of_many_agents_come_from_one_query(
    make_user: Callable[..., Any], django_assert_num_queries: Any
) -> None:
    agents = []
    for name in ("a1", "a2", "a3"):
        user = await sync_to_async(make_user)(name)
        agents.append(user.agent_profile)
    for agent in agents[:2]:
        await sync_to_async(do_set_agent_state)(agent=agent, state=AgentState.AVAILABLE)

    def newest() -> dict[int, int]:
        with django_assert_num_queries(1):
            return outbox.latest_event_ids([a.pk for a in agents])

    found = await sync_to_async(newest)()
    expected = {}
    for agent in agents:
        last = await sync_to_async(outbox.last_event_id)(agent.pk)
        if last:
            expected[agent.pk] = last
    assert found == expected
    assert set(found) == {agents[0].pk, agents[1].pk}  # the third has no event kept


def test_told_once_per_id_and_only_for_ids_a_round_old() -> None:
    class Console:
        """What the chores see of a console (console.live.LiveConsole)."""

        def __init__(self, agent_id: int | None, sent: int) -> None:
            self.agent_id: int | None = agent_id
            self.user_id = 1
            self.session_key: str | None = None
            self.last_event_sent, self.told_latest = sent, 0
            self.told: list[int] = []

        async def end(self, reason: str) -> None:
            raise AssertionError("not ended here")

        async def tell_latest(self, last_event_id: int) -> None:
            self.told.append(last_event_id)

        async def rejoin_groups(self) -> None:
            raise AssertionError("not rejoined here")

    behind, current = Console(1, 10), Console(2, 20)
    saved = dict(live._settled)
    try:
        live._settled.clear()
        live._settled.update({1: 12, 2: 20})
        assert asyncio.run(live.tell_consoles_behind([behind, current])) == 1
        assert asyncio.run(live.tell_consoles_behind([behind, current])) == 0  # once per id
        live._settled[1] = 13
        asyncio.run(live.tell_consoles_behind([behind, current]))
    finally:
        live._settled.clear()
        live._settled.update(saved)
    assert behind.told == [12, 13]
    assert current.told == []
