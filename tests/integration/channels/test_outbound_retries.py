"""Outbound SMS when the provider fails: retried with back-off on transient errors (refused
connection, stalled answer, 5xx), ``failed`` with a French reason after the last attempt or at
once on a permanent refusal (4xx), every state change published to the agent's console."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from channels_inbound.models import Endpoint
from channels_inbound.sms import actions
from channels_inbound.sms.actions import do_send_sms
from channels_inbound.sms.models import OutboundSms
from channels_inbound.sms.tasks import send_outbound_sms
from interactions.models import Interaction, Message
from tests.fake_twilio import FakeTwilioHttpClient

from .conftest import FakeTwilio
from .test_sms import _status, deliver, endpoint, sid  # noqa: F401  (fixtures)


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any], list[str]]]:
    sent: list[tuple[str, dict[str, Any], list[str]]] = []

    def capture(event: str, payload: dict[str, Any], *, groups: list[str], **kw: Any) -> None:
        sent.append((event, payload, groups))

    monkeypatch.setattr(actions, "publish", capture)
    return sent


@pytest.fixture
def retries(settings: Any, monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Three attempts, 1 s back-off doubling; the countdowns the task asked for."""
    settings.OUTBOUND_MAX_ATTEMPTS = 3
    settings.OUTBOUND_RETRY_BACKOFF_S = 1
    asked: list[float] = []
    original = actions.retry_countdown

    def record(attempt: int) -> float:
        asked.append(original(attempt))
        return asked[-1]

    monkeypatch.setattr(actions, "retry_countdown", record)
    return asked


def _send(capture: Callable[..., Any], text: str = "Votre dossier est complet.") -> OutboundSms:
    with capture(execute=True):
        return do_send_sms(interaction=Interaction.objects.get(), text=text)


def _sends() -> int:
    return sum(1 for r in FakeTwilioHttpClient.requests if r.uri.endswith("/Messages.json"))


@pytest.mark.django_db
def test_refused_twice_then_accepted_is_sent_on_the_third_attempt(
    endpoint: Endpoint,  # noqa: F811
    deliver: Any,  # noqa: F811
    twilio: FakeTwilio,
    retries: list[float],
    events: list[Any],
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    deliver(MessageSid=sid(1))
    FakeTwilioHttpClient.outage_requests = 2  # the next two requests answer 503
    # when
    outbound = _send(django_capture_on_commit_callbacks)
    # then
    outbound.refresh_from_db()
    assert outbound.attempts == 3
    assert _sends() == 3
    assert outbound.status == "queued"
    assert outbound.sid
    assert retries == [1, 2]
    # the provider later reports it delivered
    assert _status(twilio, outbound.sid, "delivered") == 200
    outbound.refresh_from_db()
    assert outbound.status == "delivered"
    assert Message.objects.get(pk=outbound.message_id or 0).delivery_status == "delivered"
    statuses = [p["status"] for e, p, _g in events if e == "message.status"]
    assert statuses[:2] == ["pending", "pending"]  # each failed attempt, with its reason
    assert statuses[-1] == "delivered"
    first = next(p for e, p, _g in events if e == "message.status")
    assert first["attempts"] == 1
    assert "nouvel essai" in first["reason"]


@pytest.mark.django_db
def test_always_refused_ends_failed_with_a_reason_and_an_event(
    endpoint: Endpoint,  # noqa: F811
    deliver: Any,  # noqa: F811
    retries: list[float],
    events: list[Any],
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    deliver(MessageSid=sid(1))
    interaction = Interaction.objects.get()
    FakeTwilioHttpClient.outage = 503
    # when
    outbound = _send(django_capture_on_commit_callbacks)
    # then
    outbound.refresh_from_db()
    assert outbound.attempts == 3
    assert _sends() == 3
    assert outbound.status == "failed"
    assert outbound.sid is None
    assert "3 tentatives" in outbound.error
    assert Message.objects.get(pk=outbound.message_id or 0).delivery_status == "failed"
    assert retries == [1, 2]
    final = [p for e, p, _g in events if e == "message.status"][-1]
    assert final == {
        "message_id": outbound.message_id,
        "interaction_id": interaction.pk,
        "channel": "sms",
        "status": "failed",
        "attempts": 3,
        "reason": outbound.error,
    }


@pytest.mark.django_db
def test_a_permanent_refusal_fails_at_once(
    endpoint: Endpoint,  # noqa: F811
    deliver: Any,  # noqa: F811
    twilio: FakeTwilio,
    retries: list[float],
    events: list[Any],
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    deliver(MessageSid=sid(1))
    with django_capture_on_commit_callbacks(execute=False):
        outbound = do_send_sms(interaction=Interaction.objects.get(), text="Bonjour")
    OutboundSms.objects.filter(pk=outbound.pk).update(to="+33")  # an invalid number
    # when
    send_outbound_sms.delay(outbound.pk)
    # then
    outbound.refresh_from_db()
    assert outbound.status == "failed"
    assert outbound.attempts == 1
    assert outbound.error_code == "21211"
    assert retries == []
    assert "refusé" in outbound.error


@pytest.fixture
def real_http(settings: Any) -> None:
    """The library's real HTTP client, with short timeouts."""
    settings.TWILIO_HTTP_CLIENT = ""
    settings.PROVIDER_CONNECT_TIMEOUT_S = 0.5
    settings.PROVIDER_READ_TIMEOUT_S = 0.5


@pytest.mark.django_db
def test_the_provider_refusing_connections_is_retried_then_failed(
    endpoint: Endpoint,  # noqa: F811
    deliver: Any,  # noqa: F811
    settings: Any,
    retries: list[float],
    real_http: None,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    deliver(MessageSid=sid(1))
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.TWILIO_API_BASE_URL = f"http://127.0.0.1:{port}"
    outbound = _send(django_capture_on_commit_callbacks)
    outbound.refresh_from_db()
    assert outbound.status == "failed"
    assert outbound.attempts == 3
    assert "injoignable" in outbound.error
    assert retries == [1, 2]


@pytest.mark.django_db
def test_a_stalled_provider_is_retried_then_failed(
    endpoint: Endpoint,  # noqa: F811
    deliver: Any,  # noqa: F811
    settings: Any,
    retries: list[float],
    real_http: None,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    deliver(MessageSid=sid(1))
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept_and_never_answer() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept_and_never_answer, daemon=True)
    thread.start()
    settings.TWILIO_API_BASE_URL = f"http://127.0.0.1:{server.getsockname()[1]}"
    try:
        started = time.monotonic()
        outbound = _send(django_capture_on_commit_callbacks)
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        server.close()
    outbound.refresh_from_db()
    assert outbound.status == "failed"
    assert outbound.attempts == 3
    assert len(accepted) == 3
    assert "injoignable" in outbound.error
    assert elapsed < 10


@pytest.mark.django_db
def test_on_a_worker_the_retry_is_scheduled_with_its_back_off(
    endpoint: Endpoint,  # noqa: F811
    deliver: Any,  # noqa: F811
    twilio: FakeTwilio,
    retries: list[float],
    events: list[Any],
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    from celery.exceptions import Retry

    deliver(MessageSid=sid(1))
    with django_capture_on_commit_callbacks(execute=False):
        outbound = do_send_sms(interaction=Interaction.objects.get(), text="Bonjour")
    OutboundSms.objects.filter(pk=outbound.pk).update(attempts=1)  # the first attempt failed
    FakeTwilioHttpClient.outage = 503
    scheduled: list[dict[str, Any]] = []

    def retry(**kwargs: Any) -> Retry:
        scheduled.append(kwargs)
        return Retry(when=kwargs["countdown"])

    monkeypatch.setattr(send_outbound_sms, "retry", retry)
    # when: the second attempt runs on a worker (not eagerly) and fails
    send_outbound_sms.push_request(retries=1, is_eager=False)  # type: ignore[call-arg]
    try:
        with pytest.raises(Retry):
            send_outbound_sms.run(outbound.pk)
    finally:
        send_outbound_sms.pop_request()
    # then: the third is scheduled 2 s later; the SMS waits, pending, with the reason
    assert [s["countdown"] for s in scheduled] == [2.0]
    outbound.refresh_from_db()
    assert outbound.status == "pending"
    assert outbound.attempts == 2
    assert outbound.error.startswith("tentative 2 échouée")
    assert [p["status"] for e, p, _g in events if e == "message.status"] == ["pending"]


@pytest.mark.django_db
def test_an_email_reply_with_the_relay_down_is_retried_then_failed_with_a_reason(
    endpoint: Endpoint,  # noqa: F811
    deliver: Any,  # noqa: F811
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    from channels_inbound.email import outbound as email_outbound

    settings.OUTBOUND_MAX_ATTEMPTS = 3
    settings.OUTBOUND_RETRY_BACKOFF_S = 1
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    with socket.socket() as probe:  # a loopback port nobody listens on: connection refused
        probe.bind(("127.0.0.1", 0))
        settings.EMAIL_PORT = probe.getsockname()[1]
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_TIMEOUT = 1
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(
        email_outbound,
        "_publish_status",
        lambda message_id, status, **kw: sent.append({"status": status, **kw}),
    )
    deliver(MessageSid=sid(1))
    interaction = Interaction.objects.get()
    # when
    with django_capture_on_commit_callbacks(execute=True):
        message = email_outbound.do_record_outbound_email(
            interaction=interaction,
            to="marie.dupont@example.org",
            our_address="contact@caf.example.fr",
            subject="Votre dossier",
            text="Bonjour",
        )
    # then
    message.refresh_from_db()
    assert message.delivery_status == "failed"
    assert [e["status"] for e in sent] == ["queued", "queued", "failed"]
    assert [e["attempts"] for e in sent] == [1, 2, 3]
    assert sent[0]["reason"].startswith("tentative 1 échouée")
    assert sent[-1]["reason"].startswith("non envoyé après 3 tentatives")


@pytest.mark.django_db
def test_a_pending_sms_whose_task_was_lost_is_sent_by_the_sweep(
    endpoint: Endpoint,  # noqa: F811
    deliver: Any,  # noqa: F811
    twilio: FakeTwilio,
    retries: list[float],
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from channels_inbound.sms.tasks import sweep_outbound_sms

    deliver(MessageSid=sid(1))

    def broker_down(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("broker down")

    # given: the broker is down when the reply commits (the agent's action still succeeds)
    monkeypatch.setattr(send_outbound_sms, "delay", broker_down)
    lost = _send(django_capture_on_commit_callbacks)
    waiting = _send(django_capture_on_commit_callbacks, text="Et une pièce ?")
    monkeypatch.undo()
    assert _sends() == 0
    long_ago = timezone.now() - timedelta(minutes=5)
    OutboundSms.objects.filter(pk=lost.pk).update(created_at=long_ago)
    # a retry scheduled 1 s after its first attempt, 30 s ago: not yet overdue by the grace
    OutboundSms.objects.filter(pk=waiting.pk).update(
        attempts=1, status_at=timezone.now() - timedelta(seconds=30)
    )
    # when
    sweep_outbound_sms.delay()
    # then: the lost one is sent, once; the one waiting for its retry is left to it
    lost.refresh_from_db()
    assert lost.status == "queued"
    assert lost.attempts == 1
    assert _sends() == 1
    assert OutboundSms.objects.get(pk=waiting.pk).status == "pending"
    sweep_outbound_sms.delay()
    assert _sends() == 1
