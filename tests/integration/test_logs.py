"""Structured logs (kernel/logs.py, docs/operations.md "Logs"): every line is JSON with
the request id and what it was about, one line per request, task and socket event, and never a
citizen's phone number, e-mail address or message text."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import HttpCommunicator, WebsocketCommunicator
from django.conf import settings
from django.test import Client

from channels_inbound.models import Endpoint
from configuration.models import Queue
from contactcentre.asgi import application
from contacts.actions import resolve_contact
from interactions.models import Message
from kernel import logs
from organisations.models import Membership, sole_organisation
from tests.integration.channels.conftest import (
    PUBLIC,
    FakeTwilio,
    payload,
    sign,
    telephony,
    twilio,
)
from tests.integration.console.test_views import _assigned
from tests.integration.supervision.test_wallboard_socket import _login

__all__ = ["telephony", "twilio"]

CITIZEN = "+33698765432"
CITIZEN_FORMS = (CITIZEN, "0698765432", "06 98 76 54 32", "698765432")
TEXT = "Je vous écris pour mon dossier de logement, merci de me rappeler"
ADDRESS = "jeanne.martin@example.org"
SMS_URL = "/webhooks/twilio/sms/"
GIVEN_ID = "3f1c2a9e-5b7d-4e8f-9a0b-1c2d3e4f5a6b"


@pytest.fixture
def log_lines() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """What the JSON handler writes, everything from DEBUG up: each line parsed (a line that is
    not JSON fails the test)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.json_formatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)

    def lines() -> list[dict[str, Any]]:
        text = stream.getvalue()
        return [json.loads(line) for line in text.splitlines()]

    lines.raw = stream.getvalue  # type: ignore[attr-defined]
    try:
        yield lines
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def _of(lines: list[dict[str, Any]], logger: str, event: str | None = None) -> list[dict[str, Any]]:
    return [
        line
        for line in lines
        if line["logger"] == logger and (event is None or line["event"] == event)
    ]


@pytest.fixture
def agent_client(make_user: Callable[..., Any]) -> tuple[Any, Client]:
    user = make_user("alice", first_name="Alice")
    Membership.objects.create(user=user, organisation_id=sole_organisation())
    client = Client()
    client.force_login(user)
    return user, client


# ------------------------------------------------------------------------------- requests


@pytest.mark.django_db
def test_a_request_has_one_json_line_with_its_ids(agent_client: Any, log_lines: Any) -> None:
    user, client = agent_client
    agent = user.agent_profile
    interaction = _assigned(agent, "email")
    # when
    response = client.get(
        f"/console/interactions/{interaction.pk}/thread/?q={CITIZEN}",
        headers={"X-Request-ID": GIVEN_ID, "accept": "application/json"},
    )
    # then: the client's id comes back, and the one line of the request carries it and the ids
    assert response.status_code == 200
    assert response["X-Request-ID"] == GIVEN_ID
    [line] = _of(log_lines(), "contactcentre.requests")
    assert line["event"] == "request"
    assert line["level"] == "info"
    assert line["timestamp"].endswith("Z")
    assert line["request_id"] == GIVEN_ID
    assert line["method"] == "GET"
    assert line["path"] == f"/console/interactions/{interaction.pk}/thread/"  # no query string
    assert line["status"] == 200
    assert line["duration_ms"] >= 0
    assert line["view"] == "console:thread"
    assert line["interaction_id"] == interaction.pk
    assert line["agent_id"] == agent.pk
    assert line["organisation_id"] == agent.organisation_id == sole_organisation()
    assert line["user_id"] == user.pk
    assert CITIZEN not in log_lines.raw()


@pytest.mark.django_db
def test_an_api_request_line_names_the_interaction_and_organisation(
    agent_client: Any, api_client_for: Callable[[Any], Any], log_lines: Any
) -> None:
    user, _ = agent_client
    interaction = _assigned(user.agent_profile, "email")
    response = api_client_for(user).get(f"/api/v1/interactions/{interaction.pk}/")
    assert response.status_code == 200, response.content
    [line] = _of(log_lines(), "contactcentre.requests")
    assert line["view"].endswith("interaction-detail"), line
    assert line["interaction_id"] == interaction.pk
    assert line["organisation_id"] == sole_organisation()
    assert line["user_id"] == user.pk
    assert line["agent_id"] == user.agent_profile.pk


@pytest.mark.django_db
@pytest.mark.parametrize(
    "given",
    [None, "", "short", "x" * 200, "id with spaces 12345", "abc\r\nX-Evil: 1", "é" * 10],
    ids=["none", "empty", "too-short", "too-long", "spaces", "header-injection", "non-ascii"],
)
def test_a_missing_or_malformed_request_id_is_replaced(
    client: Client, log_lines: Any, given: str | None
) -> None:
    headers = {} if given is None else {"X-Request-ID": given}
    response = client.get("/accounts/login/", headers=headers)
    assert response.status_code == 200
    ours = response["X-Request-ID"]
    assert ours != given
    assert logs.valid_request_id(ours) == ours
    [line] = _of(log_lines(), "contactcentre.requests")
    assert line["request_id"] == ours
    assert "user_id" not in line  # nobody logged in


@pytest.mark.django_db(transaction=True)
async def test_every_line_of_a_request_carries_its_id(log_lines: Any) -> None:
    # Through the ASGI application as served: Django's own "Not Found" line, written after
    # the middleware, is part of the request too.
    headers = [(b"host", b"testserver"), (b"x-request-id", GIVEN_ID.encode())]
    communicator = HttpCommunicator(application, "GET", "/no-such-page/", headers=headers)
    response = await communicator.get_response(timeout=10)
    assert response["status"] == 404
    ids = [v for k, v in response["headers"] if k.lower() == b"x-request-id"]
    assert ids == [GIVEN_ID.encode()]  # once
    lines = [line for line in log_lines() if line["logger"] != "asyncio"]
    assert _of(lines, "django.request")
    assert all(line["request_id"] == GIVEN_ID for line in lines), lines
    [line] = _of(lines, "contactcentre.requests")
    assert line["status"] == 404


# ------------------------------------------------------------------ personal data: SMS in and out


@pytest.fixture
def sms_endpoint(db: Any) -> Endpoint:
    queue = Queue.objects.create(code="caf", name="CAF", sla_target_seconds=3600)
    return Endpoint.objects.create(
        channel="sms", address="+33900000001", name="CAF SMS", queue=queue
    )


def _assert_no_personal_data(raw: str) -> None:
    for form in CITIZEN_FORMS:
        assert form not in raw
    assert TEXT not in raw
    assert ADDRESS not in raw
    for word in ("logement", "rappeler"):  # no piece of the text either
        assert word not in raw


@pytest.mark.django_db
def test_an_inbound_sms_leaves_neither_the_number_nor_the_text_in_the_logs(
    sms_endpoint: Endpoint,
    twilio: FakeTwilio,
    log_lines: Any,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    body = f"{TEXT} ({ADDRESS}, {CITIZEN})"
    with django_capture_on_commit_callbacks(execute=True):
        reply = twilio.post(SMS_URL, payload("sms_inbound", From=CITIZEN, Body=body))
    assert reply.status == 200
    message = Message.objects.get()  # it was received and ingested (by the task)
    assert message.text == body
    lines = log_lines()
    [request] = _of(lines, "contactcentre.requests")
    assert request["status"] == 200
    assert request["path"] == SMS_URL
    # the ingestion task ran for it (here after the request: the test runs the on-commit work)
    tasks = _of(lines, "contactcentre.tasks", "task")
    assert "channels_sms.ingest_pending" in {t["task"] for t in tasks}
    _assert_no_personal_data(log_lines.raw())


@pytest.mark.django_db(transaction=True)
async def test_the_lean_webhook_path_logs_its_request_without_personal_data(
    sms_endpoint: Endpoint, telephony: None, log_lines: Any
) -> None:
    from urllib.parse import urlencode

    from channels_inbound.asgi import FastWebhooks

    params = payload("sms_inbound", From=CITIZEN, Body=f"{TEXT} {ADDRESS}")
    body = urlencode(params).encode()
    headers = [
        (b"content-type", b"application/x-www-form-urlencoded"),
        (b"content-length", str(len(body)).encode()),
        (b"x-twilio-signature", sign(PUBLIC + SMS_URL, params).encode()),
        (b"x-request-id", GIVEN_ID.encode()),
    ]

    async def django_app(scope: Any, receive: Any, send: Any) -> None:  # pragma: no cover
        raise AssertionError("the lean path answers itself")

    communicator = HttpCommunicator(FastWebhooks(django_app), "POST", SMS_URL, body, headers)
    response = await communicator.get_response(timeout=10)
    assert response["status"] == 200
    assert (b"x-request-id", GIVEN_ID.encode()) in response["headers"]
    # a forged one: refused, logged, still without the number
    forged = [*headers[:2], (b"x-twilio-signature", b"Zm9yZ2Vk")]
    communicator = HttpCommunicator(FastWebhooks(django_app), "POST", SMS_URL, body, forged)
    assert (await communicator.get_response(timeout=10))["status"] == 403
    lines = log_lines()
    requests = _of(lines, "contactcentre.requests")
    assert [(r["status"], r["path"]) for r in requests] == [(200, SMS_URL), (403, SMS_URL)]
    assert requests[0]["request_id"] == GIVEN_ID
    assert requests[1]["request_id"] != GIVEN_ID
    [warning] = _of(lines, "channels_inbound.webhooks")
    assert warning["request_id"] == requests[1]["request_id"]
    _assert_no_personal_data(log_lines.raw())


@pytest.mark.django_db
def test_an_sms_reply_leaves_neither_the_number_nor_the_text_in_the_logs(
    agent_client: Any,
    telephony: None,
    log_lines: Any,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    user, client = agent_client
    contact = resolve_contact("phone", CITIZEN).contact
    interaction = _assigned(user.agent_profile, "sms", contact)
    assert interaction.queue is not None
    Endpoint.objects.create(
        channel="sms", address="+33900000001", name="CAF", queue=interaction.queue
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/console/interactions/{interaction.pk}/reply/",
            {"text": f"{TEXT} {ADDRESS}"},
            headers={"accept": "application/json"},
        )
    assert response.status_code == 200, response.content
    assert Message.objects.get(direction="outbound").outbound_sms.to == CITIZEN
    lines = log_lines()
    [request] = _of(lines, "contactcentre.requests")
    assert request["interaction_id"] == interaction.pk
    assert request["agent_id"] == user.agent_profile.pk
    [task] = _of(lines, "contactcentre.tasks", "task")
    assert task["task"] == "channels_sms.send_outbound"
    assert task["state"] == "SUCCESS"
    assert task["task_id"]
    _assert_no_personal_data(log_lines.raw())


def test_phone_numbers_and_addresses_that_slip_into_a_line_are_masked(log_lines: Any) -> None:
    log = logging.getLogger("channels_inbound.sms")
    log.warning("from %s and %s", "whatsapp:+33 6 98 76 54 32", f"<{ADDRESS}>")
    try:
        raise ValueError(f"bad recipient 06.98.76.54.32 / {ADDRESS.replace('@', '%40')}")
    except ValueError:
        log.exception("send failed")
    # ids, UUIDs, times and machine addresses are left alone
    log.info("task %s at 2026-12-03 14:05:09 from 192.168.100.200 #123456789", GIVEN_ID)
    first, second, third = log_lines()
    assert first["event"] == "from whatsapp:[phone] and <[email]>"
    assert second["exception"].startswith("Traceback (most recent call last)")
    assert second["exception"].endswith("ValueError: bad recipient [phone] / [email]")
    assert third["event"] == (
        f"task {GIVEN_ID} at 2026-12-03 14:05:09 from 192.168.100.200 #123456789"
    )


@pytest.mark.django_db
def test_a_database_error_quoting_a_row_leaves_its_values_out(log_lines: Any) -> None:
    """PostgreSQL quotes a refused row's values in its error (a message's text, a number)."""
    from django.db import IntegrityError, connection, transaction

    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (its error details)")
    log = logging.getLogger("channels_inbound.sms")
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMPORARY TABLE test_logs_row (body text UNIQUE, queue integer NOT NULL)"
        )
        cursor.execute("INSERT INTO test_logs_row VALUES (%s, 1)", [f"{TEXT}\n{CITIZEN}"])
    for statement in (
        "INSERT INTO test_logs_row VALUES (%s, NULL)",  # Failing row contains (...)
        "INSERT INTO test_logs_row VALUES (%s, 2)",  # Key (body)=(...) already exists
    ):
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(statement, [f"{TEXT}\n{CITIZEN}"])
        except IntegrityError:
            log.exception("SMS batch of 1 failed; recording them one by one")
    first, second = log_lines()
    assert "Failing row contains (…)." in first["exception"]
    assert "Key (body)=(…) already exists" in second["exception"]
    _assert_no_personal_data(log_lines.raw())


def test_the_plain_format_is_readable_text() -> None:
    record = logging.LogRecord("contactcentre.requests", logging.INFO, "", 0, "hello", (), None)
    with logs.bound(request_id=GIVEN_ID, agent_id=7):
        text = logs.plain_formatter().format(record)
    assert text.endswith(f" INFO contactcentre.requests hello request_id={GIVEN_ID} agent_id=7")


# ------------------------------------------------------------------------------------ sockets


async def _cookie(user: Any, *, second_factor: bool = False) -> bytes:
    client = await sync_to_async(_login)(user, second_factor=second_factor)
    name = settings.SESSION_COOKIE_NAME
    return f"{name}={client.cookies[name].value}".encode()


def _socket(path: str, cookie: bytes | None, request_id: str | None = None) -> Any:
    headers = [(b"host", b"localhost"), (b"origin", b"http://localhost")]
    if cookie is not None:
        headers.append((b"cookie", cookie))
    if request_id is not None:
        headers.append((b"x-request-id", request_id.encode()))
    return WebsocketCommunicator(application, path, headers=headers)


@pytest.mark.django_db(transaction=True)
async def test_console_socket_connect_resume_and_disconnect_are_logged(
    make_user: Callable[..., Any], log_lines: Any
) -> None:
    def agent() -> Any:
        user = make_user("alice")
        Membership.objects.create(user=user, organisation_id=sole_organisation())
        return user, user.agent_profile.pk, user.agent_profile.organisation_id

    user, agent_id, organisation_id = await sync_to_async(agent)()
    socket = _socket("/ws/console/", await _cookie(user), GIVEN_ID)
    connected, _ = await socket.connect()
    assert connected
    assert (await socket.receive_json_from())["type"] == "hello"
    await socket.send_json_to({"type": "resume", "last_event_id": 0})
    assert (await socket.receive_json_from(timeout=5))["type"] in {"replay", "snapshot"}
    await socket.disconnect()
    # a socket without a session: refused, and said so
    anonymous = _socket("/ws/console/", None)
    assert (await anonymous.connect())[1] == 4401
    lines = _of(log_lines(), "contactcentre.sockets")
    assert [line["event"] for line in lines] == [
        "socket connect",
        "socket resume",
        "socket disconnect",
        "socket refused",
    ]
    for line in lines[:3]:
        assert line["socket"] == "console"
        assert line["request_id"] == GIVEN_ID
        assert line["agent_id"] == agent_id
        assert line["organisation_id"] == organisation_id
        assert line["user_id"] == user.pk
    assert lines[1]["last_event_id"] == 0
    assert lines[1]["answer"] in {"replay", "snapshot"}
    assert lines[2]["code"] == 1000
    assert lines[3]["code"] == 4401
    assert lines[3]["request_id"] != GIVEN_ID
    assert "user_id" not in lines[3]


@pytest.mark.django_db(transaction=True)
async def test_wallboard_socket_connect_and_disconnect_are_logged(
    make_user: Callable[..., Any], log_lines: Any
) -> None:
    def supervisor() -> Any:
        user = make_user("sam", "administrator")
        Membership.objects.create(user=user, organisation_id=sole_organisation())
        return user

    user = await sync_to_async(supervisor)()
    socket = _socket("/ws/supervision/wallboard/", await _cookie(user, second_factor=True))
    connected, _ = await socket.connect()
    assert connected
    assert (await socket.receive_json_from(timeout=5))["type"] == "snapshot"
    await socket.disconnect()
    connect, disconnect = _of(log_lines(), "contactcentre.sockets")
    assert (connect["event"], disconnect["event"]) == ("socket connect", "socket disconnect")
    for line in (connect, disconnect):
        assert line["socket"] == "wallboard"
        assert line["user_id"] == user.pk
        assert line["organisation_id"] == await sync_to_async(sole_organisation)()
        assert logs.valid_request_id(line["request_id"])
    assert connect["request_id"] == disconnect["request_id"]


# --------------------------------------------------------------------------------------- tasks


@pytest.mark.django_db
def test_a_task_has_one_line_with_its_id_name_and_arguments_ids(
    make_user: Callable[..., Any], log_lines: Any
) -> None:
    from routing.tasks import end_wrap_up

    agent = make_user("alice").agent_profile
    with logs.bound(request_id=GIVEN_ID):
        result = end_wrap_up.apply(args=(agent.pk,))
    [line] = _of(log_lines(), "contactcentre.tasks", "task")
    assert line["task"] == "routing.end_wrap_up"
    assert line["task_id"] == result.id
    assert line["state"] == "SUCCESS"
    assert line["agent_id"] == agent.pk
    assert line["request_id"] == GIVEN_ID  # run by a request: its id
    assert line["level"] == "debug"  # run eagerly: part of what ran it
    # a periodic task run by nobody: its own id
    end_wrap_up.apply(args=(agent.pk,))
    line = _of(log_lines(), "contactcentre.tasks", "task")[-1]
    assert line["request_id"] == line["task_id"]


def test_the_request_id_travels_with_the_message_of_a_task() -> None:
    headers: dict[str, Any] = {}
    with logs.bound(request_id=GIVEN_ID):
        logs._before_publish(headers=headers)
    assert headers == {"cc_request_id": GIVEN_ID}
    headers = {}
    logs._before_publish(headers=headers)  # outside a request: nothing to hand on
    assert headers == {}


@pytest.mark.django_db(transaction=True)
@pytest.mark.redis
@pytest.mark.slow
def test_a_worker_logs_json_task_lines_with_the_request_id(
    make_user: Callable[..., Any], settings: Any, tmp_path: Any
) -> None:
    from routing.tasks import end_wrap_up
    from tests.support import celery_broker, clear_broker, redis_db_url, start_workers, stop_workers

    agent = make_user("alice").agent_profile
    url = redis_db_url(4)
    clear_broker(url)
    log_file = tmp_path / "worker.log"
    with celery_broker(url, settings):
        workers = start_workers(
            1, url, extra_env={"LOG_FORMAT": "json"}, log_file=log_file, loglevel="INFO"
        )
        try:
            with logs.bound(request_id=GIVEN_ID):
                result = end_wrap_up.delay(agent.pk)
            deadline = time.monotonic() + 30
            found: list[dict[str, Any]] = []
            while not found and time.monotonic() < deadline:
                time.sleep(0.2)
                text = log_file.read_text()
                found = [
                    json.loads(line)
                    for line in text.splitlines()
                    if '"contactcentre.tasks"' in line and result.id in line
                ]
        finally:
            stop_workers(workers)
    text = log_file.read_text()
    # every log line of the worker is JSON (its start-up banner is printed, not logged)
    for line in text.splitlines():
        if line.startswith("{"):
            json.loads(line)
    assert "Task routing.end_wrap_up" not in text  # Celery's own "received" line: ours only
    [line] = found
    assert line["event"] == "task"
    assert line["level"] == "info"
    assert line["task"] == "routing.end_wrap_up"
    assert line["task_id"] == result.id
    assert line["request_id"] == GIVEN_ID
    assert line["agent_id"] == agent.pk
    assert line["state"] == "SUCCESS"


def test_a_request_the_client_gave_up_on_is_logged_499_not_a_server_error(
    log_lines: Any, rf: Any
) -> None:
    import asyncio

    # given: a provider that stopped waiting: Django's ASGI handler cancels the request, which
    # reaches the middleware as a CancelledError from the rest of the stack
    def cancelled(request: Any) -> Any:
        raise asyncio.CancelledError

    middleware = logs.RequestLogMiddleware(cancelled)
    # when
    with pytest.raises(asyncio.CancelledError):
        middleware(rf.post("/webhooks/twilio/voice/"))
    # then: one warning line with nginx's "client closed request", not an error 500
    [line] = _of(log_lines(), "contactcentre.requests")
    assert line["status"] == 499
    assert line["level"] == "warning"


def test_a_lean_path_the_client_gave_up_on_is_logged_499(log_lines: Any) -> None:
    import asyncio

    async def scenario() -> None:
        async def send(message: Any) -> None:
            pass

        with logs.asgi_request({"type": "http", "method": "POST", "path": "/x/"}, send):
            raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(scenario())
    [line] = _of(log_lines(), "contactcentre.requests")
    assert (line["status"], line["level"]) == (499, "warning")


@pytest.mark.django_db(transaction=True)
async def test_a_client_that_disconnects_before_the_answer_is_logged_499_through_the_stack(
    log_lines: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    from channels.testing import ApplicationCommunicator

    from contactcentre import views

    # given: a request that takes a while (its database check, here)
    def slow_check() -> dict[str, object]:
        time.sleep(1.0)
        return {"ok": True}

    monkeypatch.setattr(views, "_check_database", slow_check)
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/healthz",
        "raw_path": b"/healthz",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"localhost")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    request = ApplicationCommunicator(application, scope)
    await request.send_input({"type": "http.request", "body": b"", "more_body": False})
    # when: the client goes away before the answer (a provider at its timeout)
    await asyncio.sleep(0.3)
    await request.send_input({"type": "http.disconnect"})
    with contextlib.suppress(Exception):
        await request.wait(timeout=5)
    # then: the request's one line says 499 at warning, not an error 500
    [line] = [x for x in _of(log_lines(), "contactcentre.requests") if x.get("path") == "/healthz"]
    assert (line["status"], line["level"]) == (499, "warning")
