"""The agent outbox on PostgreSQL (issue 13): a batch of agent events is written with its
interactions' summaries in one statement, and gives exactly what the portable path (the
summaries read, then the rows written: the embedded SQLite default) gives: the same payloads,
key for key and type for type, sent and kept, in the same order. An interaction offered after
a transfer costs the transfer's reads and one update, as the summary read cost before."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from console import outbox
from console.models import AgentEvent
from contacts.models import Contact, ContactIdentity, IdentityKind
from interactions.lifecycle import Status
from interactions.models import Interaction, Message

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

Entries = list[tuple[int, str, dict[str, Any]]]


@pytest.fixture
def binary_statements(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The statements the outbox runs on its own psycopg cursor (``kernel.pg.execute_binary``),
    which Django's query capture does not see."""
    ran: list[str] = []
    original = outbox.execute_binary

    def counting(sql: str, params: list[Any]) -> Any:
        ran.append(sql)
        return original(sql, params)

    monkeypatch.setattr(outbox, "execute_binary", counting)
    return ran


def _message(interaction: Interaction, text: str = "bonjour") -> Message:
    return Message.objects.create(
        interaction=interaction, channel=interaction.channel, direction="inbound", text=text
    )


def _set(interaction: Interaction, **fields: Any) -> Interaction:
    Interaction.objects.filter(pk=interaction.pk).update(**fields)
    interaction.refresh_from_db()
    return interaction


@pytest.fixture
def world(
    make_user: Callable[..., Any], queue: Callable[..., Any], arrive: Callable[..., Interaction]
) -> dict[str, Any]:
    """Interactions of every kind a console shows."""
    from routing.models import RoutingDecision

    caf = queue("caf")
    org = caf.organisation_id
    alice = make_user("alice", first_name="Alice", last_name="Martin").agent_profile
    bob = make_user("bob").agent_profile  # no full name: shown by username
    now = timezone.now()

    marie = Contact.objects.create(display_name="Marie Durand", organisation_id=org)
    unnamed = Contact.objects.create(display_name="", organisation_id=org)
    # the oldest identity that is not a chat visitor's token names them
    ContactIdentity.objects.create(
        contact=unnamed, kind=IdentityKind.CHAT, value="tok-1", organisation_id=org
    )
    ContactIdentity.objects.create(
        contact=unnamed, kind=IdentityKind.PHONE, value="+33612345678", organisation_id=org
    )
    ContactIdentity.objects.create(
        contact=unnamed, kind=IdentityKind.EMAIL, value="x@example.fr", organisation_id=org
    )
    visitor = Contact.objects.create(display_name="", organisation_id=org)
    ContactIdentity.objects.create(
        contact=visitor, kind=IdentityKind.CHAT, value="tok-2", organisation_id=org
    )

    held = _set(
        arrive(caf, "sms", contact=marie, subject="RSA"),
        status=Status.ASSIGNED,
        assigned_agent=alice,
        assigned_at=now,
    )
    _message(held)
    last = _message(held, "merci")
    nameless = arrive(caf, "chat", contact=unnamed)
    chat_visitor = _set(arrive(caf, "chat", contact=visitor), queue=None, language="en")
    anonymous = _set(arrive(caf, "voice", contact=None), queue=None)

    # offered after a transfer to a named colleague, with a note
    to_agent = _set(
        arrive(caf, "email", contact=marie),
        status=Status.OFFERED,
        assigned_agent=alice,
        assigned_at=now - timedelta(minutes=5),
    )
    note = _message(to_agent, "Dossier RSA : attend l’attestation")
    RoutingDecision.objects.create(
        interaction=to_agent,
        action="transfer",
        rule="transfer_to_agent",
        at=now - timedelta(minutes=1),
        details={"from_agent": bob.pk, "note_id": note.pk},
    )
    # offered after a transfer to a queue, never assigned before
    to_queue = _set(arrive(caf, "sms", contact=unnamed), status=Status.OFFERED, assigned_at=None)
    RoutingDecision.objects.create(
        interaction=to_queue,
        action="transfer",
        rule="transfer_to_queue",
        at=now,
        details={"from_agent": alice.pk, "queue": caf.pk},
    )
    # offered, transferred before its last assignment: no transfer shown
    taken_since = _set(arrive(caf, "sms", contact=marie), status=Status.OFFERED, assigned_at=now)
    RoutingDecision.objects.create(
        interaction=taken_since,
        action="transfer",
        rule="transfer_to_agent",
        at=now - timedelta(hours=1),
        details={"from_agent": bob.pk},
    )
    plain_offer = _set(arrive(caf, "voice", contact=marie), status=Status.OFFERED)
    return {
        "alice": alice.pk,
        "bob": bob.pk,
        "held": held,
        "last_message": last,
        "nameless": nameless,
        "chat_visitor": chat_visitor,
        "anonymous": anonymous,
        "to_agent": to_agent,
        "to_queue": to_queue,
        "taken_since": taken_since,
        "plain_offer": plain_offer,
    }


def _without_offers(world: dict[str, Any]) -> Entries:
    a, b = world["alice"], world["bob"]
    held, nameless = world["held"].pk, world["nameless"].pk
    return [
        (a, "interaction.status", {"interaction_id": held, "from": "offered", "to": "assigned"}),
        (a, "message.created", {"interaction_id": held, "message": {"id": 1, "text": "x"}}),
        (b, "interaction.updated", {"interaction_id": nameless, "fields": ["subject"]}),
        (b, "interaction.updated", {"interaction_id": world["chat_visitor"].pk}),
        (a, "interaction.status", {"interaction_id": world["anonymous"].pk, "to": "closed"}),
        (a, "interaction.status", {"interaction_id": held, "to": 3}),  # not a status: kept
        (a, "agent.note", {"n": [1, 2], "nested": {"k": None}}),  # no interaction
        (b, "interaction.updated", {"interaction_id": 987654321}),  # gone: no summary
        (b, "interaction.updated", {"interaction_id": str(held)}),  # not an id: no summary
        (a, "interaction.updated", {"interaction_id": held, "interaction": "replaced"}),
    ]


def _with_offers(world: dict[str, Any]) -> Entries:
    a, b = world["alice"], world["bob"]
    return [
        *_without_offers(world),
        (b, "offer.created", {"interaction_id": world["to_agent"].pk, "offer_id": 1}),
        (a, "offer.created", {"interaction_id": world["to_queue"].pk, "offer_id": 2}),
        (b, "offer.created", {"interaction_id": world["taken_since"].pk, "offer_id": 3}),
        (a, "offer.created", {"interaction_id": world["plain_offer"].pk, "offer_id": 4}),
        # the status change that took the transferred offer: its status, the same transfer
        (b, "interaction.status", {"interaction_id": world["to_agent"].pk, "to": "assigned"}),
        (b, "message.created", {"interaction_id": world["to_agent"].pk}),
    ]


def _kept(ids: list[int]) -> list[tuple[int, str, Any]]:
    rows = {r.pk: r for r in AgentEvent.objects.filter(pk__in=ids)}
    return [(rows[i].agent_id, rows[i].event, rows[i].payload) for i in ids]


def _compare(entries: Entries) -> list[tuple[int, dict[str, Any], str]]:
    before = [(a, e, json.dumps(p)) for a, e, p in entries]
    new = outbox.record_agent_events(entries)
    old = outbox._record_portable(entries)
    assert [(a, e, json.dumps(p)) for a, e, p in entries] == before  # the callers' untouched
    # sent: the same payloads, key order and value types included
    assert [json.dumps(p) for _, p, _ in new] == [json.dumps(p) for _, p, _ in old]
    assert [p for _, p, _ in new] == [p for _, p, _ in old]
    # kept: the same rows, in the same order
    new_ids, old_ids = [i for i, _, _ in new], [i for i, _, _ in old]
    assert new_ids == sorted(new_ids)
    assert len(set(new_ids)) == len(entries)
    assert _kept(new_ids) == _kept(old_ids)
    assert _kept(new_ids) == [
        (a, e, json.loads(json.dumps(p))) for (a, e, _), (_, p, _) in zip(entries, new, strict=True)
    ]
    at = {r.created_at.isoformat() for r in AgentEvent.objects.filter(pk__in=new_ids)}
    assert at == {new[0][2]}
    return new


def test_a_batch_without_offers_is_one_statement_and_gives_what_the_portable_path_gives(
    world: dict[str, Any], binary_statements: list[str]
) -> None:
    entries = _without_offers(world)
    with CaptureQueriesContext(connection) as captured:
        outbox.record_agent_events(entries)
    assert len(captured) + len(binary_statements) == 1, [
        *(q["sql"][:80] for q in captured.captured_queries),
        *binary_statements,
    ]
    sent = _compare(entries)
    held = sent[0][1]["interaction"]
    assert held == {
        "id": world["held"].pk,
        "channel": "sms",
        "status": "assigned",
        "subject": "RSA",
        "language": "fr",
        "agent_id": world["alice"],
        "contact_id": world["held"].contact_id,
        "citizen": "Marie Durand",
        "queue_id": world["held"].queue_id,
        "queue": "caf",
        "last_message_id": world["last_message"].pk,
        "transfer": None,
    }
    assert "interaction" not in sent[1][1]  # a message event carries the message only
    assert sent[2][1]["interaction"]["citizen"] == "+33612345678"
    visitor = sent[3][1]["interaction"]
    assert (visitor["citizen"], visitor["queue"], visitor["queue_id"]) == ("", "", None)
    assert (visitor["language"], visitor["last_message_id"]) == ("en", 0)
    anonymous = sent[4][1]["interaction"]
    assert (anonymous["status"], anonymous["contact_id"], anonymous["citizen"]) == (
        "closed",
        None,
        "",
    )
    assert sent[5][1]["interaction"]["status"] == "assigned"
    assert [("interaction" in p) for _, p, _ in sent[6:9]] == [False, False, False]
    assert sent[9][1]["interaction"]["id"] == world["held"].pk


def test_offers_show_their_transfer_whichever_path(
    world: dict[str, Any], binary_statements: list[str]
) -> None:
    entries = _with_offers(world)
    with CaptureQueriesContext(connection) as captured:
        outbox.record_agent_events(entries)
    # the statement, the transfers' reads (decisions, note, colleague, queue), their update
    assert len(binary_statements) == 2
    assert len(captured) <= 4, [q["sql"][:80] for q in captured.captured_queries]
    sent = _compare(entries)
    by_offer = {p["offer_id"]: p["interaction"] for _, p, _ in sent if "offer_id" in p}
    assert by_offer[1]["transfer"] == {
        "by": "bob",
        "note": "Dossier RSA : attend l’attestation",
        "queue": "",
    }
    assert by_offer[2]["transfer"] == {"by": "Alice Martin", "note": "", "queue": "caf"}
    assert by_offer[2]["citizen"] == "+33612345678"
    assert by_offer[3]["transfer"] is None
    assert by_offer[4]["transfer"] is None
    assert {o["status"] for o in by_offer.values()} == {"offered"}
    taken = sent[-2][1]["interaction"]
    assert (taken["status"], taken["transfer"]) == ("assigned", by_offer[1]["transfer"])
    assert "interaction" not in sent[-1][1]


def test_offers_without_a_transfer_stay_one_statement(
    world: dict[str, Any], binary_statements: list[str]
) -> None:
    a = world["alice"]
    entries: Entries = [
        (a, "offer.created", {"interaction_id": world["taken_since"].pk}),
        (a, "offer.created", {"interaction_id": world["plain_offer"].pk}),
    ]
    with CaptureQueriesContext(connection) as captured:
        outbox.record_agent_events(entries)
    assert len(captured) + len(binary_statements) == 1
    _compare(entries)


def test_one_event_and_none(world: dict[str, Any], binary_statements: list[str]) -> None:
    assert outbox.record_agent_events([]) == []
    assert binary_statements == []
    _compare([(world["bob"], "message.created", {"interaction_id": world["held"].pk})])
    _compare([(world["bob"], "interaction.status", {"interaction_id": world["held"].pk})])
