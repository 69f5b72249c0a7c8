"""The wallboard socket: supervisors only (with their second factor), a snapshot on opening,
a fresh one within a second of an event, scoped to the supervisor's teams."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from configuration.models import Queue, Team
from contactcentre.asgi import application
from interactions.actions import do_create_interaction

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]


def _login(user: Any, *, second_factor: bool = True) -> Client:
    from django_otp.plugins.otp_totp.models import TOTPDevice

    client = Client()
    client.force_login(user)
    if second_factor:
        device = TOTPDevice.objects.create(user=user, name="test", confirmed=True)
        session = client.session
        session["otp_device_id"] = device.persistent_id
        session.save()
    return client


def _socket(client: Client) -> WebsocketCommunicator:
    name = settings.SESSION_COOKIE_NAME
    cookie = f"{name}={client.cookies[name].value}".encode()
    headers = [(b"host", b"localhost"), (b"origin", b"http://localhost"), (b"cookie", cookie)]
    return WebsocketCommunicator(application, "/ws/supervision/wallboard/", headers=headers)


def _setup(make_user: Callable[..., Any]) -> tuple[Any, Queue, Queue]:
    north, south = Team.objects.create(name="Nord"), Team.objects.create(name="Sud")
    caf = Queue.objects.create(code="caf", name="CAF", team=north)
    cpam = Queue.objects.create(code="cpam", name="CPAM", team=south)
    sup = make_user("sup", role="supervisor")
    north.supervisors.add(sup)
    return sup, caf, cpam


async def test_snapshot_then_live_update_scoped_to_the_teams(make_user: Callable) -> None:
    sup, caf, _cpam = await sync_to_async(_setup)(make_user)
    client = await sync_to_async(_login)(sup)
    socket = _socket(client)
    connected, _ = await socket.connect()
    assert connected
    first = await socket.receive_json_from(timeout=5)
    assert first["type"] == "snapshot"
    assert [q["queue"] for q in first["data"]["queues"]] == ["CAF"]  # not the other team's
    # when a call arrives in CAF
    started = time.monotonic()
    await sync_to_async(do_create_interaction)(channel="voice", contact=None, queue=caf)
    update = await socket.receive_json_from(timeout=5)
    # then a fresh snapshot follows within a second
    assert time.monotonic() - started < 1.0
    (row,) = [q for q in update["data"]["queues"] if q["queue"] == "CAF"]
    assert (row["waiting"], row["arrived"]) == (1, 1)
    await socket.disconnect()


async def test_agents_and_supervisors_without_second_factor_are_refused(
    make_user: Callable,
) -> None:
    agent = await sync_to_async(make_user)("agent")
    socket = _socket(await sync_to_async(_login)(agent, second_factor=False))
    connected, code = await socket.connect()
    assert not connected
    assert code == 4403
    sup = await sync_to_async(make_user)("sup", role="supervisor")
    socket = _socket(await sync_to_async(_login)(sup, second_factor=False))
    connected, code = await socket.connect()
    assert not connected
    assert code == 4403


async def test_logging_an_agent_out_closes_their_console(make_user: Callable) -> None:
    from supervision.access import scope_for
    from supervision.actions import do_log_agent_out

    agent = await sync_to_async(make_user)("alice")
    sup = await sync_to_async(make_user)("sup", role="administrator")
    client = await sync_to_async(_login)(agent, second_factor=False)
    name = settings.SESSION_COOKIE_NAME
    cookie = f"{name}={client.cookies[name].value}".encode()
    headers = [(b"host", b"localhost"), (b"origin", b"http://localhost"), (b"cookie", cookie)]
    console = WebsocketCommunicator(application, "/ws/console/", headers=headers)
    connected, _ = await console.connect()
    assert connected
    assert (await console.receive_json_from(timeout=5))["type"] == "hello"
    # when a supervisor logs Alice out
    profile = await sync_to_async(lambda: agent.agent_profile)()
    everything = await sync_to_async(scope_for)(sup)
    assert everything is not None
    await sync_to_async(do_log_agent_out)(actor=sup, scope=everything, agent=profile)
    # then her console is told and closed (her session is gone too)
    while True:
        message = await console.receive_json_from(timeout=5)
        if message.get("type") == "closed":
            break
    assert message["reason"] == "logged_out_by_supervisor"
    assert await console.receive_output(timeout=5) == {"type": "websocket.close", "code": 4401}
