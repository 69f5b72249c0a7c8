"""Transfers (issue 15): the note the transferring agent writes reaches whoever takes the
conversation (on the offer, live, and in the thread as an internal note, never sent to the
citizen); the router does not offer a transferred conversation back to the agent who
transferred it until someone else has taken it, unless nobody else could ever take it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client
from django.utils import timezone

from agents.models import AgentPresence, AgentProfile, AgentState
from channels_inbound.sms.models import OutboundSms
from configuration.models import EscalationStep
from console.state import build_snapshot
from contactcentre.asgi import application
from contacts.models import Contact
from interactions.lifecycle import Status
from interactions.models import Interaction, Message
from routing.claims import do_route_pending
from routing.models import Offer, RoutingDecision
from routing.offers import do_accept_offer, do_decline_offer
from routing.transfers import do_transfer_to_queue

pytestmark = pytest.mark.django_db

JSON = {"accept": "application/json"}
NOTE = "Dossier RSA\u00a0: attend l’attestation de la mairie, déjà relancé deux fois."


def _available(agent: AgentProfile) -> None:
    now = timezone.now()
    AgentPresence.objects.filter(agent=agent).update(
        state=AgentState.AVAILABLE, last_heartbeat_at=now, state_since=now, idle_since=now
    )


def _offline(agent: AgentProfile) -> None:
    AgentPresence.objects.filter(agent=agent).update(state=AgentState.OFFLINE)


def _holding(agent: AgentProfile, interaction: Interaction) -> Interaction:
    Interaction.objects.filter(pk=interaction.pk).update(
        status=Status.ASSIGNED, assigned_agent=agent, assigned_at=timezone.now()
    )
    interaction.refresh_from_db()
    return interaction


def _client(user: Any) -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE="fr")
    client.force_login(user)
    return client


def test_the_note_reaches_the_colleague_on_the_offer_and_in_the_thread_never_the_citizen(
    make_user: Callable[..., Any], queue: Callable[..., Any], arrive: Callable[..., Interaction]
) -> None:
    # given Alice handling an SMS conversation of Marie's, and Bob available
    caf = queue("caf")
    alice_user = make_user("alice", first_name="Alice", last_name="Martin")
    bob_user = make_user("bob", first_name="Bob")
    alice, bob = alice_user.agent_profile, bob_user.agent_profile
    _available(bob)
    marie = Contact.objects.create(display_name="Marie Durand", organisation_id=caf.organisation_id)
    sms = _holding(alice, arrive(caf, "sms", contact=marie, subject="RSA"))
    sent_before = OutboundSms.objects.count()

    # when Alice transfers it to Bob with a note
    response = _client(alice_user).post(
        f"/console/interactions/{sms.pk}/transfer/",
        {"target": f"agent:{bob.pk}", "note": f"  {NOTE}  "},
        headers=JSON,
    )
    assert response.status_code == 200, response.content

    # then Bob's offer says who transferred it and carries the note
    offers = build_snapshot(bob)["offers"]
    assert len(offers) == 1
    transfer = next(iter(offers.values()))["interaction"]["transfer"]
    assert transfer == {"by": "Alice Martin", "note": NOTE, "queue": ""}
    # the note is an internal note of the thread, by Alice; nothing went to the citizen
    note = Message.objects.get(interaction=sms, direction="note")
    assert (note.text, note.author_id) == (NOTE, alice_user.pk)
    assert OutboundSms.objects.count() == sent_before
    assert not Message.objects.filter(interaction=sms, direction="outbound").exists()

    # and once Bob accepts, his thread shows it as the transfer note, labelled so
    do_accept_offer(offer_id=Offer.objects.get(interaction=sms, status="pending").pk, agent=bob)
    html = _client(bob_user).get(f"/console/interactions/{sms.pk}/").content.decode()
    assert "Note de transfert – Alice Martin" in html
    assert "attend l’attestation de la mairie" in html
    assert "msg-transfer-note" in html
    # and the inbound messages are labelled with the citizen's name, not a generic word
    Message.objects.create(interaction=sms, channel="sms", direction="inbound", text="Merci")
    thread = _client(bob_user).get(f"/console/interactions/{sms.pk}/thread/").content.decode()
    assert "<strong>Marie Durand</strong>" in thread


def test_a_transfer_note_too_long_is_refused_in_words_and_nothing_moves(
    make_user: Callable[..., Any], queue: Callable[..., Any], arrive: Callable[..., Interaction]
) -> None:
    caf, mairie = queue("caf"), queue("mairie")
    alice_user = make_user("alice")
    mail = _holding(alice_user.agent_profile, arrive(caf, "email"))
    response = _client(alice_user).post(
        f"/console/interactions/{mail.pk}/transfer/",
        {"target": f"queue:{mairie.pk}", "note": "x" * 2001},
        headers=JSON,
    )
    assert response.status_code == 400
    assert "trop longue" in response.json()["message"]
    mail.refresh_from_db()
    assert (mail.status, mail.queue_id) == (Status.ASSIGNED, caf.pk)
    assert not Message.objects.filter(interaction=mail, direction="note").exists()


def test_a_queue_transfer_is_not_offered_back_to_the_transferrer(
    make_user: Callable[..., Any], queue: Callable[..., Any], arrive: Callable[..., Interaction]
) -> None:
    # given Alice, alone available, transfers an e-mail to the mairie's queue with a note
    caf, mairie = queue("caf"), queue("mairie")
    alice_user = make_user("alice", first_name="Alice")
    bob_user = make_user("bob", first_name="Bob")
    alice, bob = alice_user.agent_profile, bob_user.agent_profile
    _available(alice)
    _offline(bob)
    mail = _holding(alice, arrive(caf, "email", subject="Acte de naissance"))
    response = _client(alice_user).post(
        f"/console/interactions/{mail.pk}/transfer/",
        {"target": f"queue:{mairie.pk}", "note": "Pour l’état civil"},
        headers=JSON,
    )
    assert response.status_code == 200, response.content
    decision = RoutingDecision.objects.get(interaction=mail, rule="transfer_to_queue")
    assert decision.details["exclude_transferrer"] is True  # Bob could take it

    # when the router runs with only Alice available (and a free slot)
    do_route_pending()
    # then it is not offered back to her: it waits
    mail.refresh_from_db()
    assert mail.status == Status.QUEUED
    assert not Offer.objects.filter(interaction=mail, status="pending").exists()

    # when Bob comes in, it is offered to him, with Alice's note and the queue it was sent to
    _available(bob)
    do_route_pending()
    offer = Offer.objects.get(interaction=mail, status="pending")
    assert offer.agent_id == bob.pk
    summary = build_snapshot(bob)["offers"][str(offer.pk)]["interaction"]
    assert summary["transfer"] == {"by": "Alice", "note": "Pour l’état civil", "queue": "mairie"}

    # and if Bob declines, it still does not go back to Alice: the round is not over
    do_decline_offer(offer_id=offer.pk, agent=bob)
    do_route_pending()
    assert not Offer.objects.filter(interaction=mail, status="pending").exists()


def test_once_someone_else_took_it_the_first_transferrer_may_get_it_again(
    agent: Callable[..., AgentProfile],
    queue: Callable[..., Any],
    arrive: Callable[..., Interaction],
) -> None:
    caf, mairie, titres = queue("caf"), queue("mairie"), queue("titres")
    alice, bob = agent("alice"), agent("bob")
    mail = _holding(alice, arrive(caf, "email"))
    do_transfer_to_queue(interaction_id=mail.pk, agent=alice, queue=mairie)
    _offline(alice)
    do_route_pending()
    do_accept_offer(offer_id=Offer.objects.get(interaction=mail, status="pending").pk, agent=bob)
    # Bob took it, then transfers it on: now Bob is the one left out, Alice may have it
    do_transfer_to_queue(interaction_id=mail.pk, agent=bob, queue=titres)
    _available(alice)
    do_route_pending()
    assert Offer.objects.get(interaction=mail, status="pending").agent_id == alice.pk


def test_when_nobody_else_could_ever_take_it_it_may_come_back_to_the_transferrer(
    agent: Callable[..., AgentProfile],
    queue: Callable[..., Any],
    skill: Callable[[str], Any],
    arrive: Callable[..., Interaction],
) -> None:
    # given the mairie's queue needs état civil at level 3: only Alice has it (Bob: level 1)
    caf, mairie = queue("caf"), queue("mairie", needs={"etat-civil": 3})
    alice, bob = agent("alice", {"etat-civil": 4}), agent("bob", {"etat-civil": 1})
    first = _holding(alice, arrive(caf, "email"))
    do_transfer_to_queue(interaction_id=first.pk, agent=alice, queue=mairie, note="à voir")
    decision = RoutingDecision.objects.get(interaction=first, rule="transfer_to_queue")
    assert decision.details["exclude_transferrer"] is False
    do_route_pending()
    # then it is offered back to her rather than wait for ever
    assert Offer.objects.get(interaction=first, status="pending").agent_id == alice.pk
    assert bob.pk not in set(
        Offer.objects.filter(interaction=first).values_list("agent", flat=True)
    )

    # but when an escalation step would let Bob take it one day (levels capped at 1), Alice is
    # left out: it waits for Bob
    EscalationStep.objects.create(queue=mairie, after_seconds=600, min_level_cap=1)
    second = _holding(alice, arrive(caf, "email"))
    Offer.objects.filter(interaction=first).delete()
    Interaction.objects.filter(pk=first.pk).update(status=Status.CLOSED)
    do_transfer_to_queue(interaction_id=second.pk, agent=alice, queue=mairie)
    decision = RoutingDecision.objects.get(interaction=second, rule="transfer_to_queue")
    assert decision.details["exclude_transferrer"] is True
    do_route_pending()
    assert not Offer.objects.filter(interaction=second, status="pending").exists()


def test_another_organisations_agents_never_count_as_someone_else(
    agent: Callable[..., AgentProfile],
    queue: Callable[..., Any],
    arrive: Callable[..., Interaction],
) -> None:
    from organisations.models import Organisation

    caf, mairie = queue("caf"), queue("mairie")
    alice = agent("alice")
    mail = _holding(alice, arrive(caf, "email"))
    other = Organisation.objects.create(name="Préfecture", slug="prefecture-transfer")
    outsider = agent("olga", organisation=other)
    assert outsider.organisation_id != caf.organisation_id
    do_transfer_to_queue(interaction_id=mail.pk, agent=alice, queue=mairie)
    decision = RoutingDecision.objects.get(interaction=mail, rule="transfer_to_queue")
    assert decision.details["exclude_transferrer"] is False


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
async def test_the_receiving_console_gets_the_note_live(make_user: Callable[..., Any]) -> None:
    alice_user = await sync_to_async(make_user)("alice", first_name="Alice")
    bob_user = await sync_to_async(make_user)("bob", first_name="Bob")
    bob_client = await sync_to_async(_client)(bob_user)
    name = settings.SESSION_COOKIE_NAME
    cookie = f"{name}={bob_client.cookies[name].value}".encode()
    socket = WebsocketCommunicator(
        application,
        "/ws/console/",
        headers=[(b"host", b"localhost"), (b"origin", b"http://localhost"), (b"cookie", cookie)],
    )
    connected, _ = await socket.connect(timeout=30)  # a loaded machine: not the default 1 s
    assert connected
    assert (await socket.receive_json_from(timeout=30))["type"] == "hello"

    def prepare() -> int:
        from configuration.models import Queue

        _available(bob_user.agent_profile)
        caf = Queue.objects.create(code="caf-live", name="CAF")
        from interactions.actions import do_create_interaction

        mail = do_create_interaction(
            channel="email", contact=None, queue=caf, subject="RSA", enqueue=False
        )
        _holding(alice_user.agent_profile, mail)
        return mail.pk

    mail_id = await sync_to_async(prepare)()
    alice_client = await sync_to_async(_client)(alice_user)
    response = await sync_to_async(alice_client.post)(
        f"/console/interactions/{mail_id}/transfer/",
        {"target": f"agent:{bob_user.agent_profile.pk}", "note": NOTE},
        headers=JSON,
    )
    assert response.status_code == 200
    for _ in range(10):
        frame = await socket.receive_json_from(timeout=5)
        if frame.get("type") == "event" and frame["event"] == "offer.created":
            break
    else:  # pragma: no cover - the failure message
        pytest.fail("no offer.created reached Bob's console")
    assert frame["payload"]["interaction"]["transfer"]["note"] == NOTE
    assert frame["payload"]["interaction"]["transfer"]["by"] == "Alice"
    await socket.disconnect()


def test_the_contacts_a_transferrer_may_not_take_never_hide_newer_ones(
    agent: Callable[..., AgentProfile],
    queue: Callable[..., Any],
    arrive: Callable[..., Interaction],
) -> None:
    # given Alice, with one e-mail slot, the only one available, who transferred the mairie
    # queue's oldest contact there (Bob, offline, could take it)
    caf, mairie = queue("caf"), queue("mairie")
    alice = agent("alice", capacity_email=1, capacity_voice=0, capacity_chat=0, capacity_sms=0)
    agent("bob", available=False)
    transferred = _holding(alice, arrive(caf, "email"))
    do_transfer_to_queue(interaction_id=transferred.pk, agent=alice, queue=mairie)
    newer = arrive(mairie, "email")
    # when the router runs (one free slot: it reads one contact per group, then widens the
    # group by what the transferrer may not take)
    do_route_pending()
    # then Alice gets the newer one, and the one she transferred still waits for someone else
    assert Offer.objects.get(status="pending").interaction_id == newer.pk
    assert Interaction.objects.get(pk=transferred.pk).status == Status.QUEUED
