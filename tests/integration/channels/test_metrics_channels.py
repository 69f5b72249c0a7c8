"""Provider webhooks and outbound sending as the metrics endpoint counts them (docs/operations.md,
"Metrics"): signed Twilio webhooks through the fake provider, outbound SMS refused by it, an
e-mail relay that refuses connections."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from channels_inbound.models import Endpoint
from channels_inbound.sms.actions import do_send_sms
from interactions.models import Interaction
from tests.fake_twilio import FakeTwilioHttpClient
from tests.integration.test_metrics import TOKEN, Samples, scrape, value

from .conftest import FakeTwilio, payload
from .test_sms import SMS_URL, deliver, endpoint, sid  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db


@pytest.fixture
def metrics_on(settings: Any) -> None:
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.PROMETHEUS_MULTIPROC_DIR = ""


def _moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def test_webhook_answers_are_timed_and_refusals_counted_per_provider_and_webhook(
    endpoint: Endpoint,  # noqa: F811
    deliver: Any,  # noqa: F811
    twilio: FakeTwilio,
    metrics_on: None,
) -> None:
    metrics_client = Client()
    before = scrape(metrics_client)
    # when: one good SMS, one with a forged signature, one GET
    assert deliver(MessageSid=sid(1)).status == 200
    assert twilio.post(SMS_URL, payload("sms_inbound"), signature="forged").status == 403
    assert twilio.client.get(SMS_URL).status_code == 405
    after = scrape(metrics_client)
    # then
    sms = {"provider": "twilio", "webhook": "sms_inbound"}
    assert _moved(before, after, "cc_webhook_duration_seconds_count", **sms) == 3
    assert _moved(before, after, "cc_webhook_duration_seconds_sum", **sms) > 0
    assert _moved(before, after, "cc_webhook_errors_total", **sms, reason="signature") == 1
    assert _moved(before, after, "cc_webhook_errors_total", **sms, reason="method") == 1
    assert _moved(before, after, "cc_webhook_errors_total", **sms, reason="bad_request") == 0
    # and the new conversation is waiting in its queue (organisation of its endpoint)
    waiting = {
        labels: v
        for (name, labels), v in after.items()
        if name == "cc_queue_waiting_contacts" and dict(labels)["queue"] == "caf"
    }
    assert sum(waiting.values()) == 1


def test_a_missing_field_is_counted_as_a_bad_request(
    endpoint: Endpoint,  # noqa: F811
    twilio: FakeTwilio,
    metrics_on: None,
) -> None:
    metrics_client = Client()
    before = scrape(metrics_client)
    assert twilio.post(SMS_URL, payload("sms_inbound", From=None)).status == 400  # type: ignore[arg-type]
    after = scrape(metrics_client)
    labels = {"provider": "twilio", "webhook": "sms_inbound", "reason": "bad_request"}
    assert _moved(before, after, "cc_webhook_errors_total", **labels) == 1


@pytest.fixture
def quick_retries(settings: Any) -> None:
    settings.OUTBOUND_MAX_ATTEMPTS = 3
    settings.OUTBOUND_RETRY_BACKOFF_S = 1


def _send(capture: Callable[..., Any], text: str = "Votre dossier est complet.") -> Any:
    with capture(execute=True):
        return do_send_sms(interaction=Interaction.objects.get(), text=text)


def test_outbound_sms_retries_and_failures_are_counted(
    endpoint: Endpoint,  # noqa: F811
    deliver: Any,  # noqa: F811
    metrics_on: None,
    quick_retries: None,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    metrics_client = Client()
    deliver(MessageSid=sid(1))
    before = scrape(metrics_client)
    # when: the provider refuses twice then accepts; then it refuses every attempt
    FakeTwilioHttpClient.outage_requests = 2
    first = _send(django_capture_on_commit_callbacks)
    FakeTwilioHttpClient.outage = 503
    second = _send(django_capture_on_commit_callbacks, "Encore un message.")
    after = scrape(metrics_client)
    # then: 2 + 2 retries, one sent, one failed after its last attempt
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == ("queued", "failed")
    assert _moved(before, after, "cc_outbound_retries_total", channel="sms") == 4
    assert _moved(before, after, "cc_outbound_sent_total", channel="sms") == 1
    assert (
        _moved(before, after, "cc_outbound_failures_total", channel="sms", reason="exhausted") == 1
    )
    assert (
        _moved(before, after, "cc_outbound_failures_total", channel="sms", reason="permanent") == 0
    )


def test_an_sms_refused_for_good_is_a_permanent_failure_at_once(
    endpoint: Endpoint,  # noqa: F811
    deliver: Any,  # noqa: F811
    metrics_on: None,
    quick_retries: None,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    from channels_inbound.sms.models import OutboundSms
    from channels_inbound.sms.tasks import send_outbound_sms

    metrics_client = Client()
    deliver(MessageSid=sid(1))
    with django_capture_on_commit_callbacks(execute=False):
        outbound = do_send_sms(interaction=Interaction.objects.get(), text="Bonjour")
    OutboundSms.objects.filter(pk=outbound.pk).update(to="+33")  # the provider refuses it (4xx)
    before = scrape(metrics_client)
    send_outbound_sms.delay(outbound.pk)
    after = scrape(metrics_client)
    assert (
        _moved(before, after, "cc_outbound_failures_total", channel="sms", reason="permanent") == 1
    )
    assert _moved(before, after, "cc_outbound_retries_total", channel="sms") == 0


def test_an_email_relay_refusing_connections_counts_retries_then_a_failure(
    endpoint: Endpoint,  # noqa: F811
    deliver: Any,  # noqa: F811
    metrics_on: None,
    quick_retries: None,
    settings: Any,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    from channels_inbound.email import outbound as email_outbound

    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    with socket.socket() as probe:  # a loopback port nobody listens on: connection refused
        probe.bind(("127.0.0.1", 0))
        settings.EMAIL_PORT = probe.getsockname()[1]
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_TIMEOUT = 1
    metrics_client = Client()
    deliver(MessageSid=sid(1))
    before = scrape(metrics_client)
    with django_capture_on_commit_callbacks(execute=True):
        message = email_outbound.do_record_outbound_email(
            interaction=Interaction.objects.get(),
            to="marie.dupont@example.org",
            our_address="contact@caf.example.fr",
            subject="Votre dossier",
            text="Bonjour",
        )
    after = scrape(metrics_client)
    message.refresh_from_db()
    assert message.delivery_status == "failed"
    assert _moved(before, after, "cc_outbound_retries_total", channel="email") == 2
    failed = {"channel": "email", "reason": "exhausted"}
    assert _moved(before, after, "cc_outbound_failures_total", **failed) == 1
    assert _moved(before, after, "cc_outbound_sent_total", channel="email") == 0


@pytest.mark.django_db(transaction=True)
async def test_the_lean_asgi_path_of_the_sms_webhook_is_timed_and_counted_like_the_view(
    endpoint: Endpoint,  # noqa: F811
    telephony: None,
    metrics_on: None,
) -> None:
    """Production serves the inbound SMS webhook on channels_inbound.asgi, before Django."""
    from asgiref.sync import sync_to_async

    from .test_sms import _asgi_post, _signed

    def scraped() -> Samples:
        return scrape(Client())

    before = await sync_to_async(scraped)()
    body, headers = _signed(payload("sms_inbound", MessageSid=sid(60)))
    assert (await _asgi_post(body, headers))[0] == 200
    forged = [*headers[:2], (b"x-twilio-signature", b"Zm9yZ2Vk")]
    assert (await _asgi_post(body, forged))[0] == 403
    assert (await _asgi_post(b"", [], method="GET"))[0] == 405
    after = await sync_to_async(scraped)()
    sms = {"provider": "twilio", "webhook": "sms_inbound"}
    assert _moved(before, after, "cc_webhook_duration_seconds_count", **sms) == 3
    assert _moved(before, after, "cc_webhook_errors_total", **sms, reason="signature") == 1
    assert _moved(before, after, "cc_webhook_errors_total", **sms, reason="method") == 1
