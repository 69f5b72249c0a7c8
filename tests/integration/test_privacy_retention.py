"""The retention purge on a generated history removes exactly what is due, idempotently, and
nothing under an open interaction; ``manage.py purge --dry-run`` says the same and changes
nothing."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from channels_inbound.chat.models import ChatSession, ChatWidget
from channels_inbound.models import Endpoint
from channels_inbound.sms.models import InboundSms
from console.models import AgentEvent
from contactcentre.celery import app
from contactcentre.embedded import EmbeddedScheduler
from interactions.models import Interaction, Message
from privacy.models import AccessLog, DataClass, RetentionPolicy
from privacy.retention import purge, purge_transaction
from tests.integration.test_admin_scope import verified
from tests.integration.test_api_scope import Body, _body
from tests.integration.test_privacy_rights import officer

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

NOW = timezone.now()


def _conversation(body: Body, *, ended_days_ago: int | None, number: int) -> Interaction:
    """An SMS conversation with a text, an attachment and a voicemail recording; closed that
    many days ago (None: still open, and started 400 days ago)."""
    started = NOW - timedelta(days=(ended_days_ago or 400) + 1)
    interaction = Interaction.objects.create(
        channel="sms",
        queue=body.queue,
        contact=body.citizen,
        status="closed" if ended_days_ago is not None else "assigned",
        assigned_agent=body.colleague.agent_profile,
        queued_at=started,
        closed_at=NOW - timedelta(days=ended_days_ago) if ended_days_ago is not None else None,
    )
    picture = default_storage.save(f"media/p{number}.jpg", ContentFile(b"jpg"))
    voicemail = default_storage.save(f"media/v{number}.mp3", ContentFile(b"mp3"))
    message = Message.objects.create(
        interaction=interaction,
        direction="inbound",
        channel="sms",
        text=f"texte {number}",
        attachments=[
            {"name": "p.jpg", "storage_path": picture},
            {"name": "v.mp3", "storage_path": voicemail, "recording": True},
        ],
    )
    InboundSms.objects.create(
        provider="fake",
        message_sid=f"SM{number}",
        sender="+33600000000",
        recipient="+33100000000",
        body=f"texte {number}",
        message=message,
        state="ingested",
        received_at=started,
    )
    return interaction


@pytest.fixture
def history(roles: None, settings: Any, tmp_path: Any) -> dict[str, Any]:
    settings.MEDIA_ROOT = str(tmp_path)
    settings.PRIVACY_PURGE_BATCH = 2  # several batches for a few rows
    caf = _body("caf", "+33611111111")
    mairie = _body("mairie", "+33622222222")
    # The CAF keeps messages 30 days, attachments 60, recordings 20; the rest by default.
    for data_class, days in (
        (DataClass.MESSAGES, 30),
        (DataClass.ATTACHMENTS, 60),
        (DataClass.RECORDINGS, 20),
        (DataClass.CHAT_TRANSCRIPTS, 30),
    ):
        RetentionPolicy.objects.create(organisation=caf.org, data_class=data_class, days=days)
    old = [_conversation(caf, ended_days_ago=d, number=i) for i, d in enumerate((100, 45, 25))]
    recent = _conversation(caf, ended_days_ago=5, number=10)
    still_open = _conversation(caf, ended_days_ago=None, number=11)
    # The mairie keeps the defaults (3 years of messages): nothing of theirs is due.
    theirs = _conversation(mairie, ended_days_ago=100, number=20)
    # Chat transcripts (30 days): the bot part of the conversation ended 100 days ago goes, the
    # open one's stays.
    endpoint = Endpoint.objects.create(
        channel="chat", address="caf-chat", name="Chat", queue=caf.queue, organisation=caf.org
    )
    widget = ChatWidget.objects.create(endpoint=endpoint, organisation=caf.org)
    for number, interaction in ((0, old[0]), (11, still_open)):
        ChatSession.objects.create(
            widget=widget, visitor_id=f"v-{number}", display_name=f"Nom {number}",
            interaction=interaction, bot_log=[{"from": "citizen", "text": f"bot {number}"}],
        )  # fmt: skip
    agent = caf.colleague.agent_profile.pk
    AgentEvent.objects.create(agent_id=agent, event="x", payload={}, created_at=NOW - timedelta(2))
    AgentEvent.objects.create(agent_id=agent, event="x", payload={}, created_at=NOW)
    AccessLog.objects.create(organisation=caf.org, action="view_thread", at=NOW - timedelta(400))
    AccessLog.objects.create(organisation=caf.org, action="view_thread", at=NOW - timedelta(10))
    return {"old": old, "recent": recent, "open": still_open, "theirs": theirs, "caf": caf}


def _texts(interaction: Interaction) -> list[str]:
    return list(interaction.messages.values_list("text", flat=True))


def _attachment_names(interaction: Interaction) -> list[str]:
    entries = interaction.messages.get().attachments
    return [entry["name"] for entry in entries]


def _summary(lines: list[Any]) -> dict[tuple[str, str], int]:
    """Rows per (class, kind of row), all organisations together."""
    total: dict[tuple[str, str], int] = {}
    for line in lines:
        key = (line.data_class, line.step)
        total[key] = total.get(key, 0) + line.count
    return total


def test_purge_removes_exactly_what_is_due_once(history: dict[str, Any]) -> None:
    old, recent, still_open = history["old"], history["recent"], history["open"]
    expected = {
        # messages (30 days): the conversations ended 100 and 45 days ago
        ("messages", "interactions.message"): 2,
        # attachments (60 days): the one ended 100 days ago
        ("attachments", "interactions.message(attachments)"): 1,
        # recordings (20 days): ended 100, 45 and 25 days ago
        ("recordings", "interactions.message(recordings)"): 3,
        # provider payloads (90 days, both): SMS received more than 90 days ago, of ended
        # conversations (the CAF's and the mairie's; not the open one's, 401 days old)
        ("chat_transcripts", "channels_chat.chatsession"): 1,
        ("provider_payloads", "channels_sms.inboundsms"): 2,
        ("console_events", "console.agentevent"): 1,
        ("access_logs", "privacy.accesslog"): 1,
    }
    dry = purge(now=NOW, dry_run=True)
    assert _summary(dry) == expected
    out = StringIO()
    call_command("purge", "--dry-run", stdout=out)
    assert "total: 11 would go (dry run)" in out.getvalue()
    assert _texts(old[0]) == ["texte 0"]  # a dry run changes nothing
    assert _summary(purge(now=NOW)) == expected
    # what was due went...
    assert _texts(old[0]) == [""]
    assert _texts(old[1]) == [""]
    assert _attachment_names(old[0]) == []
    assert _attachment_names(old[1]) == ["p.jpg"]
    assert _attachment_names(old[2]) == ["p.jpg"]
    assert not default_storage.exists("media/p0.jpg")
    assert not default_storage.exists("media/v2.mp3")
    assert default_storage.exists("media/p1.jpg")
    assert not InboundSms.objects.filter(message_sid="SM0").exists()
    # ...and nothing else: the recent, the open (400 days old) and the mairie's stay whole
    assert _texts(old[2]) == ["texte 2"]
    for kept in (recent, still_open, history["theirs"]):
        assert _texts(kept) == [kept.messages.get().text]
        assert kept.messages.get().text.startswith("texte")
        assert _attachment_names(kept) == ["p.jpg", "v.mp3"]
    assert InboundSms.objects.filter(message__interaction=still_open).exists()
    emptied = ChatSession.objects.get(interaction=old[0])
    assert (emptied.bot_log, emptied.display_name) == ([], "")
    assert ChatSession.objects.get(interaction=still_open).bot_log != []
    # the interactions themselves stay (statistics)
    assert Interaction.objects.filter(pk__in=[i.pk for i in old]).count() == 3
    # a second run finds nothing: idempotent
    assert purge(now=NOW) == []
    logged = AccessLog.objects.filter(action="purge", organisation=history["caf"].org).get()
    assert logged.details["removed"]["messages:interactions.message"] == 2


def test_the_beat_schedule_and_the_embedded_scheduler_run_the_purge(
    history: dict[str, Any], settings: Any
) -> None:
    entry = settings.CELERY_BEAT_SCHEDULE["privacy-purge"]
    assert entry["task"] == "privacy.purge"
    scheduler = EmbeddedScheduler()
    task, first_wait = scheduler.entries["privacy-purge"]
    assert task == "privacy.purge"
    assert 0 < first_wait <= 24 * 3600  # the next night, not an interval from now
    assert app.tasks[task].apply().get(disable_sync_subtasks=False) == 11
    assert _texts(history["old"][0]) == [""]


def test_access_log_rows_are_deleted_only_by_the_purge(history: dict[str, Any]) -> None:
    old_row = AccessLog.objects.filter(at__lt=NOW - timedelta(days=365)).get()
    with purge_transaction():
        AccessLog.objects.filter(pk=old_row.pk).delete()
    assert not AccessLog.objects.filter(pk=old_row.pk).exists()


def test_the_officer_sets_durations_for_their_organisation_only(history: dict[str, Any]) -> None:
    caf = history["caf"]
    client = verified(Client(), officer(caf, "dpo-caf"))
    page = client.get("/privacy/retention/")
    assert page.status_code == 200
    assert 'name="recordings" type="number" min="1" max="36500" value="20"' in page.content.decode()
    saved = client.post("/privacy/retention/", {"chat_transcripts": "90", "messages": ""})
    assert saved.status_code == 302
    policy = RetentionPolicy.objects.get(organisation=caf.org, data_class="chat_transcripts")
    assert policy.days == 90
    assert AccessLog.objects.filter(action="retention", organisation=caf.org).count() == 1
    refused = client.post("/privacy/retention/", {"messages": "toujours"})
    assert refused.status_code == 400
    assert RetentionPolicy.objects.get(organisation=caf.org, data_class="messages").days == 30
