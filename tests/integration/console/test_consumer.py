"""The console socket: resume by event id, heartbeat, and sockets closed by logout or by an
account being disabled."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client
from django.utils import timezone

from agents.models import AgentPresence, AgentState, PauseReason
from agents.presence import do_set_agent_state
from contactcentre.asgi import application
from kernel.events import agent_group

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]


def _login(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _socket(client: Client) -> WebsocketCommunicator:
    name = settings.SESSION_COOKIE_NAME
    cookie = f"{name}={client.cookies[name].value}".encode()
    headers = [(b"host", b"localhost"), (b"origin", b"http://localhost"), (b"cookie", cookie)]
    return WebsocketCommunicator(application, "/ws/console/", headers=headers)


async def _open(client: Client) -> tuple[WebsocketCommunicator, int]:
    socket = _socket(client)
    connected, _ = await socket.connect()
    assert connected
    hello = await socket.receive_json_from()
    assert hello["type"] == "hello"
    return socket, hello["agent_id"]


async def test_reconnecting_console_gets_exactly_what_it_missed(make_user: Callable) -> None:
    user = await sync_to_async(make_user)("alice")
    client = await sync_to_async(_login)(user)
    socket, _ = await _open(client)
    profile = user.agent_profile
    await sync_to_async(do_set_agent_state)(agent=profile, state=AgentState.AVAILABLE)
    live = await socket.receive_json_from(timeout=3)
    assert live["event"] == "agent.state"
    last_applied = live["id"]
    # the connection drops; meanwhile the agent is paused by a supervisor
    await socket.disconnect()
    await sync_to_async(do_set_agent_state)(
        agent=profile, state=AgentState.PAUSED, reason=PauseReason.SUPERVISOR
    )
    socket, _ = await _open(client)
    await socket.send_json_to({"type": "resume", "last_event_id": last_applied})
    answer = await socket.receive_json_from(timeout=3)
    assert answer["type"] == "replay"
    missed = [e for e in answer["events"] if e["id"] > last_applied]
    assert [(e["event"], e["payload"]["state"]) for e in missed] == [("agent.state", "paused")]
    await socket.disconnect()


async def test_an_unknown_or_pruned_event_id_gets_a_fresh_snapshot(make_user: Callable) -> None:
    user = await sync_to_async(make_user)("alice")
    client = await sync_to_async(_login)(user)
    socket, agent_id = await _open(client)
    await socket.send_json_to({"type": "resume", "last_event_id": 999_999})
    answer = await socket.receive_json_from(timeout=3)
    assert answer["type"] == "snapshot"
    assert answer["state"]["agent"]["id"] == agent_id
    assert answer["state"]["offers"] == {}
    await socket.disconnect()


async def test_pushes_and_heartbeats_do_not_wait_for_database_work_in_progress(
    make_user: Callable,
) -> None:
    # given a console, and the thread that runs database work busy with a long job
    user = await sync_to_async(make_user)("alice")
    client = await sync_to_async(_login)(user)
    socket, agent_id = await _open(client)
    release = threading.Event()
    busy = asyncio.ensure_future(sync_to_async(release.wait)(10))
    await asyncio.sleep(0.1)
    try:
        # when an event is pushed to the agent and the console sends its heartbeat
        layer = get_channel_layer()
        assert layer is not None
        await layer.group_send(
            agent_group(agent_id),
            {"type": "cc.event", "id": 1, "event": "offer.created", "payload": {}, "at": ""},
        )
        await socket.send_json_to({"type": "heartbeat"})
        # then both reach the console while that job still runs
        first = await socket.receive_json_from(timeout=3)
        second = await socket.receive_json_from(timeout=3)
        assert {first["type"], second["type"]} == {"event", "heartbeat.ack"}
        assert not busy.done()
    finally:
        release.set()
        await busy
    await socket.disconnect()


async def test_heartbeat_keeps_the_agent_routable(make_user: Callable, settings: Any) -> None:
    settings.CONSOLE_HEARTBEAT_FLUSH_SECONDS = 0.1
    user = await sync_to_async(make_user)("alice")
    client = await sync_to_async(_login)(user)
    old = timezone.now() - timedelta(minutes=10)
    await sync_to_async(AgentPresence.objects.filter(agent__user=user).update)(
        last_heartbeat_at=old
    )
    socket, _ = await _open(client)
    await socket.send_json_to({"type": "heartbeat"})
    assert (await socket.receive_json_from(timeout=3))["type"] == "heartbeat.ack"
    # written in the next batch (one UPDATE for every console of the server process)
    for _ in range(30):
        await asyncio.sleep(0.1)
        presence = await sync_to_async(AgentPresence.objects.get)(agent__user=user)
        if presence.last_heartbeat_at and presence.last_heartbeat_at > old:
            break
    assert presence.last_heartbeat_at is not None
    assert presence.last_heartbeat_at > timezone.now() - timedelta(seconds=5)
    await socket.disconnect()


async def test_a_console_whose_session_went_idle_is_closed(
    make_user: Callable, settings: Any
) -> None:
    settings.CONSOLE_HEARTBEAT_FLUSH_SECONDS = 0.1
    settings.CONSOLE_SESSION_CHECK_SECONDS = 0.1
    user = await sync_to_async(make_user)("alice")
    client = await sync_to_async(_login)(user)
    socket, _ = await _open(client)

    # the agent left: the session's last activity is now older than the idle timeout
    def go_idle() -> None:
        session = client.session
        session["cc_last_activity"] = time.time() - settings.CONSOLE_IDLE_TIMEOUT_SECONDS - 1
        session.save()

    await sync_to_async(go_idle)()
    closed = await socket.receive_json_from(timeout=3)
    assert closed == {"type": "closed", "reason": "session"}
    assert (await socket.receive_output(timeout=3))["code"] == 4401


async def test_logout_closes_the_console_and_takes_the_agent_offline(make_user: Callable) -> None:
    user = await sync_to_async(make_user)("alice")
    client = await sync_to_async(_login)(user)
    await sync_to_async(do_set_agent_state)(agent=user.agent_profile, state=AgentState.AVAILABLE)
    socket, _ = await _open(client)
    await sync_to_async(client.post)("/accounts/logout/")
    messages = []
    while True:
        output = await socket.receive_output(timeout=3)
        if output["type"] == "websocket.close":
            break
        messages.append(output)
    assert output["code"] == 4401
    presence = await sync_to_async(AgentPresence.objects.get)(agent__user=user)
    assert presence.state == AgentState.OFFLINE


async def test_disabling_the_account_closes_the_console(make_user: Callable) -> None:
    user = await sync_to_async(make_user)("alice")
    client = await sync_to_async(_login)(user)
    socket, _ = await _open(client)
    user.is_active = False
    await sync_to_async(user.save)()
    while True:
        output = await socket.receive_output(timeout=3)
        if output["type"] == "websocket.close":
            break
    assert output["code"] == 4401


async def test_a_teleworker_without_second_factor_is_refused(make_user: Callable) -> None:
    user = await sync_to_async(make_user)("tele")
    profile = user.agent_profile
    profile.remote = True
    await sync_to_async(profile.save)()
    client = await sync_to_async(_login)(user)
    socket = _socket(client)
    connected, code = await socket.connect()
    assert not connected
    assert code == 4403


async def test_a_user_without_agent_profile_is_refused(make_user: Callable) -> None:
    user = await sync_to_async(make_user)("nobody", profile=False)
    client = await sync_to_async(_login)(user)
    connected, code = await _socket(client).connect()
    assert not connected
    assert code == 4403
