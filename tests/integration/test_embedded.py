"""The embedded default (``python3 dev.py run``): in-memory channel layer, in-process tasks.

- the outbox poller sends the agent events another process wrote to the consoles connected
  here, only once, starting at the newest id (no history), and goes on after a database error;
- ``manage.py serve`` runs the SMTP server in its own process: an e-mail received over SMTP is
  offered live on an open console, and an event written to the outbox by another process (this
  test process) reaches that console too.

The scheduler's side (every beat entry registered and run) is in
``tests/integration/routing/test_failure_paths.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import smtplib
import subprocess
import sys
import time
from collections.abc import Iterator
from email import policy
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.db import connection
from django.test import Client
from django.utils import timezone

from agents.models import AgentPresence, AgentState
from console.models import AgentEvent
from console.outbox import record_agent_events
from contactcentre.embedded import OutboxPoller
from kernel.events import publish
from organisations.models import Membership, sole_organisation
from tests.integration.channels.email_helpers import (
    OUR_ADDRESS,
    email_endpoint,
    free_port,
    make_mail,
)

__all__ = ["email_endpoint"]

ROOT = Path(__file__).resolve().parents[2]
IN_MEMORY = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


def another_process_writes(agent_id: int, event: str, payload: dict[str, Any]) -> int:
    """What a management command or a separate ``smtp_server`` leaves behind: the outbox row,
    committed, and no publish on this process' channel layer."""
    [(event_id, _payload, _at)] = record_agent_events([(agent_id, event, payload)])
    return event_id


def make_agent(make_user: Any, username: str, *, channels: list[str] | None = None) -> Any:
    user = make_user(username, "agent")
    Membership.objects.create(user=user, organisation_id=sole_organisation())
    now = timezone.now()
    AgentPresence.objects.filter(agent=user.agent_profile).update(
        state=AgentState.AVAILABLE,
        last_heartbeat_at=now,
        state_since=now,
        idle_since=now,
        channels_enabled=channels or ["email"],
    )
    return user


def session_cookie(user: Any) -> str:
    client = Client()
    client.force_login(user)
    name = django_settings.SESSION_COOKIE_NAME
    return f"{name}={client.cookies[name].value}"


# --------------------------------------------------------------------------- the outbox poller


@pytest.fixture
def in_memory_layer(settings: Any) -> None:
    settings.CHANNEL_LAYERS = IN_MEMORY


async def console_socket(make_user: Any, username: str) -> tuple[WebsocketCommunicator, int]:
    from contactcentre.asgi import application

    user = await sync_to_async(make_agent)(make_user, username)
    cookie = await sync_to_async(session_cookie)(user)
    communicator = WebsocketCommunicator(
        application,
        "/ws/console/",
        headers=[
            (b"host", b"localhost"),
            (b"origin", b"http://localhost"),
            (b"cookie", cookie.encode()),
        ],
    )
    connected, _ = await communicator.connect()
    assert connected
    hello = await communicator.receive_json_from()
    assert hello["type"] == "hello"
    return communicator, int(hello["agent_id"])


@pytest.mark.django_db(transaction=True)
async def test_events_another_process_wrote_reach_the_console_once_and_in_order(
    in_memory_layer: None, make_user: Any
) -> None:
    # given an agent's console on the in-memory layer, and history already in the outbox
    communicator, agent_id = await console_socket(make_user, "camille")
    old = await sync_to_async(another_process_writes)(agent_id, "offer.created", {"offer_id": 1})
    poller = OutboxPoller(interval=0.2)
    await poller.start()
    try:
        # when another process writes two events (no publish on our layer)
        first = await sync_to_async(another_process_writes)(
            agent_id, "offer.created", {"offer_id": 2}
        )
        second = await sync_to_async(another_process_writes)(
            agent_id, "offer.expired", {"offer_id": 2}
        )

        # then the console gets both within a few seconds, in id order, and not the history
        got = [await communicator.receive_json_from(timeout=5) for _ in range(2)]
        assert [(m["type"], m["id"], m["event"]) for m in got] == [
            ("event", first, "offer.created"),
            ("event", second, "offer.expired"),
        ]
        assert got[0]["payload"] == {"offer_id": 2}
        assert old < first

        # and an event published by this process is sent live once, not again by the poller
        await sync_to_async(publish)(
            "agent.state", {"state": "paused"}, groups=[f"agent.{agent_id}"]
        )
        live = await communicator.receive_json_from(timeout=3)
        assert live["event"] == "agent.state"
        assert live["id"] > second
        assert await communicator.receive_nothing(timeout=1.0)
        assert poller.sent == 2
    finally:
        await poller.stop()
        await communicator.disconnect()

    # and once stopped it sends nothing more, and leaves the outbox as it found it
    from kernel import events

    assert events._agent_outbox is record_agent_events
    assert poller.task is None


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
async def test_the_poller_goes_on_after_the_database_was_unreachable(
    in_memory_layer: None, make_user: Any
) -> None:
    # given a running poller and a console
    communicator, agent_id = await console_socket(make_user, "dominique")
    poller = OutboxPoller(interval=0.2)
    await poller.start()
    real_port = connection.settings_dict["PORT"]
    try:
        # when the database cannot be reached for a while (its port refuses connections)
        connection.settings_dict["PORT"] = str(free_port())
        deadline = time.monotonic() + 10
        while poller.errors < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert poller.errors >= 2  # each tick fails, is logged, and the loop goes on
        connection.settings_dict["PORT"] = real_port
        event_id = await sync_to_async(another_process_writes)(
            agent_id, "offer.created", {"offer_id": 9}
        )

        # then, once it answers again, the next tick delivers what was written
        got = await communicator.receive_json_from(timeout=10)
        assert got["id"] == event_id
        assert poller.task is not None
        assert not poller.task.done()
    finally:
        connection.settings_dict["PORT"] = real_port
        await poller.stop()
        await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_the_embedded_sweep_offers_a_waiting_email_live_on_the_console(
    in_memory_layer: None, make_user: Any, email_endpoint: Any, monkeypatch: Any
) -> None:
    from contactcentre.embedded import EmbeddedServices
    from interactions.actions import do_create_interaction

    # given an e-mail waiting in its queue while the only agent was away
    interaction = await sync_to_async(do_create_interaction)(
        channel="email", contact=None, queue=email_endpoint.queue, subject="Quittance"
    )
    communicator, _agent_id = await console_socket(make_user, "fabienne")  # available now
    layer = get_channel_layer()
    group_send = layer.group_send
    publishing_loops: list[asyncio.AbstractEventLoop] = []

    async def noting_the_loop(group: str, message: dict[str, Any]) -> None:
        publishing_loops.append(asyncio.get_running_loop())
        await group_send(group, message)

    monkeypatch.setattr(layer, "group_send", noting_the_loop)
    services = EmbeddedServices(smtp=False, poll_seconds=0.2)
    await services.start()  # the scheduler, on this event loop, and the poller
    try:
        # when the embedded scheduler's routing sweep runs (every ROUTING_SWEEP_SECONDS)
        deadline = time.monotonic() + 20
        offer = None
        while offer is None and time.monotonic() < deadline:
            message = await communicator.receive_json_from(timeout=20)
            if message.get("event") == "offer.created":
                offer = message

        # then its offer reaches the console live (published on the server's loop), once
        assert offer is not None
        assert offer["payload"]["interaction_id"] == interaction.pk
        assert await communicator.receive_nothing(timeout=1.0)
        assert services.poller.sent == 0  # written by this process: not sent again
        # on the loop the consoles wait on (the in-memory layer is not thread-safe)
        assert publishing_loops
        assert set(publishing_loops) == {asyncio.get_running_loop()}
    finally:
        await services.stop()
        await communicator.disconnect()
    assert services.scheduler is None


# --------------------------------------------------------------------------- manage.py serve


def _database_url() -> str:
    db = connection.settings_dict
    if django_settings.IS_POSTGRES:
        return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    return f"sqlite:///{db['NAME']}"


@pytest.fixture
def embedded_server(tmp_path: Path, email_endpoint: Any) -> Iterator[dict[str, Any]]:
    """``manage.py serve --smtp`` on the embedded default (no REDIS_URL), on this test's
    database, with free HTTP and SMTP ports."""
    web_port, smtp_port = free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "CELERY_BROKER_URL"}},
        "DJANGO_SETTINGS_MODULE": "contactcentre.settings_test",
        "TEST_CELERY_EAGER": "true",
        "DATABASE_URL": _database_url(),
        "EMAIL_SMTP_SERVER_PORT": str(smtp_port),
        "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
        "DATA_DIR": str(tmp_path),
    }
    log = (tmp_path / "serve.log").open("w+")
    process = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--no-demo", "--smtp", "--port", str(web_port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if process.poll() is not None:
                break
            try:
                with smtplib.SMTP("127.0.0.1", smtp_port, timeout=2) as probe:
                    probe.noop()
                import urllib.request

                urllib.request.urlopen(f"http://127.0.0.1:{web_port}/healthz", timeout=2)
                break
            except OSError:
                time.sleep(0.3)
        else:
            pytest.fail("serve did not start in 90 s")
        if process.poll() is not None:
            log.seek(0)
            pytest.fail(f"serve exited: {log.read()[-3000:]}")
        yield {"web_port": web_port, "smtp_port": smtp_port, "process": process, "log": log}
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
@pytest.mark.django_db(transaction=True)
def test_serve_offers_an_email_received_over_smtp_live_and_relays_other_processes_events(
    embedded_server: dict[str, Any], make_user: Any, stop_signal: signal.Signals
) -> None:
    from websockets.sync.client import connect
    from websockets.typing import Origin

    # given an agent taking e-mail, with the console open on the embedded server
    user = make_agent(make_user, "emilie")
    web_port = embedded_server["web_port"]
    with connect(
        f"ws://127.0.0.1:{web_port}/ws/console/",
        additional_headers={"Cookie": session_cookie(user)},
        origin=Origin(f"http://127.0.0.1:{web_port}"),
        open_timeout=10,
    ) as socket:
        hello = json.loads(socket.recv(timeout=10))
        assert hello["type"] == "hello"
        agent_id = hello["agent_id"]

        def next_event(name: str, timeout: float = 10.0) -> dict[str, Any]:
            deadline = time.monotonic() + timeout
            while True:
                message = json.loads(socket.recv(timeout=max(0.1, deadline - time.monotonic())))
                if message.get("type") == "event" and message["event"] == name:
                    return dict(message)

        # when a citizen's e-mail arrives over SMTP at the server's port
        mail = make_mail(subject="Attestation de paiement", body="Bonjour, pouvez-vous ...")
        with smtplib.SMTP("127.0.0.1", embedded_server["smtp_port"], timeout=30) as client:
            client.sendmail(
                "marie.dupont@gmail.example", [OUR_ADDRESS], mail.as_bytes(policy=policy.SMTP)
            )

        # then the console is offered it live, with its outbox id
        offer = next_event("offer.created")
        assert offer["payload"]["channel"] == "email"
        assert offer["payload"]["interaction"]["subject"] == "Attestation de paiement"
        assert AgentEvent.objects.filter(pk=offer["id"], agent_id=agent_id).exists()

        # and an event another process (this test) writes to the outbox reaches it too
        event_id = another_process_writes(agent_id, "agent.state", {"state": "paused"})
        relayed = next_event("agent.state", timeout=5)
        assert relayed["id"] == event_id

    # and the server stops cleanly on Ctrl-C or SIGTERM, its services first
    process = embedded_server["process"]
    process.send_signal(stop_signal)
    assert process.wait(timeout=30) == 0
    log = embedded_server["log"]
    log.seek(0)
    output = log.read()
    assert "Traceback" not in output, output[-3000:]
    assert "embedded services stopped" in output


# --------------------------------------------------------------------------- IMAP in the scheduler


@pytest.mark.django_db(transaction=True)  # no transaction held open: SQLite's file is shared
def test_imap_polling_runs_in_the_embedded_scheduler_when_configured() -> None:
    from tests.integration.routing.test_failure_paths import EMBEDDED_CHECK

    # given the embedded default with an IMAP mailbox configured (its server down here)
    env = {
        **{k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "CELERY_BROKER_URL"}},
        "DJANGO_SETTINGS_MODULE": "contactcentre.settings_test",
        "TEST_CELERY_EAGER": "true",
        "DATABASE_URL": _database_url(),
        "IMAP_HOST": "127.0.0.1",
        "IMAP_PORT": str(free_port()),
        "IMAP_SSL": "false",
        "IMAP_USER": "contact@caf.example.fr",
    }
    # when the scheduler starts and runs each entry once
    out = subprocess.run(
        [sys.executable, "-c", EMBEDDED_CHECK],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])

    # then the poll is one of its tasks, registered, and was tried (the refused connection is
    # reported, not a NotRegistered), and every other entry still ran
    assert "channels_email.imap_poll" in report["names"]
    assert report["missing"] == []
    assert list(report["failures"]) == ["email-imap-poll"]
    assert "NotRegistered" not in report["failures"]["email-imap-poll"]


@pytest.mark.django_db(transaction=True)
def test_serve_says_why_when_the_smtp_port_is_taken(tmp_path: Path) -> None:
    import socket

    # given something already listening on the SMTP port (a separate smtp_server, say)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {
            **{k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "CELERY_BROKER_URL"}},
            "DJANGO_SETTINGS_MODULE": "contactcentre.settings_test",
            "TEST_CELERY_EAGER": "true",
            "DATABASE_URL": _database_url(),
            "EMAIL_SMTP_SERVER_EMBEDDED": "true",
            "EMAIL_SMTP_SERVER_PORT": str(port),
            "DATA_DIR": str(tmp_path),
        }
        # when serve starts with the embedded SMTP server on
        out = subprocess.run(
            [sys.executable, "manage.py", "serve", "--no-demo", "--port", str(free_port())],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    # then it stops at once with the reason, not a traceback, and serves nothing half-started
    assert out.returncode == 1
    assert "could not start the embedded services" in out.stderr
    assert str(port) in out.stderr
    assert "Traceback" not in out.stderr
