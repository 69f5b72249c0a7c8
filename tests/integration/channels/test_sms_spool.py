"""Issue 12, never lose a citizen: SMS webhooks while PostgreSQL cannot be reached.

The outage is real: the test database refuses new connections (``ALLOW_CONNECTIONS false``)
and its open sessions are terminated, from a maintenance connection, so the webhook's insert
fails as it does when the server is stopped. Twilio does not retry an SMS webhook answered 500,
so the app spools the signed delivery to disk, answers ``200 <Response/>``, and stores it once
the database is back (channels_inbound/sms/spool.py).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import psycopg
import pytest
from asgiref.sync import async_to_sync
from django.db import connection
from django.test import Client
from django.utils import timezone

from channels_inbound.models import Endpoint
from channels_inbound.sms import spool
from channels_inbound.sms.models import InboundSms
from configuration.models import Queue
from interactions.lifecycle import Status
from interactions.models import Message

from .conftest import PUBLIC, FakeTwilio, parse_twiml, payload, say_texts, sign

pytestmark = pytest.mark.django_db(transaction=True)

SMS_URL = "/webhooks/twilio/sms/"
VOICE_URL = "/webhooks/twilio/voice/"
EMPTY = b'<?xml version="1.0" encoding="UTF-8"?><Response />'


def sid(n: int) -> str:
    return f"SM{n:032x}"


@pytest.fixture
def endpoint(db: Any) -> Endpoint:
    queue = Queue.objects.create(code="caf", name="CAF", sla_target_seconds=3600)
    Endpoint.objects.create(channel="voice", address="+33900000002", name="CAF", queue=queue)
    return Endpoint.objects.create(
        channel="sms", address="+33900000001", name="CAF SMS", queue=queue
    )


@pytest.fixture
def spool_dir(settings: Any, tmp_path: Path) -> Iterator[Path]:
    """A private spool; no drainer thread unless a test starts one; no outage remembered."""
    settings.WEBHOOK_SPOOL_DIR = str(tmp_path / "spool")
    settings.WEBHOOK_SPOOL_DRAIN_SECONDS = 0
    spool._outage_over()
    spool._pending.clear()
    yield tmp_path / "spool"
    settings.WEBHOOK_SPOOL_DRAIN_SECONDS = 0
    spool._wake.set()  # a drainer thread a test started sees 0 and ends
    if spool._drainer is not None:
        spool._drainer.join(timeout=10)
    spool._wake.clear()
    spool._outage_over()
    spool._pending.clear()


@contextlib.contextmanager
def database_down() -> Iterator[None]:
    """The app's database refuses every connection and its sessions are cut, until the end."""
    db = connection.settings_dict
    params = {"host": db["HOST"] or None, "port": db["PORT"] or None, "user": db["USER"]}
    name = db["NAME"]
    with psycopg.connect(dbname="postgres", autocommit=True, **params) as admin:
        admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        try:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                [name],
            )
            yield
        finally:
            admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
            connection.close()  # this thread's terminated session: reconnect on next use


def files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.json")) if directory.exists() else []


def test_an_sms_during_an_outage_is_answered_200_spooled_and_stored_once_back(
    endpoint: Endpoint, twilio: FakeTwilio, spool_dir: Path
) -> None:
    params = payload("sms_inbound", MessageSid=sid(1))
    before = timezone.now()
    # given PostgreSQL unreachable, when Twilio posts a signed SMS (and retries it once)
    with database_down():
        first = twilio.post(SMS_URL, params)
        retry = twilio.post(SMS_URL, params)
    # then the provider got its normal answer, and the delivery is on disk once
    assert (first.status, first.body) == (200, EMPTY)
    assert (retry.status, retry.body) == (200, EMPTY)
    [spooled] = files(spool_dir)
    record = json.loads(spooled.read_text(encoding="utf-8"))
    assert record["sid"] == sid(1)
    assert record["body"] == "Bonjour, où en est mon dossier d'APL ?"
    assert record["provider"] == "twilio"
    received_at = datetime.fromisoformat(record["received_at"])
    assert received_at.tzinfo is not None
    assert received_at >= before
    assert not InboundSms.objects.exists()

    # when the database is back and the spool is drained
    assert spool.drain_spool() == 1
    # then the SMS is stored, ingested into a queued conversation, dated when it came
    assert files(spool_dir) == []
    message = Message.objects.get(provider_id=sid(1))
    assert message.text == "Bonjour, où en est mon dossier d'APL ?"
    assert message.interaction.status == Status.QUEUED
    assert message.interaction.queue == endpoint.queue
    assert message.created_at == received_at
    assert InboundSms.objects.get().state == InboundSms.State.INGESTED

    # and a late provider retry, live or spooled again, stores nothing more
    assert twilio.post(SMS_URL, params).status == 200
    inbound = InboundSms.objects.get()
    spool.spool_sms(sms=_parsed(params), provider="twilio", received_at=received_at)
    assert spool.drain_spool() == 1
    assert files(spool_dir) == []
    assert InboundSms.objects.count() == 1
    assert InboundSms.objects.get() == inbound
    assert Message.objects.filter(provider_id=sid(1)).count() == 1


def _parsed(params: dict[str, str]) -> Any:
    from channels_inbound.providers import get_provider

    return get_provider("twilio").parse_sms(params)


def test_the_drain_keeps_each_senders_order_and_stops_while_the_database_is_away(
    endpoint: Endpoint, twilio: FakeTwilio, spool_dir: Path
) -> None:
    # given three SMS of one citizen spooled during an outage
    with database_down():
        for n, text in enumerate(["premier", "deuxième", "troisième"], start=10):
            assert (
                twilio.post(SMS_URL, payload("sms_inbound", MessageSid=sid(n), Body=text)).status
                == 200
            )
            time.sleep(0.01)
        # a drain while it is still away stores nothing and keeps every file
        assert spool.drain_spool() == 0
        assert len(files(spool_dir)) == 3
    # when it is back
    assert spool.drain_spool() == 3
    # then one conversation, in the order the citizen wrote
    texts = list(Message.objects.order_by("created_at", "id").values_list("text", flat=True))
    assert texts == ["premier", "deuxième", "troisième"]
    assert len({m.interaction_id for m in Message.objects.all()}) == 1


def test_the_first_insert_that_works_again_drains_the_spool_at_once(
    endpoint: Endpoint, twilio: FakeTwilio, spool_dir: Path, settings: Any
) -> None:
    # given a drainer thread on a long timer, and an SMS spooled during an outage
    settings.WEBHOOK_SPOOL_DRAIN_SECONDS = 3600
    settings.WEBHOOK_SPOOL_BYPASS_SECONDS = 0
    with database_down():
        assert twilio.post(SMS_URL, payload("sms_inbound", MessageSid=sid(20))).status == 200
    assert len(files(spool_dir)) == 1
    # when the next SMS is stored live
    assert twilio.post(SMS_URL, payload("sms_inbound", MessageSid=sid(21))).status == 200
    # then the spooled one is stored too, without waiting for the timer
    deadline = time.monotonic() + 15
    while files(spool_dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert files(spool_dir) == []
    assert set(InboundSms.objects.values_list("message_sid", flat=True)) == {sid(20), sid(21)}


def test_when_the_spool_cannot_be_written_either_the_webhook_answers_500(
    endpoint: Endpoint, telephony: None, spool_dir: Path, settings: Any, tmp_path: Path
) -> None:
    # given a spool directory that cannot be created (a file is in the way: a broken disk)
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    settings.WEBHOOK_SPOOL_DIR = str(blocker / "spool")
    twilio = FakeTwilio(Client(raise_request_exception=False))
    # when an SMS comes during an outage
    with database_down():
        reply = twilio.post(SMS_URL, payload("sms_inbound", MessageSid=sid(30)))
    # then the provider is told it failed (it shows the error), as before the spool
    assert reply.status == 500
    assert not InboundSms.objects.exists()


# --- The lean ASGI path (channels_inbound.asgi.FastWebhooks) -----------------------------------
def _asgi_post(params: dict[str, str]) -> tuple[int, bytes, float]:
    """Status, body, and seconds until the answer (the loop may outlive it)."""
    from channels.testing import HttpCommunicator

    from channels_inbound.asgi import FastWebhooks

    async def django_app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("the SMS webhook never reaches Django on the lean path")

    body = urlencode(params).encode()
    headers = [
        (b"content-type", b"application/x-www-form-urlencoded"),
        (b"content-length", str(len(body)).encode()),
        (b"x-twilio-signature", sign(PUBLIC + SMS_URL, params).encode()),
    ]

    async def post() -> tuple[dict[str, Any], float]:
        communicator = HttpCommunicator(FastWebhooks(django_app), "POST", SMS_URL, body, headers)
        started = time.monotonic()
        response = await communicator.get_response(timeout=20)
        return response, time.monotonic() - started

    response, seconds = async_to_sync(post)()
    return response["status"], response["body"], seconds


def test_the_lean_path_spools_during_an_outage(
    endpoint: Endpoint, telephony: None, spool_dir: Path
) -> None:
    with database_down():
        status, body, _seconds = _asgi_post(payload("sms_inbound", MessageSid=sid(40)))
    assert (status, body) == (200, EMPTY)
    assert len(files(spool_dir)) == 1
    assert spool.drain_spool() == 1
    assert Message.objects.filter(provider_id=sid(40)).count() == 1


def test_the_lean_path_spools_a_delivery_the_database_is_too_slow_to_take(
    endpoint: Endpoint,
    telephony: None,
    spool_dir: Path,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a database that answers only after the wait the webhook allows (a pool waiting
    # for a server that is restarting)
    settings.WEBHOOK_SPOOL_WAIT_SECONDS = 0.3
    slow: Callable[..., Any] = spool.do_receive_sms
    stored = []

    def late(**kwargs: Any) -> Any:
        time.sleep(1.0)
        stored.append(slow(**kwargs))
        return stored[-1]

    monkeypatch.setattr(spool, "do_receive_sms", late)
    # when an SMS comes
    status, body, seconds = _asgi_post(payload("sms_inbound", MessageSid=sid(50)))
    # then it is answered before the database does, spooled
    assert (status, body) == (200, EMPTY)
    assert seconds < 1.0
    assert len(files(spool_dir)) == 1
    # and the late insert plus the drained copy make one SMS
    deadline = time.monotonic() + 10
    while not stored and time.monotonic() < deadline:
        time.sleep(0.05)
    monkeypatch.setattr(spool, "do_receive_sms", slow)
    assert spool.drain_spool() == 1
    assert InboundSms.objects.filter(message_sid=sid(50)).count() == 1
    assert Message.objects.filter(provider_id=sid(50)).count() == 1


# --- Calls -----------------------------------------------------------------------------------
def test_a_call_during_an_outage_hears_call_back_later_not_an_application_error(
    endpoint: Endpoint, twilio: FakeTwilio, spool_dir: Path
) -> None:
    with database_down():
        reply = twilio.post(VOICE_URL, payload("voice_incoming"))
    assert reply.status == 200
    root = parse_twiml(reply.body)
    assert say_texts(root) == [
        "Notre service est momentanément indisponible. Merci de rappeler dans quelques"
        " minutes. Au revoir."
    ]
    assert root.find("Say").get("language") == "fr-FR"  # type: ignore[union-attr]
    assert [child.tag for child in root] == ["Say", "Hangup"]
