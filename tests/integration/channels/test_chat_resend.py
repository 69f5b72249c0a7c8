"""A chat citizen never loses what they typed (issue 12): the widget sends a message again, with
the same client id, until the server acknowledges it; the server stores it once and answers a
repeat with the stored message, says "not sent" while the database cannot be reached (the socket
stays open), and a citizen who closes the widget while waiting is not logged as an error.

Against the project's ASGI application and the real database; the database is made unreachable
for real (new connections go to a port where nothing listens), as in test_embedded.py."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.db import connection
from uvicorn.protocols.utils import ClientDisconnected

from channels_inbound.chat.models import ChatWidget
from interactions.models import Message

from .chat_helpers import (
    HOST,
    KEY,
    ORIGIN,
    Citizen,
    communicator,
    connect,
    fresh_rate_limits,  # noqa: F401 - autouse fixture
    make_widget,
    start_chat,
    topic_id,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


async def _waiting_chat() -> tuple[Citizen, dict[str, Any]]:
    """A citizen whose chat is queued (no bot): they may write at once."""
    widget: ChatWidget = await sync_to_async(make_widget)(flow=None)
    citizen = await connect()
    welcome = await start_chat(citizen, topic=await sync_to_async(topic_id)(widget, "Urbanisme"))
    assert welcome["state"] == "waiting"
    return citizen, welcome


async def _stored(client_id: str) -> list[Message]:
    return await database_sync_to_async(
        lambda: list(
            Message.objects.filter(
                channel="chat", direction="inbound", provider_id__endswith=f":{client_id}"
            )
        )
    )()


@contextmanager
def database_unreachable() -> Iterator[None]:
    """As when PostgreSQL stops: the open connections to the test database are terminated
    (``pg_terminate_backend``) and new ones are refused (they go to a port where nothing
    listens)."""
    settings_dict = connection.settings_dict
    real_port = settings_dict["PORT"]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    settings_dict["PORT"] = str(closed_port)
    try:
        with psycopg.connect(
            host=settings_dict["HOST"] or "127.0.0.1",
            port=real_port or 5432,
            user=settings_dict["USER"] or "postgres",
            password=settings_dict["PASSWORD"] or None,
            dbname="postgres",
            autocommit=True,
        ) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                [settings_dict["NAME"]],
            )
        yield
    finally:
        settings_dict["PORT"] = real_port


async def test_a_message_sent_again_is_stored_once_and_acknowledged_after_a_reconnection() -> None:
    citizen, welcome = await _waiting_chat()
    await citizen.send(type="message", text="Mon permis de construire est-il accepté ?", id="c-1")
    echo = (await citizen.until("entry"))["entry"]
    assert echo["client_id"] == "c-1"

    # The socket dropped before the widget saw that echo: it reconnects, and the conversation
    # it gets back names the message by its client id, so the widget knows it is in.
    await citizen.close()
    citizen = await connect()
    await citizen.send(type="hello", token=welcome["token"], lang="fr")
    again = await citizen.until("welcome")
    mine = [e for e in again["entries"] if e["kind"] == "citizen"]
    assert [(e["id"], e.get("client_id")) for e in mine] == [(echo["id"], "c-1")]

    # A widget that sends it again anyway (it never saw any echo) is answered with the stored
    # message, not ignored, and nothing is stored twice.
    await citizen.send(type="message", text="Mon permis de construire est-il accepté ?", id="c-1")
    repeat = (await citizen.until("entry"))["entry"]
    assert repeat == echo
    assert len(await _stored("c-1")) == 1

    # Even once the conversation is over, a repeat of a stored message is acknowledged; a new
    # message is refused, naming it, so the widget can say under it that it was not sent.
    await citizen.send(type="end")
    await citizen.until("state", state="ended")
    await citizen.send(type="message", text="Mon permis de construire est-il accepté ?", id="c-1")
    assert (await citizen.until("entry"))["entry"]["id"] == echo["id"]
    await citizen.send(type="message", text="Et mon autre dossier ?", id="c-2")
    assert await citizen.until("error") == {"type": "error", "code": "ended", "id": "c-2"}
    assert len(await _stored("c-1")) == 1
    assert await _stored("c-2") == []
    await citizen.close()


async def test_with_the_database_unreachable_a_message_is_not_sent_yet_then_stored_once() -> None:
    citizen, welcome = await _waiting_chat()
    other_tab = await connect()
    with database_unreachable():
        await citizen.send(type="message", text="Bonjour, je patiente.", id="c-9")
        # Said about that message; the socket stays open (it used to die with the consumer).
        assert await citizen.until("error") == {"type": "error", "code": "not_sent", "id": "c-9"}
        # A socket that cannot be given its conversation is closed "try again later" (1013)
        # and the widget reconnects; a new one is refused with that code.
        await other_tab.send(type="hello", token=welcome["token"], lang="fr")
        closed = await other_tab.ws.receive_output(timeout=5)
        assert closed == {"type": "websocket.close", "code": 1013}
        connected, code = await communicator().connect()
        assert (connected, code) == (False, 1013)
    assert await _stored("c-9") == []

    # The database is back: the widget's next attempt (same id) goes in, once.
    await citizen.send(type="message", text="Bonjour, je patiente.", id="c-9")
    echo = (await citizen.until("entry"))["entry"]
    assert echo["client_id"] == "c-9"
    await citizen.send(type="message", text="Bonjour, je patiente.", id="c-9")
    assert (await citizen.until("entry"))["entry"] == echo
    stored = await _stored("c-9")
    assert [m.text for m in stored] == ["Bonjour, je patiente."]
    await citizen.close()


async def test_a_citizen_who_closes_the_widget_while_waiting_is_not_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Served by uvicorn, a send to a client that has gone raises ClientDisconnected: the queue
    updates of a waiting citizen who closed the tab end quietly."""
    from contactcentre.asgi import application

    widget: ChatWidget = await sync_to_async(make_widget)(flow=None)
    topic = await sync_to_async(topic_id)(widget, "Urbanisme")
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    sent: list[dict[str, Any]] = []
    gone = asyncio.Event()

    async def send(message: dict[str, Any]) -> None:
        """uvicorn's send: once the client has closed the connection, ClientDisconnected."""
        if gone.is_set():
            raise ClientDisconnected()
        sent.append(message)
        if '"welcome"' in message.get("text", "") and '"waiting"' in message.get("text", ""):
            gone.set()  # the citizen closes the tab right after their chat was queued

    scope = {
        "type": "websocket",
        "path": f"/ws/chat/{KEY}/",
        "raw_path": f"/ws/chat/{KEY}/".encode(),
        "query_string": b"",
        "headers": [(b"host", HOST), (b"origin", ORIGIN.encode())],
        "client": ("192.0.2.77", 50000),
        "server": ("127.0.0.1", 443),
        "subprotocols": [],
        "scheme": "wss",
    }
    await inbox.put({"type": "websocket.connect"})
    await inbox.put({"type": "websocket.receive", "text": '{"type": "hello", "lang": "fr"}'})
    await inbox.put(
        {
            "type": "websocket.receive",
            "text": f'{{"type": "start", "name": "Awa", "topic": {topic}}}',
        }
    )
    caplog.set_level(logging.DEBUG, logger="channels_inbound.chat.consumers")
    app = asyncio.create_task(application(scope, inbox.get, send))
    await asyncio.wait_for(gone.wait(), timeout=10)
    # The queue loop's first update goes to the vanished client.
    for _ in range(100):
        if any("socket closed" in r.getMessage() for r in caplog.records):
            break
        await asyncio.sleep(0.05)
    await inbox.put({"type": "websocket.disconnect", "code": 1001})
    await asyncio.wait_for(app, timeout=10)

    chat_logs = [r for r in caplog.records if r.name == "channels_inbound.chat.consumers"]
    assert [r.getMessage() for r in chat_logs if r.levelno >= logging.WARNING] == []
    assert any("socket closed" in r.getMessage() for r in chat_logs)
