"""An idle console socket on the Redis channel layer (issue 12): never dropped, and still torn
down at once when its server or event loop stops.

A consumer waits for its next message in a blocking Redis read (BZPOPMIN) that lasts
``CHANNEL_LAYER_BLOCKING_READ_SECONDS``; every reply is read with
``CHANNEL_LAYER_SOCKET_TIMEOUT``. When the socket timeout did not outlast the read (5 s both),
the read timed out, the consumer died and an idle console was disconnected every ~5 s. The
tests shorten both (read 1 s, socket timeout 2 s) and stay idle for more than twice the socket
timeout, so a read that timed out would have dropped the console twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.test import Client

from contactcentre.asgi import application
from kernel import events
from kernel.channel_layer import RedisChannelLayer, socket_timeout_of

pytestmark = [pytest.mark.redis]
# Tests with a console: its agent and session are read by the consumer's threads (or by the
# server process), so they are committed rows.
with_a_console = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
READ = 1.0  # the blocking read (production: 2 s)
SOCKET_TIMEOUT = 2.0  # the socket timeout (production: 5 s)
# Longer than two socket timeouts in a row, and than the old 5 s drop (the real-server test
# then fails on the code before the fix, which ignores the shortened values).
IDLE = 2 * SOCKET_TIMEOUT + 2


def _layers(backend: str = "kernel.channel_layer.RedisChannelLayer", **host: Any) -> Any:
    config: dict[str, Any] = {
        "hosts": [{"address": settings.REDIS_URL, **host}],
        "prefix": f"idle{os.getpid()}",
    }
    if backend.startswith("kernel."):
        config["blocking_read_seconds"] = READ
    return {"default": {"BACKEND": backend, "CONFIG": config}}


def _cookie(make_user: Callable[..., Any], username: str) -> str:
    user = make_user(username)
    client = Client()
    client.force_login(user)
    name = settings.SESSION_COOKIE_NAME
    return f"{name}={client.cookies[name].value}"


def _console(cookie: str) -> WebsocketCommunicator:
    headers = [
        (b"host", b"localhost"),
        (b"origin", b"http://localhost"),
        (b"cookie", cookie.encode()),
    ]
    return WebsocketCommunicator(application, "/ws/console/", headers=headers)


async def _idle_then_event(console: WebsocketCommunicator, agent_id: int) -> dict[str, Any]:
    """Stay idle IDLE seconds (failing at once if the consumer ends), then send the console an
    event through the layer and return what the console receives."""
    deadline = time.monotonic() + IDLE
    while time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        if console.future.done():  # the consumer died: its socket is gone
            console.future.result()  # raises what killed it
            raise AssertionError("the idle console's consumer ended")
    layer = get_channel_layer()
    assert layer is not None
    await layer.group_send(
        events.agent_group(agent_id),
        {"type": "cc.event", "event": "test.after_idle", "id": None, "payload": {"n": 1}},
    )
    while True:
        received: dict[str, Any] = await console.receive_json_from(timeout=5)
        if received.get("event") == "test.after_idle":
            return received


# --- An idle console is never dropped ---------------------------------------------------------


@pytest.mark.slow
@pytest.mark.postgres
@with_a_console
async def test_an_idle_console_stays_connected_and_still_receives(
    make_user: Callable[..., Any], settings: Any
) -> None:
    settings.CHANNEL_LAYERS = _layers(socket_timeout=SOCKET_TIMEOUT)
    console = _console(await sync_to_async(_cookie)(make_user, "idle-agent"))
    connected, _ = await console.connect()
    assert connected
    hello = await console.receive_json_from(timeout=5)
    assert hello["type"] == "hello"

    received = await _idle_then_event(console, hello["agent_id"])

    assert received["payload"] == {"n": 1}
    await console.disconnect()


@pytest.mark.slow
@pytest.mark.postgres
@with_a_console
async def test_a_socket_timeout_not_above_the_blocking_read_drops_an_idle_console(
    make_user: Callable[..., Any], settings: Any
) -> None:
    """What the setting prevents (and what the test above would catch): channels_redis as
    shipped (a 5 s blocking read) with a socket timeout below it; the consumer dies."""
    settings.CHANNEL_LAYERS = _layers("channels_redis.core.RedisChannelLayer", socket_timeout=1)
    console = _console(await sync_to_async(_cookie)(make_user, "dropped-agent"))
    connected, _ = await console.connect()
    assert connected
    hello = await console.receive_json_from(timeout=5)

    with pytest.raises(redis.exceptions.TimeoutError):
        await _idle_then_event(console, hello["agent_id"])
    assert console.future.done()


def test_the_layer_refuses_a_socket_timeout_that_does_not_outlast_its_read() -> None:
    url = settings.REDIS_URL
    for timeout in (2.0, 2.5):  # equal, then less than the 1 s margin
        with pytest.raises(ImproperlyConfigured, match="socket timeout"):
            RedisChannelLayer(
                hosts=[{"address": url, "socket_timeout": timeout}], blocking_read_seconds=2
            )
    # the timeout may come from the URL: it is checked too
    with pytest.raises(ImproperlyConfigured):
        RedisChannelLayer(hosts=[f"{url}?socket_timeout=2"], blocking_read_seconds=2)
    # and without any, redis-py's own default (5 s in redis-py 8) must outlast the read
    with pytest.raises(ImproperlyConfigured):
        RedisChannelLayer(hosts=[url], blocking_read_seconds=5)
    assert RedisChannelLayer(hosts=[url], blocking_read_seconds=2).brpop_timeout == 2


# --- Shutdown: a consumer blocked in its read ends at once ------------------------------------


def _blocked_readers() -> int:
    """Redis clients of this test's database blocked right now in a BZPOPMIN (other databases
    may be other test runs')."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        db = str(client.connection_pool.connection_kwargs.get("db", 0))
        listed = client.client_list()
    finally:
        client.close()
    return sum(
        1
        for c in listed
        if c.get("cmd") == "bzpopmin" and "b" in c.get("flags", "") and c.get("db") == db
    )


@pytest.mark.slow
@pytest.mark.postgres
@with_a_console
@pytest.mark.parametrize(
    ("backend", "host"),
    [
        ("kernel.channel_layer.RedisChannelLayer", {"socket_timeout": SOCKET_TIMEOUT}),
        # the options of 03f99b5, reverted in dff33c5 for "blocking reads that could not be
        # cancelled at test teardown", on channels_redis' own layer (a 5 s read) as then
        (
            "channels_redis.core.RedisChannelLayer",
            {
                "socket_timeout": 15,
                "socket_connect_timeout": 5,
                "socket_keepalive": True,
                "health_check_interval": 10,
            },
        ),
    ],
    ids=["configured", "03f99b5-keepalive-and-health-checks"],
)
def test_a_consumer_blocked_in_its_read_is_torn_down_with_its_event_loop(
    make_user: Callable[..., Any], settings: Any, backend: str, host: dict[str, Any]
) -> None:
    """pytest-asyncio's teardown (and ``asyncio.run``'s end): the loop's tasks are cancelled,
    then the loop closes (channels_redis then closes its connections). A console left connected,
    its consumer waiting in BZPOPMIN, must not hold that up."""
    settings.CHANNEL_LAYERS = _layers(backend, **host)
    cookie = _cookie(make_user, "teardown-agent")
    before = _blocked_readers()
    outcome: dict[str, Any] = {}

    async def leave_a_console_waiting() -> None:
        console = _console(cookie)
        connected, _ = await console.connect()
        assert connected
        assert (await console.receive_json_from(timeout=5))["type"] == "hello"
        # wait until its read is really blocked in Redis, past one full read
        await asyncio.sleep(READ + 0.5)
        deadline = time.monotonic() + 5
        while _blocked_readers() <= before and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        outcome["blocked"] = _blocked_readers() > before
        # the test ends here, the consumer still waiting: no disconnect

    def run() -> None:
        runner = asyncio.Runner()
        try:
            runner.run(leave_a_console_waiting())
            started = time.monotonic()
            runner.close()  # what pytest-asyncio does after each test
            outcome["teardown_s"] = time.monotonic() - started
        except BaseException as exc:  # reported below
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive(), "the event loop's teardown hung"
    assert "error" not in outcome, outcome.get("error")
    assert outcome["blocked"], "the consumer never waited in BZPOPMIN"
    assert outcome["teardown_s"] < 3, outcome
    # its Redis connection is closed: no blocked reader is left behind
    deadline = time.monotonic() + 3
    while _blocked_readers() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _blocked_readers() <= before


async def test_a_receive_asked_to_stop_starts_no_new_blocking_read() -> None:
    """The teardown hang of the chat socket tests: under load a consumer's receive task was
    cancelled, the cancellation got lost inside its Redis read (the task stayed "cancelling")
    and the receive went on sending BZPOPMIN for ever. Here the lost cancellation is made on
    purpose; the receive must end at once instead of waiting in its next read."""
    layer = RedisChannelLayer(
        hosts=[{"address": settings.REDIS_URL, "socket_timeout": SOCKET_TIMEOUT}],
        prefix=f"idle{os.getpid()}",
        blocking_read_seconds=READ,
    )
    channel = await layer.new_channel()

    async def receive_after_a_lost_cancellation() -> Any:
        with contextlib.suppress(asyncio.CancelledError):  # lost: not re-raised
            await asyncio.sleep(30)
        return await layer.receive(channel)

    task = asyncio.create_task(receive_after_a_lost_cancellation())
    await asyncio.sleep(0.05)
    task.cancel()
    started = time.monotonic()
    try:
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(task), timeout=4 * READ)
        assert task.cancelled()
        assert time.monotonic() - started < READ  # not even one read
    finally:
        task.cancel()
        await layer.close_pools()


# --- The real server: uvicorn over TCP --------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def short_read_server(tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen[bytes], Path]]:
    """uvicorn serving the test database with the shortened read and socket timeout."""
    db = connection.settings_dict
    port = _free_port()
    log = tmp_path / "server.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "contactcentre.settings_test",
        "DATABASE_URL": "postgres://{}@{}:{}/{}".format(
            db.get("USER") or "postgres",
            db.get("HOST") or "127.0.0.1",
            db.get("PORT") or 5432,
            db["NAME"],
        ),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "CHANNEL_LAYER_BACKEND": "core",  # the layer with a blocking read (not the default)
        "CHANNEL_LAYER_PREFIX": f"idle{os.getpid()}",  # as _layers(): the test publishes there
        "CHANNEL_LAYER_BLOCKING_READ_SECONDS": str(READ),
        "CHANNEL_LAYER_SOCKET_TIMEOUT": str(SOCKET_TIMEOUT),
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "uvicorn", "contactcentre.asgi:application"),
                *("--host", "127.0.0.1", "--port", str(port), "--lifespan", "off"),
                *("--ws-ping-interval", "0"),
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        yield port, process, log
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def _json(frame: str | bytes) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(frame)
    return value


@pytest.mark.slow
@pytest.mark.postgres
@with_a_console
def test_the_real_server_keeps_an_idle_console_and_stops_at_once(
    make_user: Callable[..., Any],
    short_read_server: tuple[int, subprocess.Popen[bytes], Path],
    settings: Any,
) -> None:
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    # This process publishes on the server's layer (core, same Redis and prefix).
    settings.CHANNEL_LAYERS = _layers(socket_timeout=SOCKET_TIMEOUT)

    port, server, log = short_read_server
    cookie = _cookie(make_user, "tcp-agent")
    url = f"ws://127.0.0.1:{port}/ws/console/"
    headers = {"Cookie": cookie, "Origin": f"http://127.0.0.1:{port}"}
    with connect(url, additional_headers=headers, open_timeout=10) as ws:
        hello = _json(ws.recv(timeout=10))
        assert hello["type"] == "hello"
        # idle: nothing arrives, and the socket stays open (a drop raises ConnectionClosed)
        with pytest.raises(TimeoutError):
            ws.recv(timeout=IDLE)
        # an event published the project's way (outbox row, then the layer) still arrives
        events.publish("test.after_idle", {"n": 2}, groups=[events.agent_group(hello["agent_id"])])
        deadline = time.monotonic() + 5
        while True:
            received = _json(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if received.get("event") == "test.after_idle":
                break
        assert received["payload"] == {"n": 2}

        # the server stops (SIGTERM, as on a deploy) while the console waits in its read
        started = time.monotonic()
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=15)
        stopped_in = time.monotonic() - started
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)
    assert stopped_in < 5, f"uvicorn took {stopped_in:.1f} s to stop"
    text = log.read_text(errors="replace")
    assert "Finished server process" in text, text  # a graceful shutdown, not a kill
    # (uvicorn re-raises the SIGTERM it caught once it has shut down)
    assert server.returncode in (0, -signal.SIGTERM)
    assert "Exception in ASGI application" not in text, text
    assert "Traceback" not in text, text


def test_the_configured_layer_outlasts_its_read(settings: Any) -> None:
    """The core layer as configured (not shortened): ours, its read from the settings,
    checked (the default backend is Pub/Sub, which has no blocking read)."""
    settings.CHANNEL_LAYERS = _layers(socket_timeout=settings.CHANNEL_LAYER_SOCKET_TIMEOUT)
    settings.CHANNEL_LAYERS["default"]["CONFIG"]["blocking_read_seconds"] = (
        settings.CHANNEL_LAYER_BLOCKING_READ_SECONDS
    )
    layer = get_channel_layer()
    assert isinstance(layer, RedisChannelLayer)
    assert layer.brpop_timeout == settings.CHANNEL_LAYER_BLOCKING_READ_SECONDS
    timeout = socket_timeout_of(layer.hosts[0])
    assert timeout is not None
    assert timeout >= layer.brpop_timeout + 1
