"""SMS through a Twilio-compatible provider: signed webhooks in, REST out, statuses back."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qs

import pytest
from django.db import close_old_connections, connection
from django.test import Client

from channels_inbound.models import Endpoint
from channels_inbound.sms.actions import SmsOptedOut, do_send_sms
from channels_inbound.sms.models import InboundSms, OutboundSms, SmsOptOut, SmsStatusEvent
from configuration.models import Queue
from interactions.lifecycle import Status
from interactions.models import Interaction, Message
from tests.fake_twilio import FakeTwilioHttpClient

from .conftest import ACCOUNT_SID, PUBLIC, FakeTwilio, payload, sign

OUR_NUMBER = "+33900000001"
SMS_URL = "/webhooks/twilio/sms/"
STATUS_URL = "/webhooks/twilio/sms/status/"


def sid(n: int, prefix: str = "SM") -> str:
    return f"{prefix}{n:032x}"


@pytest.fixture
def endpoint(db: Any) -> Endpoint:
    queue = Queue.objects.create(code="caf", name="CAF", sla_target_seconds=3600)
    return Endpoint.objects.create(channel="sms", address=OUR_NUMBER, name="CAF SMS", queue=queue)


@pytest.fixture
def deliver(
    twilio: FakeTwilio, django_capture_on_commit_callbacks: Callable[..., Any]
) -> Callable[..., Any]:
    """Post an inbound SMS and run what the request queued after its commit."""

    def post(**overrides: str) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return twilio.post(SMS_URL, payload("sms_inbound", **overrides))

    return post


@pytest.mark.django_db
def test_an_sms_becomes_a_queued_interaction(endpoint: Endpoint, deliver: Any) -> None:
    # when
    reply = deliver(MessageSid=sid(1))
    # then: an empty TwiML answer, at once
    assert reply.status == 200
    root = reply.xml()
    assert root.tag == "Response"
    assert list(root) == []
    message = Message.objects.get(provider_id=sid(1))
    assert message.text == "Bonjour, où en est mon dossier d'APL ?"
    assert message.interaction.status == Status.QUEUED
    assert message.interaction.queue == endpoint.queue
    assert message.interaction.contact is not None
    inbound = InboundSms.objects.get()
    assert inbound.state == InboundSms.State.INGESTED
    assert inbound.message == message


@pytest.mark.django_db
def test_consecutive_sms_join_the_open_interaction(endpoint: Endpoint, deliver: Any) -> None:
    deliver(MessageSid=sid(1), Body="Bonjour")
    deliver(MessageSid=sid(2), Body="Mon numéro allocataire est 1234567")
    assert Interaction.objects.count() == 1
    assert [m.text for m in Interaction.objects.get().messages.all()] == [
        "Bonjour",
        "Mon numéro allocataire est 1234567",
    ]


@pytest.mark.django_db
def test_media_are_kept_as_attachments(
    endpoint: Endpoint, twilio: FakeTwilio, deliver: Any
) -> None:
    fields = payload("mms_inbound")
    with_media = {k: v for k, v in fields.items() if k not in payload("sms_inbound")}
    reply = deliver(**{**with_media, "MessageSid": fields["MessageSid"], "NumMedia": "2"})
    assert reply.status == 200
    message = Message.objects.get()
    assert [a["content_type"] for a in message.attachments] == ["image/jpeg", "application/pdf"]
    assert message.attachments[0]["url"] == fields["MediaUrl0"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "signature",
    [None, "", "bm90IGEgc2lnbmF0dXJl", "wrong-token"],
    ids=["missing", "empty", "forged", "other-token"],
)
def test_a_forged_or_missing_signature_is_refused(
    endpoint: Endpoint, twilio: FakeTwilio, signature: str | None
) -> None:
    params = payload("sms_inbound")
    if signature == "wrong-token":
        signature = sign(PUBLIC + SMS_URL, params, token="0" * 32)
    reply = twilio.post(SMS_URL, params, signature=signature)
    assert reply.status == 403
    assert InboundSms.objects.count() == 0


@pytest.mark.django_db
def test_a_signature_over_other_fields_is_refused(endpoint: Endpoint, twilio: FakeTwilio) -> None:
    params = payload("sms_inbound")
    good = sign(PUBLIC + SMS_URL, params)
    reply = twilio.post(SMS_URL, {**params, "Body": "Virement vers FR76..."}, signature=good)
    assert reply.status == 403


@pytest.mark.django_db
def test_the_public_url_is_what_is_signed_behind_a_proxy(
    endpoint: Endpoint, twilio: FakeTwilio, settings: Any
) -> None:
    params = payload("sms_inbound")
    # given: the provider signed the internal URL Django sees, not the configured public one
    internal = twilio.post(SMS_URL, params, signed_url="http://testserver" + SMS_URL)
    assert internal.status == 403
    # when the public URL is the one signed (the normal case): accepted
    assert twilio.post(SMS_URL, params).status == 200
    # and a rotated token is still accepted while TWILIO_AUTH_TOKEN_PREVIOUS holds the old one
    settings.TWILIO_AUTH_TOKEN_PREVIOUS = "f" * 32
    rotated = {**params, "MessageSid": sid(77)}
    old = sign(PUBLIC + SMS_URL, rotated, token="f" * 32)
    assert twilio.post(SMS_URL, rotated, signature=old).status == 200


@pytest.mark.django_db
def test_a_replayed_request_answers_200_and_creates_nothing(
    endpoint: Endpoint, deliver: Any
) -> None:
    first = deliver(MessageSid=sid(5))
    replay = deliver(MessageSid=sid(5))
    assert first.status == replay.status == 200
    assert InboundSms.objects.count() == 1
    assert Message.objects.count() == 1
    assert Interaction.objects.count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_deliveries_of_one_sid_make_one_message(
    endpoint: Endpoint, telephony: None
) -> None:
    params = payload("sms_inbound", MessageSid=sid(42))
    signature = sign(PUBLIC + SMS_URL, params)
    barrier = threading.Barrier(20)
    from urllib.parse import urlencode

    def post(_: int) -> int:
        client = Client()
        try:
            barrier.wait(timeout=10)
            return client.post(
                SMS_URL,
                data=urlencode(params),
                content_type="application/x-www-form-urlencoded",
                HTTP_X_TWILIO_SIGNATURE=signature,
            ).status_code
        finally:
            close_old_connections()

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(post, range(20)))
    assert statuses == [200] * 20
    assert InboundSms.objects.filter(message_sid=sid(42)).count() == 1
    assert Message.objects.filter(provider_id=sid(42)).count() == 1
    assert Interaction.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("missing", "named"),
    [
        ("MessageSid", "MessageSid"),
        ("From", "From"),
        ("To", "To"),
        ("Body", "Body"),
    ],
)
def test_missing_fields_are_a_clear_400(
    endpoint: Endpoint, twilio: FakeTwilio, missing: str, named: str
) -> None:
    params = payload("sms_inbound")
    del params[missing]
    reply = twilio.post(SMS_URL, params)
    assert reply.status == 400
    assert f"missing field(s): {named}".encode() in reply.body
    assert InboundSms.objects.count() == 0


@pytest.mark.django_db
def test_a_malformed_sid_is_a_clear_400(endpoint: Endpoint, twilio: FakeTwilio) -> None:
    reply = twilio.post(SMS_URL, payload("sms_inbound", MessageSid="SM'; DROP TABLE"))
    assert reply.status == 400
    assert b"MessageSid" in reply.body


@pytest.mark.django_db
def test_an_oversized_body_is_refused(endpoint: Endpoint, twilio: FakeTwilio) -> None:
    reply = twilio.post(SMS_URL, payload("sms_inbound", Body="x" * 70_000))
    assert reply.status == 413
    assert InboundSms.objects.count() == 0


@pytest.mark.django_db
def test_only_post(endpoint: Endpoint, client: Client, telephony: None) -> None:
    response = client.get(SMS_URL)
    assert response.status_code == 405
    assert response["Allow"] == "POST"


@pytest.mark.django_db
def test_emoji_rtl_marks_and_astral_characters_are_kept_intact(
    endpoint: Endpoint, deliver: Any
) -> None:
    text = "Bonjour 👋🏽 \u200fمرحبا\u200e 𝒜𠜎 — «ok» <b>&amp;"
    deliver(MessageSid=sid(9), Body=text)
    assert Message.objects.get().text == text
    assert InboundSms.objects.get().body == text


@pytest.mark.django_db
def test_nul_bytes_are_dropped_not_a_server_error(endpoint: Endpoint, deliver: Any) -> None:
    reply = deliver(MessageSid=sid(10), Body="a\x00b")
    assert reply.status == 200
    assert Message.objects.get().text == "ab"


@pytest.mark.django_db
def test_unknown_number_is_recorded_as_failed_not_lost(endpoint: Endpoint, deliver: Any) -> None:
    reply = deliver(MessageSid=sid(3), To="+33999999999")
    assert reply.status == 200
    inbound = InboundSms.objects.get()
    assert inbound.state == InboundSms.State.FAILED
    assert "no active sms endpoint" in inbound.error


@pytest.mark.django_db
def test_stop_opts_out_and_start_opts_back_in(endpoint: Endpoint, deliver: Any) -> None:
    # given a conversation
    deliver(MessageSid=sid(1), Body="Bonjour")
    interaction = Interaction.objects.get()
    # when the citizen sends STOP
    reply = deliver(MessageSid=sid(2), Body=" Stop ")
    # then: confirmed in French, recorded, and no SMS may be sent any more
    messages = [m.text for m in reply.xml().iter("Message")]
    assert messages == [
        "Vous ne recevrez plus de SMS de notre part. Envoyez START pour les recevoir à nouveau."
    ]
    assert SmsOptOut.objects.get(phone="+33612345678").active
    assert Message.objects.count() == 1  # the keyword is not a message for an agent
    with pytest.raises(SmsOptedOut):
        do_send_sms(interaction=interaction, text="Votre dossier est complet.")
    # when the citizen sends ARRÊT again, then START
    deliver(MessageSid=sid(3), Body="ARRÊT")
    deliver(MessageSid=sid(4), Body="START")
    assert not SmsOptOut.objects.get(phone="+33612345678").active
    do_send_sms(interaction=interaction, text="Votre dossier est complet.")


@pytest.mark.django_db
def test_a_reply_is_sent_through_the_provider_with_a_status_callback(
    endpoint: Endpoint, deliver: Any, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    deliver(MessageSid=sid(1), Body="Bonjour")
    interaction = Interaction.objects.get()
    # when
    with django_capture_on_commit_callbacks(execute=True):
        outbound = do_send_sms(interaction=interaction, text="Bonjour, c'est noté 👍")
    # then: the official client posted Twilio's documented fields
    request = FakeTwilioHttpClient.requests[-1]
    assert request.method == "POST"
    assert request.uri.endswith(f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json")
    assert request.data["To"] == "+33612345678"
    assert request.data["From"] == OUR_NUMBER
    assert request.data["Body"] == "Bonjour, c'est noté 👍"
    assert request.data["StatusCallback"] == PUBLIC + STATUS_URL
    outbound.refresh_from_db()
    assert outbound.sid
    assert outbound.sid.startswith("SM")
    assert outbound.status == "queued"
    assert Message.objects.get(id=outbound.message_id or 0).direction == "outbound"


def _status(twilio: FakeTwilio, message_sid: str, status: str, **extra: str) -> int:
    params = payload("sms_status", MessageSid=message_sid, SmsSid=message_sid)
    params.update(MessageStatus=status, SmsStatus=status, **extra)
    return twilio.post(STATUS_URL, params).status


@pytest.mark.django_db
def test_delivery_statuses_are_deduplicated_and_never_go_backwards(
    endpoint: Endpoint,
    deliver: Any,
    twilio: FakeTwilio,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    deliver(MessageSid=sid(1))
    with django_capture_on_commit_callbacks(execute=True):
        outbound = do_send_sms(interaction=Interaction.objects.get(), text="Réponse")
    outbound.refresh_from_db()
    assert outbound.sid
    # when: delivered arrives before sent, and sent twice
    assert _status(twilio, outbound.sid, "delivered") == 200
    assert _status(twilio, outbound.sid, "sent") == 200
    assert _status(twilio, outbound.sid, "sent") == 200
    # then
    outbound.refresh_from_db()
    assert outbound.status == "delivered"
    assert SmsStatusEvent.objects.filter(sid=outbound.sid).count() == 2
    assert Message.objects.get(id=outbound.message_id or 0).delivery_status == "delivered"


@pytest.mark.django_db
def test_a_failure_status_keeps_its_error_code(
    endpoint: Endpoint,
    deliver: Any,
    twilio: FakeTwilio,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    deliver(MessageSid=sid(1))
    with django_capture_on_commit_callbacks(execute=True):
        outbound = do_send_sms(interaction=Interaction.objects.get(), text="Réponse")
    outbound.refresh_from_db()
    assert outbound.sid
    _status(twilio, outbound.sid, "undelivered", ErrorCode="30003")
    outbound.refresh_from_db()
    assert (outbound.status, outbound.error_code) == ("undelivered", "30003")


@pytest.mark.django_db
def test_a_status_arriving_before_the_send_returned_is_applied(
    endpoint: Endpoint, deliver: Any, twilio: FakeTwilio, monkeypatch: pytest.MonkeyPatch
) -> None:
    from channels_inbound.providers import base
    from channels_inbound.providers.twilio import TwilioBackend
    from channels_inbound.sms import actions

    deliver(MessageSid=sid(1))
    early_sid = sid(123)

    def send_and_race(self: Any, **kwargs: Any) -> base.SentMessage:
        # the provider calls back before its REST answer reaches us
        assert _status(twilio, early_sid, "sent") == 200
        return base.SentMessage(sid=early_sid, status="queued")

    monkeypatch.setattr(TwilioBackend, "send_sms", send_and_race)
    outbound = do_send_sms(interaction=Interaction.objects.get(), text="Réponse")
    actions.do_deliver_outbound_sms(outbound_id=outbound.pk)
    assert OutboundSms.objects.get(pk=outbound.pk).status == "sent"


@pytest.mark.django_db
def test_the_provider_refusing_an_unsubscribed_number_marks_it_refused(
    endpoint: Endpoint, deliver: Any, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    deliver(MessageSid=sid(1))
    FakeTwilioHttpClient.unsubscribed.add("+33612345678")
    with django_capture_on_commit_callbacks(execute=True):
        outbound = do_send_sms(interaction=Interaction.objects.get(), text="Réponse")
    outbound.refresh_from_db()
    assert outbound.status == "refused"
    assert outbound.error_code == "21610"
    assert SmsOptOut.objects.get(phone="+33612345678").active


@pytest.mark.django_db
def test_status_callback_missing_fields_is_400(endpoint: Endpoint, twilio: FakeTwilio) -> None:
    params = payload("sms_status")
    del params["MessageStatus"]
    reply = twilio.post(STATUS_URL, params)
    assert reply.status == 400
    assert b"MessageStatus" in reply.body
    assert parse_qs("") == {}


# --- The lean ASGI path (channels_inbound.asgi): same checks, no site middleware -------------
async def _asgi_post(
    body: bytes, headers: list[tuple[bytes, bytes]], method: str = "POST", path: str = SMS_URL
) -> tuple[int, bytes]:
    from channels.testing import HttpCommunicator

    from channels_inbound.asgi import FastWebhooks

    async def django_app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b"django"})

    communicator = HttpCommunicator(
        FastWebhooks(django_app), method, path, body=body, headers=headers
    )
    response = await communicator.get_response(timeout=10)
    return response["status"], response["body"]


def _signed(params: dict[str, str]) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    from urllib.parse import urlencode

    body = urlencode(params).encode()
    return body, [
        (b"content-type", b"application/x-www-form-urlencoded"),
        (b"content-length", str(len(body)).encode()),
        (b"x-twilio-signature", sign(PUBLIC + SMS_URL, params).encode()),
    ]


@pytest.mark.django_db(transaction=True)
async def test_the_lean_path_stores_once_and_checks_like_the_view(
    endpoint: Endpoint, telephony: None
) -> None:
    from asgiref.sync import sync_to_async

    text = "Bonjour 👋🏽 \u200fمرحبا 𝒜"
    body, headers = _signed(payload("sms_inbound", MessageSid=sid(50), Body=text))
    # a valid delivery, then its replay
    for _ in range(2):
        status, answer = await _asgi_post(body, headers)
        assert status == 200
        assert answer == b'<?xml version="1.0" encoding="UTF-8"?><Response />'

    def stored() -> tuple[list[str], int]:
        try:
            return list(Message.objects.values_list("text", flat=True)), InboundSms.objects.count()
        finally:
            connection.close()  # this runs in another thread: leave no session behind

    assert await sync_to_async(stored)() == ([text], 1)
    # forged signature, missing field, oversized body, wrong method
    forged = [*headers[:2], (b"x-twilio-signature", b"Zm9yZ2Vk")]
    assert (await _asgi_post(body, forged))[0] == 403
    params = payload("sms_inbound", MessageSid=sid(51))
    del params["From"]
    status, answer = await _asgi_post(*_signed(params))
    assert (status, answer) == (400, b"missing field(s): From\n")
    big = b"Body=" + b"x" * 70_000
    assert (await _asgi_post(big, [(b"content-length", str(len(big)).encode())]))[0] == 413
    assert (await _asgi_post(big, []))[0] == 413  # no Content-Length: counted while reading
    assert (await _asgi_post(b"", [], method="GET"))[0] == 405
    # anything else goes to the wrapped application
    assert (await _asgi_post(b"", [], path="/webhooks/twilio/voice/"))[0] == 299
    assert await sync_to_async(stored)() == ([text], 1)


@pytest.mark.django_db
def test_the_file_backend_keeps_sms_on_disk_for_development(
    endpoint: Endpoint,
    deliver: Any,
    settings: Any,
    tmp_path: Any,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    import json

    deliver(MessageSid=sid(1))
    settings.TELEPHONY_BACKEND = "channels_inbound.providers.dev.FileBackend"
    settings.TELEPHONY_FILE_PATH = str(tmp_path)
    with django_capture_on_commit_callbacks(execute=True):
        outbound = do_send_sms(interaction=Interaction.objects.get(), text="Réponse 👍")
    [written] = list(tmp_path.glob("*.jsonl"))
    record = json.loads(written.read_text(encoding="utf-8"))
    assert (record["kind"], record["to"], record["body"]) == ("sms", "+33612345678", "Réponse 👍")
    outbound.refresh_from_db()
    assert outbound.sid == record["sid"]
    assert outbound.status == "queued"
    assert FakeTwilioHttpClient.requests == []


@pytest.mark.django_db
def test_one_failing_sms_does_not_block_the_others(
    endpoint: Endpoint, twilio: FakeTwilio, refused_text: str
) -> None:
    from channels_inbound.sms import actions

    # given three stored SMS, the second of which the database refuses to record
    for n, body in enumerate(["un", refused_text, "trois"], start=1):
        twilio.post(SMS_URL, payload("sms_inbound", MessageSid=sid(n), Body=body))
    # when the pending SMS are ingested
    assert actions.do_ingest_pending_sms() == 2
    # then
    states = dict(InboundSms.objects.values_list("body", "state"))
    assert states == {"un": "ingested", refused_text: "failed", "trois": "ingested"}
    assert "refused row" in InboundSms.objects.get(body=refused_text).error
    assert [m.text for m in Message.objects.order_by("id")] == ["un", "trois"]
