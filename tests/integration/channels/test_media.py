"""Provider media (issue 12): MMS pictures and voicemail recordings are fetched with the
account's credentials when they arrive, stored, and served to the agents allowed to see the
interaction, never lost silently.

The provider's media side is :class:`FakeMediaServer`, a real HTTP server on loopback behaving as
Twilio documents it: 401 without HTTP Basic credentials, 404 for unknown media, a redirect (307
for media, 302 for recordings) to a temporary storage address on another host name that refuses
a request carrying credentials. Webhooks are signed and posted like the other SMS/voice tests.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client
from django.utils import timezone

from agents.models import AgentProfile
from channels_inbound import media
from channels_inbound.models import Endpoint
from channels_inbound.sms import actions as sms_actions
from channels_inbound.tasks import fetch_provider_media
from configuration.models import Queue
from contactcentre.celery import OUTBOUND_QUEUE, app
from flows.actions import do_create_flow_version, do_publish_flow_version
from flows.models import EndpointFlow, Flow
from interactions.models import Interaction, Message
from organisations.models import Membership, Organisation
from tests.fake_twilio import FakeMediaServer
from tests.support import celery_broker, start_workers, stop_workers

from .conftest import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio, payload

pytestmark = pytest.mark.django_db

SMS_NUMBER = "+33900000001"
VOICE_NUMBER = "+33900000002"
MMS_SID = "MM2c8ed7c4e4fa1d56db3e2e70ad4a9a11"
RECORDING_SID = "RE0123456789abcdef0123456789abcdef"
BASIC = "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 8
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n"
MP3 = b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x64" + b"\x00" * 2000
WAV = b"RIFF\x24\x08\x00\x00WAVEfmt " + b"\x00" * 2000


@dataclass
class Body:
    org: Organisation
    queue: Queue
    agent: AgentProfile


def _body(slug: str) -> Body:
    org = Organisation.objects.create(name=f"Organisation {slug}", slug=slug)
    queue = Queue.objects.create(code="accueil", name=f"File {slug}", organisation=org)
    user = get_user_model().objects.create_user(f"agent-{slug}", f"{slug}@example.fr", "pw-Te-26!")
    user.groups.add(Group.objects.get(name="agent"))
    Membership.objects.create(user=user, organisation=org)
    agent = AgentProfile.objects.create(user=user, organisation=org, languages=["fr"])
    return Body(org=org, queue=queue, agent=agent)


@pytest.fixture
def bodies(roles: None) -> tuple[Body, Body]:
    return _body("caf"), _body("mairie")


@pytest.fixture
def server(telephony: None, settings: Any, tmp_path: Path) -> Iterator[FakeMediaServer]:
    fake = FakeMediaServer(ACCOUNT_SID, AUTH_TOKEN).start()
    settings.PROVIDER_MEDIA_ORIGINS = [fake.api_origin]
    settings.MEDIA_ROOT = str(tmp_path)
    settings.OUTBOUND_MAX_ATTEMPTS = 3
    settings.OUTBOUND_RETRY_BACKOFF_S = 1
    settings.PROVIDER_READ_TIMEOUT_S = 2.0
    yield fake
    fake.stop()


@pytest.fixture
def deliver_mms(
    bodies: tuple[Body, Body],
    twilio: FakeTwilio,
    server: FakeMediaServer,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> Callable[..., Message]:
    """Post a signed MMS carrying ``media`` [(bytes, content type)] and run what its commit
    queued (ingestion, then the media fetch; tasks run eagerly here)."""
    Endpoint.objects.create(channel="sms", address=SMS_NUMBER, name="SMS", queue=bodies[0].queue)

    def post(*items: tuple[bytes, str], declared: str | None = None) -> Message:
        fields = {"NumMedia": str(len(items))}
        for i, (content, content_type) in enumerate(items):
            fields[f"MediaUrl{i}"] = server.add_media(MMS_SID, content, content_type)
            fields[f"MediaContentType{i}"] = declared or content_type
        with django_capture_on_commit_callbacks(execute=True):
            reply = twilio.post("/webhooks/twilio/sms/", payload("mms_inbound", **fields))
        assert reply.status == 200
        return Message.objects.get(provider_id=MMS_SID)

    return post


@pytest.fixture
def sweep(django_capture_on_commit_callbacks: Callable[..., Any]) -> Callable[..., int]:
    """Run the media sweep ``later`` seconds from now (and the fetches it queues, eagerly)."""

    def run(later: float = 0) -> int:
        with django_capture_on_commit_callbacks(execute=True):
            return media.do_sweep_media(now=timezone.now() + timedelta(seconds=later))

    return run


def _retried_until_settled(message: Message, sweep: Callable[..., int]) -> Message:
    """Tasks run eagerly here: each retry is the sweep's, once the back-off has passed."""
    for _ in range(10):
        message.refresh_from_db()
        if not any(media.is_pending(entry) for entry in message.attachments):
            break
        sweep(later=3600)
    return message


def _assign(message: Message, agent: AgentProfile) -> None:
    Interaction.objects.filter(pk=message.interaction_id).update(
        status="assigned", assigned_agent=agent
    )


def _client(agent: AgentProfile, language: str = "fr") -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE=language)
    client.force_login(agent.user)
    return client


def _route(message: Message, index: int) -> str:
    return f"/console/messages/{message.pk}/attachments/{index}/"


def _thread(client: Client, message: Message) -> str:
    response = client.get(f"/console/interactions/{message.interaction_id}/thread/")
    assert response.status_code == 200
    return response.content.decode()


def _assert_served(response: Any, content_type: str, disposition: str, content: bytes) -> None:
    assert response.status_code == 200
    assert response["Content-Type"] == content_type
    assert response["Content-Disposition"].startswith(disposition + ";")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response.getvalue() == content


def _stored_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


# --- MMS ---------------------------------------------------------------------------------------
def test_mms_media_are_fetched_with_the_account_credentials_and_served_to_the_agent(
    bodies: tuple[Body, Body], server: FakeMediaServer, deliver_mms: Callable[..., Message]
) -> None:
    caf, mairie = bodies
    # when an MMS with a photo and a PDF arrives
    message = deliver_mms((JPEG, "image/jpeg"), (PDF, "application/pdf"))
    # then both were downloaded from the provider with the account's Basic credentials...
    api = server.api_requests()
    assert len(api) == 2
    assert {r.authorization for r in api} == {BASIC}
    # ...following its redirect to storage, where the credentials are not sent
    storage = server.storage_requests()
    assert len(storage) == 2
    assert {r.authorization for r in storage} == {""}
    assert {r.host.split(":")[0] for r in storage} == {"localhost"}
    assert [a["fetch"] for a in message.attachments] == ["stored", "stored"]
    assert [a["name"] for a in message.attachments] == ["media-1.jpg", "media-2.pdf"]
    assert [a["size"] for a in message.attachments] == [len(JPEG), len(PDF)]

    # the agent the conversation is assigned to opens them from the thread
    _assign(message, caf.agent)
    agent = _client(caf.agent)
    _assert_served(agent.get(_route(message, 0)), "image/jpeg", "inline", JPEG)
    _assert_served(agent.get(_route(message, 1)), "application/pdf", "attachment", PDF)
    html = _thread(agent, message)
    assert f'href="{_route(message, 0)}"' in html
    assert f'href="{_route(message, 1)}"' in html
    assert server.api_origin not in html  # no provider address the agent could not open

    # an agent of another organisation: not found
    other = _client(mairie.agent)
    for index in (0, 1):
        assert other.get(_route(message, index)).status_code == 404


def test_a_provider_down_then_up_is_retried_and_the_media_stored(
    server: FakeMediaServer, deliver_mms: Callable[..., Message], sweep: Callable[..., int]
) -> None:
    server.drop_requests = 1  # the first attempt: connection closed without an answer
    server.outage_requests = 1  # the second: 503
    # when
    message = deliver_mms((JPEG, "image/jpeg"))
    assert message.attachments[0]["fetch"] == "pending"  # the SMS is recorded all the same
    assert "Connection" in message.attachments[0]["error"]
    message = _retried_until_settled(message, sweep)
    # then the third attempt (OUTBOUND_MAX_ATTEMPTS) stored it
    entry = message.attachments[0]
    assert entry["fetch"] == "stored"
    assert entry["attempts"] == 3
    assert len(server.api_requests()) == 3


def test_an_expired_storage_address_is_fetched_again_not_blamed_on_the_credentials(
    server: FakeMediaServer, deliver_mms: Callable[..., Message], sweep: Callable[..., int]
) -> None:
    server.expired_storage_requests = 1
    message = deliver_mms((JPEG, "image/jpeg"))
    assert message.attachments[0]["fetch"] == "pending"
    entry = _retried_until_settled(message, sweep).attachments[0]
    assert (entry["fetch"], entry["attempts"]) == ("stored", 2)
    assert len(server.storage_requests()) == 2  # a fresh storage address the second time
    assert len({r.path for r in server.storage_requests()}) == 2


def test_a_stalled_provider_costs_one_read_timeout_then_the_medium_is_stored(
    server: FakeMediaServer,
    deliver_mms: Callable[..., Message],
    settings: Any,
    sweep: Callable[..., int],
) -> None:
    settings.PROVIDER_READ_TIMEOUT_S = 0.5
    server.stall_requests, server.stall_seconds = 1, 6.0  # accepts, answers nothing for 6 s
    started = time.monotonic()
    message = deliver_mms((JPEG, "image/jpeg"))
    assert time.monotonic() - started < 5  # the read timeout, not the stall
    entry = _retried_until_settled(message, sweep).attachments[0]
    assert (entry["fetch"], entry["attempts"]) == ("stored", 2)


@pytest.mark.parametrize(
    ("fault", "code", "french", "english"),
    [
        (
            "bad-credentials",
            "unauthorized",
            "média indisponible\u00a0: le fournisseur a refusé nos identifiants (HTTP 401)",
            "media unavailable: the provider refused our credentials (HTTP 401)",
        ),
        (
            "oversize",
            "too_large",
            "média indisponible\u00a0: plus lourd que la limite de 1000\xa0octets",
            "media unavailable: larger than the 1000\xa0bytes limit",
        ),
        (
            "html",
            "type_not_allowed",
            "média indisponible\u00a0: les fichiers de type text/html ne sont pas acceptés",
            "media unavailable: files of type text/html are not accepted",
        ),
        (
            "disguised",
            "type_mismatch",
            "média indisponible\u00a0: son contenu n’est pas le image/jpeg annoncé",
            "media unavailable: its content is not the image/jpeg it claims to be",
        ),
        (
            "down",
            "unreachable",
            "média indisponible\u00a0: le fournisseur est resté injoignable après 3 tentatives",
            "media unavailable: the provider could not be reached after 3 attempts",
        ),
    ],
)
def test_a_medium_that_cannot_be_fetched_is_shown_unavailable_with_the_reason(
    bodies: tuple[Body, Body],
    server: FakeMediaServer,
    deliver_mms: Callable[..., Message],
    settings: Any,
    tmp_path: Path,
    sweep: Callable[..., int],
    fault: str,
    code: str,
    french: str,
    english: str,
) -> None:
    item = (JPEG, "image/jpeg")
    if fault == "bad-credentials":
        server.auth_token = "f" * 32  # the account's token changed at the provider
    elif fault == "oversize":
        settings.MEDIA_MAX_BYTES = 1000
    elif fault == "html":
        item = (b"<html><script>alert(1)</script></html>", "text/html")
    elif fault == "disguised":
        item = (b"<svg onload=alert(1)>", "image/jpeg")
    elif fault == "down":
        server.outage_requests = 10
    # when
    message = _retried_until_settled(deliver_mms(item), sweep)
    # then the message is there, its medium marked unavailable with the reason, nothing stored
    entry = message.attachments[0]
    assert entry["fetch"] == "unavailable"
    assert entry["unavailable"] == code
    assert "storage_path" not in entry
    assert _stored_files(tmp_path) == []
    assert message.text == "Voici mon justificatif"
    caf = bodies[0]
    _assign(message, caf.agent)
    assert french in _thread(_client(caf.agent, "fr"), message)
    assert english in _thread(_client(caf.agent, "en"), message)
    assert _client(caf.agent).get(_route(message, 0)).status_code == 404
    # a permanent refusal is not retried; only the outage used every attempt
    assert len(server.api_requests()) == (3 if fault == "down" else 1)


def test_credentials_are_never_sent_outside_the_provider(
    server: FakeMediaServer, deliver_mms: Callable[..., Message], settings: Any
) -> None:
    settings.PROVIDER_MEDIA_ORIGINS = ["https://api.twilio.com"]  # the fake is not the provider
    message = deliver_mms((JPEG, "image/jpeg"))
    assert message.attachments[0]["unavailable"] == "untrusted_url"
    assert server.requests == []


def test_a_redelivered_task_stores_nothing_twice(
    server: FakeMediaServer, deliver_mms: Callable[..., Message], tmp_path: Path
) -> None:
    message = deliver_mms((JPEG, "image/jpeg"), (PDF, "application/pdf"))
    files = _stored_files(tmp_path)
    assert len(files) == 2
    # when the broker delivers the task again (a worker died before acknowledging it)
    fetch_provider_media.apply(args=(message.pk,), throw=True)
    fetch_provider_media.apply(args=(message.pk,), throw=True)
    # then
    message.refresh_from_db()
    assert _stored_files(tmp_path) == files
    assert len(server.api_requests()) == 2
    assert [a["fetch"] for a in message.attachments] == ["stored", "stored"]


def test_a_lost_task_is_queued_again_by_the_sweep_once_due(
    server: FakeMediaServer,
    deliver_mms: Callable[..., Message],
    monkeypatch: pytest.MonkeyPatch,
    sweep: Callable[..., int],
) -> None:
    queued: list[int] = []
    monkeypatch.setattr(sms_actions, "request_fetch", queued.append)  # the task never arrives
    message = deliver_mms((JPEG, "image/jpeg"))
    assert queued == [message.pk]
    assert message.attachments[0]["fetch"] == "pending"
    assert sweep() == 0  # not yet: within the grace
    assert sweep(later=media.SWEEP_GRACE_S + 1) == 1
    message.refresh_from_db()
    assert (message.attachments[0]["fetch"], message.attachments[0]["attempts"]) == ("stored", 1)
    assert sweep(later=3600) == 0  # nothing left to fetch


def test_a_failed_attempt_waits_for_its_back_off(
    server: FakeMediaServer,
    deliver_mms: Callable[..., Message],
    monkeypatch: pytest.MonkeyPatch,
    sweep: Callable[..., int],
) -> None:
    monkeypatch.setattr(sms_actions, "request_fetch", lambda message_id: None)
    pending = deliver_mms((JPEG, "image/jpeg"))
    server.outage_requests = 1
    # when the first attempt fails (with a broker the task retries after the back-off)
    with pytest.raises(media.FetchRetryLater) as later:
        media.do_fetch_message_media(message_id=pending.pk)
    assert later.value.countdown == 1  # OUTBOUND_RETRY_BACKOFF_S
    message = Message.objects.get(provider_id=MMS_SID)
    entry = message.attachments[0]
    assert (entry["fetch"], entry["attempts"]) == ("pending", 1)
    assert "503" in entry["error"]
    # then the sweep leaves it until its back-off and the grace have passed
    assert sweep(later=media.SWEEP_GRACE_S) == 0
    assert sweep(later=1 + media.SWEEP_GRACE_S + 1) == 1
    message.refresh_from_db()
    assert (message.attachments[0]["fetch"], message.attachments[0]["attempts"]) == ("stored", 2)


def test_the_fetch_runs_on_the_outbound_queue() -> None:
    route = app.amqp.router.route({}, fetch_provider_media.name)
    assert route["queue"].name == OUTBOUND_QUEUE


# --- Voicemail ---------------------------------------------------------------------------------
VOICEMAIL_FLOW = {
    "start": "messagerie",
    "language": "fr",
    "nodes": {
        "messagerie": {
            "type": "voicemail",
            "prompt": {"text": "Laissez votre message après le bip."},
            "max_seconds": 90,
        }
    },
}


def test_a_voicemail_recording_is_fetched_and_playable_by_the_agent(
    bodies: tuple[Body, Body],
    twilio: FakeTwilio,
    server: FakeMediaServer,
    django_capture_on_commit_callbacks: Callable[..., Any],
    sweep: Callable[..., int],
) -> None:
    caf, mairie = bodies
    endpoint = Endpoint.objects.create(
        channel="voice", address=VOICE_NUMBER, name="Accueil", queue=caf.queue
    )
    flow = Flow.objects.create(name="Messagerie", organisation=caf.org)
    do_publish_flow_version(version=do_create_flow_version(flow=flow, graph=VOICEMAIL_FLOW))
    EndpointFlow.objects.create(endpoint=endpoint, flow=flow)
    recording_url = server.add_recording(RECORDING_SID, wav=WAV, mp3=MP3)
    server.not_ready_requests = 1  # still being processed when the provider posts its address
    # when the caller leaves a message
    answer = twilio.post("/webhooks/twilio/voice/", payload("voice_incoming"))
    record = answer.xml().find("Record")
    assert record is not None
    with django_capture_on_commit_callbacks(execute=True):
        twilio.post(
            record.get("action", ""), payload("voice_recording", RecordingUrl=recording_url)
        )
    # then the recording waits (not ready yet: 404), is not given up, and the retry stores it
    message = Message.objects.get(channel="voice")
    assert message.attachments[0]["fetch"] == "pending"
    entry = _retried_until_settled(message, sweep).attachments[0]
    api = server.api_requests()
    assert [r.path.endswith(f"/Recordings/{RECORDING_SID}.mp3") for r in api] == [True, True]
    assert {r.authorization for r in api} == {BASIC}
    assert entry["fetch"] == "stored"
    assert entry["content_type"] == "audio/mpeg"
    assert entry["duration_seconds"] == 14
    # and the agent plays it from the thread
    _assign(message, caf.agent)
    agent = _client(caf.agent)
    _assert_served(agent.get(_route(message, 0)), "audio/mpeg", "inline", MP3)
    assert f'<audio controls preload="none" src="{_route(message, 0)}"' in _thread(agent, message)
    assert _client(mairie.agent).get(_route(message, 0)).status_code == 404


# --- With a broker: the retries are scheduled on the outbound queue ---------------------------
@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_with_a_broker_the_fetch_retries_after_its_back_off_on_a_real_worker(
    bodies: tuple[Body, Body],
    twilio: FakeTwilio,
    server: FakeMediaServer,
    settings: Any,
    tmp_path: Path,
) -> None:
    import redis

    # The test's own Redis database (REDIS_URL): only the two queues' keys are cleared.
    broker = settings.REDIS_URL
    redis.Redis.from_url(broker).delete("celery", OUTBOUND_QUEUE)
    Endpoint.objects.create(channel="sms", address=SMS_NUMBER, name="SMS", queue=bodies[0].queue)
    server.outage_requests = 2  # the first two attempts answer 503
    fields = {
        "NumMedia": "1",
        "MediaUrl0": server.add_media(MMS_SID, JPEG, "image/jpeg"),
        "MediaContentType0": "image/jpeg",
    }
    env = {
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "PROVIDER_MEDIA_ORIGINS": server.api_origin,
        "MEDIA_ROOT": str(tmp_path),
        "OUTBOUND_MAX_ATTEMPTS": "3",
        "OUTBOUND_RETRY_BACKOFF_S": "1",
    }
    with celery_broker(broker, settings):
        processes = start_workers(1, broker, extra_env=env)
        try:
            # when the MMS arrives: ingested by the worker, then its medium fetched there
            reply = twilio.post("/webhooks/twilio/sms/", payload("mms_inbound", **fields))
            assert reply.status == 200

            def stored() -> bool:
                message = Message.objects.filter(provider_id=MMS_SID).first()
                return message is not None and message.attachments[0]["fetch"] == "stored"

            deadline = time.monotonic() + 60
            while not stored() and time.monotonic() < deadline:
                time.sleep(0.3)
        finally:
            stop_workers(processes)
    # then it was stored on the third attempt, each retry scheduled after the doubling back-off
    entry = Message.objects.get(provider_id=MMS_SID).attachments[0]
    assert entry["fetch"] == "stored", entry
    assert entry["attempts"] == 3
    api = server.api_requests()
    assert len(api) == 3
    assert api[1].at - api[0].at >= 0.9  # OUTBOUND_RETRY_BACKOFF_S
    assert api[2].at - api[1].at >= 1.9  # doubled
    assert (tmp_path / entry["storage_path"]).read_bytes() == JPEG
