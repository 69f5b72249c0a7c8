"""Data subject rights: a data-protection officer finds a citizen, exports, rectifies, erases.

After an erasure no table (every text and JSON column of every table, scanned in PostgreSQL)
holds the citizen's number, address, name or message text, while yesterday's report figures
are unchanged: the interactions, transitions and queues stay with their timestamps.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from django.test import Client
from django.utils import timezone

from channels_inbound.chat.models import ChatSession, ChatWidget
from channels_inbound.email.models import EmailThreadEntry
from channels_inbound.models import Endpoint
from channels_inbound.sms.models import InboundSms, OutboundSms
from console.models import AgentEvent
from contacts.models import Case, Contact, ContactIdentity
from interactions.models import Interaction, InteractionTransition, Message
from organisations.models import Membership
from privacy.models import AccessLog
from supervision.periods import PARIS, Period, local_day, period_bounds
from supervision.reports import build_report
from supervision.selectors import report_facts
from tests.integration.test_admin_scope import verified
from tests.integration.test_api_scope import Body, _body

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

PHONE = "+33611223344"
EMAIL = "ziggy.erasable@example.org"
NAME = "Ziggy Stardustwood"
TEXT = "Mon dossier Zephyrine numéro 4815162342"


def officer(body: Body, username: str) -> User:
    user = User.objects.create_user(username, f"{username}@example.fr", "pw-Test-2026!")
    user.groups.add(Group.objects.get(name="data_protection_officer"))
    Membership.objects.create(user=user, organisation=body.org)
    return user


@dataclass
class World:
    caf: Body
    mairie: Body
    citizen: Contact
    open_one: Interaction
    closed: list[Interaction]
    dpo: User
    other_dpo: User


def _ended(body: Body, citizen: Contact, channel: str, start: Any, *, subject: str = "") -> Any:
    """A conversation that arrived at ``start``, was answered after 30 s and closed after 5 min."""
    interaction = Interaction.objects.create(
        channel=channel,
        queue=body.queue,
        contact=citizen,
        subject=subject,
        status="closed",
        assigned_agent=body.colleague.agent_profile,
        queued_at=start,
        assigned_at=start + timedelta(seconds=30),
        closed_at=start + timedelta(minutes=5),
    )
    for to_status, at in (
        ("queued", start),
        ("assigned", start + timedelta(seconds=30)),
        ("closed", start + timedelta(minutes=5)),
    ):
        InteractionTransition.objects.create(
            interaction=interaction, from_status="new", to_status=to_status, at=at
        )
    return interaction


@pytest.fixture
def world(roles: None, settings: Any, tmp_path: Any) -> World:
    settings.MEDIA_ROOT = str(tmp_path)
    caf = _body("caf", "+33611111111")
    mairie = _body("mairie", "+33622222222")
    citizen = Contact.objects.create(display_name=NAME, organisation=caf.org, notes="allergique")
    ContactIdentity.objects.create(contact=citizen, kind="phone", value=PHONE)
    ContactIdentity.objects.create(contact=citizen, kind="email", value=EMAIL)
    Case.objects.create(contact=citizen, subject=f"Dossier de {NAME}", reference="CAF-TEST-0001")
    yesterday = timezone.now().astimezone(PARIS).replace(hour=10, minute=0) - timedelta(days=1)
    sms = _ended(caf, citizen, "sms", yesterday)
    inbound = Message.objects.create(interaction=sms, direction="inbound", channel="sms", text=TEXT)
    InboundSms.objects.create(
        provider="fake", message_sid="SM1", sender=PHONE, recipient="+33100000000",
        body=TEXT, message=inbound, state="ingested",
    )  # fmt: skip
    reply = Message.objects.create(
        interaction=sms, direction="outbound", channel="sms", text=f"Bonjour {NAME}"
    )
    OutboundSms.objects.create(
        interaction=sms, message=reply, to=PHONE, from_number="+33100000000",
        body=f"Bonjour {NAME}",
    )  # fmt: skip
    email = _ended(caf, citizen, "email", yesterday + timedelta(hours=1), subject=TEXT)
    stored = default_storage.save("attachments/avis.pdf", ContentFile(b"%PDF avis"))
    Message.objects.create(
        interaction=email, direction="inbound", channel="email", text=TEXT,
        html=f"<p>{TEXT}</p>",
        attachments=[{"name": "avis.pdf", "content_type": "application/pdf", "size": 9,
                      "storage_path": stored}],
    )  # fmt: skip
    EmailThreadEntry.objects.create(
        message_id=f"<1@{EMAIL.split('@')[1]}>", interaction=email, direction="inbound",
        citizen_address=EMAIL, our_address="contact@caf.example.fr", subject=TEXT,
    )  # fmt: skip
    endpoint = Endpoint.objects.create(
        channel="chat", address="caf-chat", name="Chat", queue=caf.queue, organisation=caf.org
    )
    widget = ChatWidget.objects.create(endpoint=endpoint, organisation=caf.org)
    chat = _ended(caf, citizen, "chat", yesterday + timedelta(hours=2))
    Message.objects.create(interaction=chat, direction="inbound", channel="chat", text=TEXT)
    ChatSession.objects.create(
        widget=widget, visitor_id="v-1", display_name=NAME, interaction=chat,
        bot_log=[{"from": "citizen", "text": TEXT}],
    )  # fmt: skip
    AgentEvent.objects.create(
        agent_id=caf.colleague.agent_profile.pk, event="message",
        payload={"contact": NAME, "text": TEXT}, created_at=timezone.now(),
    )  # fmt: skip
    open_one = Interaction.objects.create(
        channel="sms", queue=caf.queue, contact=citizen, status="assigned",
        assigned_agent=caf.colleague.agent_profile, queued_at=timezone.now(),
    )  # fmt: skip
    Message.objects.create(interaction=open_one, direction="inbound", channel="sms", text=TEXT)
    return World(
        caf, mairie, citizen, open_one, [sms, email, chat],
        officer(caf, "dpo-caf"), officer(mairie, "dpo-mairie"),
    )  # fmt: skip


def _client(user: User) -> Client:
    return verified(Client(), user)


def holders(*values: str) -> list[str]:
    """Every table.column (text, varchar or JSON, any table of the schema) holding one of the
    values."""
    found = []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() "
            "AND data_type IN ('text', 'character varying', 'jsonb', 'json')"
        )
        columns = cursor.fetchall()
        for table, column in columns:
            for value in values:
                cursor.execute(
                    f'SELECT count(*) FROM "{table}" WHERE "{column}"::text LIKE %s',
                    [f"%{value}%"],
                )
                if cursor.fetchone()[0]:
                    found.append(f"{table}.{column} ∋ {value}")
    return found


def yesterday_report() -> Any:
    day = local_day(timezone.now() - timedelta(days=1))
    period = Period(day, day)
    start, end = period_bounds(period)
    return build_report(report_facts(start, end), period)


def test_erasure_refused_while_open_then_nothing_left_and_figures_unchanged(world: World) -> None:
    client = _client(world.dpo)
    before = yesterday_report()
    assert before.total.offered == 3
    # An open conversation: refused, with a clear message, and nothing erased.
    refused = client.post(f"/privacy/citizens/{world.citizen.pk}/erase/", {"confirm": "yes"})
    assert refused.status_code == 409
    assert "1 échange encore ouvert\u00a0: clôturez-le, puis effacez." in refused.content.decode()
    assert holders(PHONE)
    assert AccessLog.objects.filter(action="erase_refused", object_id=str(world.citizen.pk))
    # The agent closes it; the erasure goes through.
    Interaction.objects.filter(pk=world.open_one.pk).update(
        status="closed", closed_at=timezone.now()
    )
    done = client.post(f"/privacy/citizens/{world.citizen.pk}/erase/", {"confirm": "yes"})
    assert done.status_code == 302
    assert holders(PHONE, EMAIL, NAME, TEXT, "Zephyrine", "allergique") == []
    assert not default_storage.exists("attachments/avis.pdf")
    # Statistics keep counting: same figures, same interactions, transitions and queues.
    assert yesterday_report() == before
    assert Interaction.objects.filter(contact=world.citizen).count() == 4
    assert InteractionTransition.objects.filter(interaction__in=world.closed).count() == 9
    # The request is logged with who and when.
    erased = AccessLog.objects.get(action="erase", object_id=str(world.citizen.pk))
    assert erased.actor_name == "dpo-caf"
    assert erased.organisation_id == world.caf.org.pk


def test_erasure_needs_the_confirmation_box(world: World) -> None:
    response = _client(world.dpo).post(f"/privacy/citizens/{world.citizen.pk}/erase/")
    assert response.status_code == 400
    assert holders(NAME)


def test_export_holds_everything_in_json_and_html(world: World) -> None:
    client = _client(world.dpo)
    response = client.get(f"/privacy/citizens/{world.citizen.pk}/export/?format=json")
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment")
    data = json.loads(response.content)
    assert data["citizen"]["name"] == NAME
    assert {(i["kind"], i["value"]) for i in data["identities"]} == {
        ("phone", PHONE),
        ("email", EMAIL),
    }
    assert [c["reference"] for c in data["cases"]] == ["CAF-TEST-0001"]
    texts = [m["text"] for i in data["interactions"] for m in i["messages"]]
    assert texts.count(TEXT) == 4
    attachments = [a for i in data["interactions"] for m in i["messages"] for a in m["attachments"]]
    assert attachments == [{"name": "avis.pdf", "content_type": "application/pdf", "size": 9}]
    assert data["sms"]["received"][0]["from"] == PHONE
    assert data["emails"][0]["citizen_address"] == EMAIL
    assert data["chats"][0]["bot_conversation"] == [{"from": "citizen", "text": TEXT}]
    assert len(data["interactions"][0]["transitions"]) == 3
    page = client.get(f"/privacy/citizens/{world.citizen.pk}/export/?format=html")
    assert page.status_code == 200
    assert TEXT in page.content.decode()
    assert "CAF-TEST-0001" in page.content.decode()
    assert AccessLog.objects.filter(action="export", object_id=str(world.citizen.pk)).count() == 2
    assert client.get(f"/privacy/citizens/{world.citizen.pk}/export/?format=xml").status_code == 400


def test_another_organisations_officer_finds_nothing(world: World) -> None:
    client = _client(world.other_dpo)
    assert client.get(f"/privacy/citizens/{world.citizen.pk}/").status_code == 404
    assert client.get(f"/privacy/citizens/{world.citizen.pk}/export/").status_code == 404
    erase = client.post(f"/privacy/citizens/{world.citizen.pk}/erase/", {"confirm": "yes"})
    assert erase.status_code == 404
    assert NAME not in client.get("/privacy/", {"q": PHONE}).content.decode()
    assert holders(NAME)


def test_search_finds_by_number_address_or_name_and_logs_no_identity(world: World) -> None:
    client = _client(world.dpo)
    for query in ("06 11 22 33 44", EMAIL.upper(), "stardust"):
        page = client.get("/privacy/", {"q": query}).content.decode()
        assert f"/privacy/citizens/{world.citizen.pk}/" in page
    searches = AccessLog.objects.filter(action="search")
    assert searches.count() == 3
    assert "3344" not in json.dumps(list(searches.values_list("details", flat=True)))


def test_rectify_changes_name_and_identity_and_logs_fields_only(world: World) -> None:
    client = _client(world.dpo)
    phone = ContactIdentity.objects.get(contact=world.citizen, kind="phone")
    response = client.post(
        f"/privacy/citizens/{world.citizen.pk}/rectify/",
        {"display_name": "Ziggy Stardust", "preferred_language": "fr",
         f"identity-{phone.pk}": "06 99 88 77 66"},
    )  # fmt: skip
    assert response.status_code == 302
    world.citizen.refresh_from_db()
    phone.refresh_from_db()
    assert world.citizen.display_name == "Ziggy Stardust"
    assert phone.value == "+33699887766"
    logged = AccessLog.objects.get(action="rectify")
    assert logged.details == {"fields": ["display_name", f"identity-{phone.pk}"]}
    bad = client.post(
        f"/privacy/citizens/{world.citizen.pk}/rectify/", {f"identity-{phone.pk}": "pas un numéro"}
    )
    assert bad.status_code == 400


def test_agents_supervisors_and_administrators_are_not_officers(world: World) -> None:
    for user in (world.caf.agent, world.caf.supervisor):
        client = _client(user)
        assert client.get(f"/privacy/citizens/{world.citizen.pk}/").status_code == 403
        assert client.get("/privacy/audit/").status_code == 403
