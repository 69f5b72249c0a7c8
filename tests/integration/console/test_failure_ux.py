"""Issue 12, the console side: never leave an agent blind.

- a chat the citizen left (``chat.ended``) refuses a reply, nothing sent nor stored, and its
  workspace says so with the composer disabled;
- a call that could not be bridged (``call.bridge_failed``) is no longer a call in progress in
  the console's state;
- attachments are opened through a download route served only to who may see the interaction
  (404 otherwise, another organisation's included), never as an inline page;
- an action that committed is never reported as failed because the session could not be saved;
  after a failed action the console re-reads its state (``/console/snapshot/``).
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client
from django.utils import timezone

from agents.models import AgentPresence, AgentProfile, AgentState
from channels_inbound.chat.actions import do_end_chat
from channels_inbound.chat.models import ChatSession, ChatState, ChatWidget
from channels_inbound.models import Endpoint
from channels_inbound.voice.actions import do_requeue_unreachable
from configuration.models import Queue
from console.middleware import LAST_ACTIVITY_KEY
from console.models import AgentEvent
from console.outbox import serialise
from console.state import apply_event, build_snapshot
from interactions.actions import do_create_interaction, do_record_message
from interactions.models import Interaction, Message
from organisations.models import Membership, Organisation
from routing.claims import do_route_pending
from routing.models import Offer, OfferStatus


def events_after(agent_id: int, last_id: int) -> list[dict[str, Any]]:
    rows = AgentEvent.objects.filter(agent_id=agent_id, pk__gt=last_id).order_by("pk")
    return [serialise(row) for row in rows]


pytestmark = pytest.mark.django_db(transaction=False)

JSON = {"accept": "application/json"}
MEDIA_URL = "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1"


@dataclass
class Body:
    org: Organisation
    queue: Queue
    agent: AgentProfile


def _agent(username: str, org: Organisation, channels: list[str] | None = None) -> AgentProfile:
    user = get_user_model().objects.create_user(username, f"{username}@example.fr", "pw-Te-26!")
    user.groups.add(Group.objects.get(name="agent"))
    Membership.objects.create(user=user, organisation=org)
    profile = AgentProfile.objects.create(user=user, organisation=org, languages=["fr"])
    now = timezone.now()
    AgentPresence.objects.filter(agent=profile).update(
        state=AgentState.AVAILABLE,
        last_heartbeat_at=now,
        state_since=now,
        idle_since=now,
        **({"channels_enabled": channels} if channels is not None else {}),
    )
    return profile


def _body(slug: str) -> Body:
    org = Organisation.objects.create(name=f"Organisation {slug}", slug=slug)
    queue = Queue.objects.create(code="accueil", name=f"File {slug}", organisation=org)
    return Body(org=org, queue=queue, agent=_agent(f"agent-{slug}", org))


@pytest.fixture
def bodies(roles: None) -> tuple[Body, Body]:
    return _body("caf"), _body("mairie")


def _assigned(body: Body, channel: str) -> Interaction:
    interaction = do_create_interaction(
        channel=channel, contact=None, queue=body.queue, subject="Question", enqueue=False
    )
    Interaction.objects.filter(pk=interaction.pk).update(
        status="assigned", assigned_agent=body.agent
    )
    interaction.refresh_from_db()
    return interaction


def _client(agent: AgentProfile) -> Client:
    client = Client()
    client.force_login(agent.user)
    return client


def _chat_session(body: Body, interaction: Interaction) -> ChatSession:
    endpoint = Endpoint.objects.create(
        channel="chat", address=f"widget-{body.org.slug}", name="Widget", queue=body.queue
    )
    widget = ChatWidget.objects.create(endpoint=endpoint, title="Widget")
    return ChatSession.objects.create(
        widget=widget,
        visitor_id=f"visitor-{body.org.slug}",
        state=ChatState.HANDED_OVER,
        interaction=interaction,
    )


# --------------------------------------------------------------------------- 1. chat ended


def test_a_reply_to_a_chat_the_citizen_left_is_refused_and_nothing_is_stored(
    bodies: tuple[Body, Body], django_capture_on_commit_callbacks: Any
) -> None:
    caf, _mairie = bodies
    interaction = _assigned(caf, "chat")
    session = _chat_session(caf, interaction)
    client = _client(caf.agent)
    with django_capture_on_commit_callbacks(execute=True):
        do_end_chat(session_id=session.pk)
    # the agent is told (the console shows it from this event)
    ended = [e for e in events_after(caf.agent.pk, 0) if e["event"] == "chat.ended"]
    assert [e["payload"]["interaction_id"] for e in ended] == [interaction.pk]

    response = client.post(
        f"/console/interactions/{interaction.pk}/reply/", {"text": "Vous êtes là ?"}, headers=JSON
    )
    assert response.status_code == 409
    body = response.json()
    assert body["ok"] is False
    assert "L’usager a quitté ce chat" in body["message"]
    assert not Message.objects.filter(interaction=interaction, direction="outbound").exists()

    workspace = client.get(f"/console/interactions/{interaction.pk}/").content.decode()
    assert "L’usager a quitté ce chat" in workspace
    assert f'id="chat-ended-{interaction.pk}" role="status">' in workspace  # shown, not hidden
    assert '<fieldset class="composer-fields" disabled>' in workspace


def test_a_chat_still_open_takes_replies_and_hides_the_notice(bodies: tuple[Body, Body]) -> None:
    caf, _mairie = bodies
    interaction = _assigned(caf, "chat")
    _chat_session(caf, interaction)
    client = _client(caf.agent)
    workspace = client.get(f"/console/interactions/{interaction.pk}/").content.decode()
    assert f'id="chat-ended-{interaction.pk}" role="status" hidden>' in workspace
    assert '<fieldset class="composer-fields">' in workspace
    response = client.post(
        f"/console/interactions/{interaction.pk}/reply/", {"text": "Bonjour"}, headers=JSON
    )
    assert response.status_code == 200, response.content


# --------------------------------------------------------------------------- 2. bridge failed


def test_a_call_not_bridged_is_no_longer_in_progress_in_the_console_state(
    bodies: tuple[Body, Body], django_capture_on_commit_callbacks: Any
) -> None:
    caf, _mairie = bodies
    call = _assigned(caf, "voice")
    before = build_snapshot(caf.agent)
    assert str(call.pk) in before["interactions"]
    with django_capture_on_commit_callbacks(execute=True):
        assert do_requeue_unreachable(
            interaction_id=call.pk,
            agent_id=caf.agent.pk,
            cause="provider_error",
            message="L'appel n'a pas pu être transféré vers votre téléphone.",
        )
    events = events_after(caf.agent.pk, before["last_event_id"])
    failed = [e for e in events if e["event"] == "call.bridge_failed"]
    assert failed
    assert failed[0]["payload"]["message"].startswith("L'appel n'a pas pu")
    state = before
    for event in events:
        state = apply_event(state, event)
    assert str(call.pk) not in state["interactions"]
    after = build_snapshot(caf.agent)
    assert state["interactions"] == after["interactions"] == {}
    # the workspace of the call is gone for the agent (it is back in the queue)
    response = _client(caf.agent).get(f"/console/interactions/{call.pk}/")
    assert response.status_code == 404


# --------------------------------------------------------------------------- 3. attachments


def _email_with_attachments(body: Body) -> Message:
    interaction = _assigned(body, "email")
    entries = []
    for name, content_type, data in (
        ("justificatif.pdf", "application/pdf", b"%PDF-1.4 justificatif"),
        ("photo.png", "image/png", b"\x89PNG\r\n\x1a\n fake"),
        ("page.html", "text/html", b"<script>alert(1)</script>"),
    ):
        path = default_storage.save(f"test-attachments/{name}", ContentFile(data))
        entries.append(
            {"name": name, "content_type": content_type, "size": len(data), "storage_path": path}
        )
    entries.append(
        {"name": "virus.exe", "content_type": "application/x-msdownload", "refused": "type"}
    )
    entries.append({"name": "media-0", "content_type": "image/jpeg", "url": MEDIA_URL})
    return do_record_message(
        interaction=interaction, direction="inbound", text="Pièces jointes", attachments=entries
    ).message


def _url(message: Message, index: int) -> str:
    return f"/console/messages/{message.pk}/attachments/{index}/"


def test_attachments_are_downloaded_by_who_may_see_the_interaction(
    bodies: tuple[Body, Body], tmp_path: Any, settings: Any
) -> None:
    settings.MEDIA_ROOT = str(tmp_path)
    caf, mairie = bodies
    message = _email_with_attachments(caf)
    client = _client(caf.agent)

    pdf = client.get(_url(message, 0))
    assert pdf.status_code == 200
    assert pdf["Content-Type"] == "application/pdf"
    assert pdf["Content-Disposition"].startswith("attachment;")
    assert 'filename="justificatif.pdf"' in pdf["Content-Disposition"]
    assert pdf.getvalue() == b"%PDF-1.4 justificatif"
    assert pdf["X-Content-Type-Options"] == "nosniff"

    image = client.get(_url(message, 1))
    assert image.status_code == 200
    assert image["Content-Type"] == "image/png"
    assert image["Content-Disposition"].startswith("inline;")
    assert image["X-Content-Type-Options"] == "nosniff"

    page = client.get(_url(message, 2))  # never an HTML page served by us
    assert page.status_code == 200
    assert page["Content-Type"] == "application/octet-stream"
    assert page["Content-Disposition"].startswith("attachment;")

    assert client.get(_url(message, 3)).status_code == 404  # refused: never stored
    assert client.get(_url(message, 4)).status_code == 404  # provider media: a link, not here
    assert client.get(_url(message, 9)).status_code == 404

    # another organisation's agent: not found, whatever the index
    other = _client(mairie.agent)
    for index in range(3):
        assert other.get(_url(message, index)).status_code == 404
    # not logged in: the login page
    assert Client().get(_url(message, 0)).status_code == 302

    # the thread links to the route (stored files) and to the provider's media (MMS, voicemail)
    thread = client.get(f"/console/interactions/{message.interaction_id}/thread/")
    html = thread.content.decode()
    assert f'href="{_url(message, 0)}"' in html
    assert f'href="{_url(message, 1)}"' in html
    assert f'href="{MEDIA_URL}"' in html
    assert _url(message, 3) not in html


# --------------------------------------------------------------------------- 4. failed actions


def _pending_offer(body: Body) -> Offer:
    do_create_interaction(channel="chat", contact=None, queue=body.queue, subject="Question")
    do_route_pending()
    return Offer.objects.get(agent=body.agent, status=OfferStatus.PENDING)


def test_an_accept_that_committed_is_a_success_even_when_the_session_cannot_be_saved(
    bodies: tuple[Body, Body], monkeypatch: pytest.MonkeyPatch
) -> None:
    caf, _mairie = bodies
    offer = _pending_offer(caf)
    client = _client(caf.agent)
    # The last activity was a minute ago: this request moves it, so the session is saved.
    session = client.session
    session[LAST_ACTIVITY_KEY] = time.time() - 60
    session.save()
    store = importlib.import_module(settings.SESSION_ENGINE).SessionStore

    def broken(self: Any, must_create: bool = False) -> None:
        raise ConnectionError("session store down")

    monkeypatch.setattr(store, "save", broken)
    response = client.post(f"/console/offers/{offer.pk}/accept/", headers=JSON)
    assert response.status_code == 200, response.content
    assert response.json()["ok"] is True
    offer.refresh_from_db()
    assert offer.status == OfferStatus.ACCEPTED


def test_the_console_re_reads_its_state_from_the_snapshot_route(
    bodies: tuple[Body, Body],
) -> None:
    caf, mairie = bodies
    offer = _pending_offer(caf)
    response = _client(caf.agent).get("/console/snapshot/", headers=JSON)
    assert response.status_code == 200
    state = response.json()
    assert list(state["offers"]) == [str(offer.pk)]  # still pending: the card stays
    assert state["agent"]["id"] == caf.agent.pk
    other = _client(mairie.agent).get("/console/snapshot/", headers=JSON).json()
    assert other["offers"] == {}
    assert other["agent"]["id"] == mairie.agent.pk
