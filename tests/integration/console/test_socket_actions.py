"""The console's actions over its socket (issue 13): accepting, declining and closing without a
request each, with the answers, checks and scope of the HTTP endpoints (console/answers.py).

Two organisations (a CAF and a mairie): an offer made to a colleague, or to another
organisation's agent, answers like one that is gone; another organisation's interaction is not
found; a session that ended answers 401 and closes the socket, with nothing done."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.sessions.models import Session
from django.test import Client

from agents.models import AgentProfile
from console.models import InteractionWrapUp, WrapUpCode
from contactcentre.asgi import application
from interactions.models import Interaction
from organisations.models import Membership, Organisation
from routing.models import OfferStatus
from tests.integration.console.test_accept_close_path import offered

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.redis,
    pytest.mark.usefixtures("roles"),
]


def _agent(username: str, org: Organisation) -> AgentProfile:
    user = get_user_model().objects.create_user(username, f"{username}@example.fr", "pw-Te-26!")
    user.groups.add(Group.objects.get(name="agent"))
    Membership.objects.create(user=user, organisation=org)
    # Not available: the router offers nothing by itself here; each test makes its own offers.
    return AgentProfile.objects.create(user=user, organisation=org, languages=["fr"])


def _world() -> dict[str, Any]:
    caf = Organisation.objects.create(name="CAF du Rhône", slug="caf")
    mairie = Organisation.objects.create(name="Mairie de Lyon", slug="mairie")
    alice, bob, carol = _agent("alice", caf), _agent("bob", caf), _agent("carol", mairie)
    client = Client()
    client.force_login(alice.user)
    return {
        "alice": alice,
        "bob": bob,
        "carol": carol,
        "client": client,
        "code": WrapUpCode.objects.create(code="ok", label="Réglé", organisation=caf),
        "other_code": WrapUpCode.objects.create(code="ok", label="Réglé", organisation=mairie),
    }


async def _open(client: Client, language: str | None = None) -> WebsocketCommunicator:
    name = settings.SESSION_COOKIE_NAME
    headers = [
        (b"host", b"localhost"),
        (b"origin", b"http://localhost"),
        (b"cookie", f"{name}={client.cookies[name].value}".encode()),
    ]
    if language:
        headers.append((b"accept-language", language.encode()))
    socket = WebsocketCommunicator(application, "/ws/console/", headers=headers)
    connected, _ = await socket.connect()
    assert connected
    assert (await socket.receive_json_from())["type"] == "hello"
    return socket


async def _ask(socket: WebsocketCommunicator, ref: Any, **action: Any) -> dict[str, Any]:
    await socket.send_json_to({"type": "action", "ref": ref, **action})
    while True:  # the action's own events come over the same socket
        frame = await socket.receive_json_from(timeout=5)
        if frame["type"] == "answer":
            assert frame["ref"] == ref
            return frame


@sync_to_async
def _status(interaction: Interaction) -> str:
    interaction.refresh_from_db()
    return interaction.status


async def test_accept_then_close_over_the_socket() -> None:
    world = await sync_to_async(_world)()
    interaction, offer = await sync_to_async(offered)(world["alice"])
    socket = await _open(world["client"])

    answer = await _ask(socket, 1, action="accept", offer_id=offer.pk)
    assert answer == {
        "type": "answer",
        "ref": 1,
        "status": 200,
        "ok": True,
        "message": "Proposition acceptée.",
        "interaction_id": interaction.pk,
    }
    assert await _status(interaction) == "assigned"

    # the same offer again: gone
    again = await _ask(socket, "again", action="accept", offer_id=offer.pk)
    assert (again["status"], again["ok"]) == (409, False)

    # a code of another organisation is not in the list
    wrong = await _ask(
        socket,
        2,
        action="close",
        interaction_id=interaction.pk,
        code=str(world["other_code"].pk),
        notes="",
    )
    assert (wrong["status"], wrong["message"]) == (
        400,
        "Choisissez un code de clôture dans la liste.",
    )
    assert await _status(interaction) == "assigned"

    closed = await _ask(
        socket,
        3,
        action="close",
        interaction_id=interaction.pk,
        code=str(world["code"].pk),
        notes="  Dossier transmis  ",
    )
    assert (closed["status"], closed["ok"], closed["message"]) == (200, True, "Interaction close.")
    assert await _status(interaction) == "closed"
    wrap_up = await sync_to_async(InteractionWrapUp.objects.get)(interaction=interaction)
    assert (wrap_up.code_id, wrap_up.notes) == (world["code"].pk, "Dossier transmis")
    await socket.disconnect()


async def test_decline_and_the_answers_in_english() -> None:
    world = await sync_to_async(_world)()
    interaction, offer = await sync_to_async(offered)(world["alice"])
    socket = await _open(world["client"], language="en-GB,en;q=0.9")
    answer = await _ask(socket, 7, action="decline", offer_id=offer.pk)
    assert (answer["status"], answer["message"]) == (200, "Offer declined.")
    await sync_to_async(offer.refresh_from_db)()
    assert offer.status == OfferStatus.DECLINED
    assert await _status(interaction) == "queued"
    await socket.disconnect()


async def test_others_offers_and_interactions_are_out_of_reach() -> None:
    world = await sync_to_async(_world)()
    _, bobs_offer = await sync_to_async(offered)(world["bob"])
    carols_interaction, carols_offer = await sync_to_async(offered)(
        world["carol"], number="+33698765432"
    )
    socket = await _open(world["client"])

    gone = "Cette proposition n’est plus disponible."
    for ref, offer_id in (
        ("colleague", bobs_offer.pk),
        ("other-org", carols_offer.pk),
        ("none", 999_999),
    ):
        answer = await _ask(socket, ref, action="accept", offer_id=offer_id)
        assert (answer["status"], answer["message"]) == (409, gone), ref
    # another organisation's interaction: not found, like the HTTP endpoint's 404
    answer = await _ask(socket, "close", action="close", interaction_id=carols_interaction.pk)
    assert answer["status"] == 404
    # a colleague's, in the same organisation: not closable by this agent
    bobs_interaction = await sync_to_async(Interaction.objects.get)(pk=bobs_offer.interaction_id)
    answer = await _ask(socket, "close2", action="close", interaction_id=bobs_interaction.pk)
    assert answer["status"] in (404, 409)
    await sync_to_async(bobs_offer.refresh_from_db)()
    await sync_to_async(carols_offer.refresh_from_db)()
    assert bobs_offer.status == carols_offer.status == OfferStatus.PENDING
    assert await _status(carols_interaction) == "offered"
    await socket.disconnect()


async def test_bad_input_gets_a_clear_answer() -> None:
    world = await sync_to_async(_world)()
    interaction, offer = await sync_to_async(offered)(world["alice"])
    socket = await _open(world["client"])
    cases: list[tuple[dict[str, Any], str | None]] = [
        ({"action": "transfer", "interaction_id": interaction.pk}, "Action inconnue."),
        ({"action": "accept"}, "Cette action a besoin de l’identifiant de ce sur quoi elle porte."),
        ({"action": "accept", "offer_id": "12"}, None),
        ({"action": "accept", "offer_id": True}, None),
        ({"action": "close", "interaction_id": interaction.pk, "notes": ["x"]}, None),
    ]
    for n, (action, message) in enumerate(cases):
        answer = await _ask(socket, n, **action)
        assert (answer["status"], answer["ok"]) == (400, False), action
        if message:
            assert answer["message"] == message
    # a reference that is not a short string or a number is not echoed
    await socket.send_json_to({"type": "action", "ref": {"a": 1}, "action": "nothing"})
    frame = await socket.receive_json_from(timeout=5)
    assert (frame["type"], frame["ref"], frame["status"]) == ("answer", None, 400)
    assert await _status(interaction) == "offered"
    await sync_to_async(offer.refresh_from_db)()
    assert offer.status == OfferStatus.PENDING
    await socket.disconnect()


async def test_an_ended_session_answers_401_and_closes_the_socket() -> None:
    world = await sync_to_async(_world)()
    interaction, offer = await sync_to_async(offered)(world["alice"])
    socket = await _open(world["client"])
    # the session is gone from the store (ended elsewhere, expired, purged)
    await sync_to_async(Session.objects.all().delete)()
    answer = await _ask(socket, 1, action="accept", offer_id=offer.pk)
    assert (answer["status"], answer["ok"]) == (401, False)
    assert (await socket.receive_json_from(timeout=5))["type"] == "closed"
    assert (await socket.receive_output(timeout=5))["code"] == 4401
    await sync_to_async(offer.refresh_from_db)()
    assert offer.status == OfferStatus.PENDING
    assert await _status(interaction) == "offered"


async def test_a_disabled_account_cannot_act() -> None:
    world = await sync_to_async(_world)()
    _, offer = await sync_to_async(offered)(world["alice"])
    socket = await _open(world["client"])
    await sync_to_async(get_user_model().objects.filter(pk=world["alice"].user_id).update)(
        is_active=False
    )  # an update that sends no signal: the check itself must refuse
    answer = await _ask(socket, 1, action="accept", offer_id=offer.pk)
    assert answer["status"] == 401
    await sync_to_async(offer.refresh_from_db)()
    assert offer.status == OfferStatus.PENDING
    await socket.disconnect()


async def test_an_unexpected_error_answers_500_and_keeps_the_socket(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The database down, a bug: the action answers 500 (the console then re-reads its state),
    the error is logged, and the socket goes on serving the console."""
    world = await sync_to_async(_world)()
    _, offer = await sync_to_async(offered)(world["alice"])
    socket = await _open(world["client"])

    def broken(agent: Any, offer_id: int) -> Any:
        raise RuntimeError("connection to the database lost")

    monkeypatch.setattr("console.answers.accept", broken)
    answer = await _ask(socket, 1, action="accept", offer_id=offer.pk)
    assert (answer["status"], answer["ok"]) == (500, False)
    assert answer["message"] == "Une erreur s’est produite. Réessayez."
    await socket.send_json_to({"type": "heartbeat"})
    assert (await socket.receive_json_from(timeout=5))["type"] == "heartbeat.ack"
    monkeypatch.undo()
    answer = await _ask(socket, 2, action="accept", offer_id=offer.pk)
    assert answer["status"] == 200  # nothing was taken by the failed attempt
    await socket.disconnect()
