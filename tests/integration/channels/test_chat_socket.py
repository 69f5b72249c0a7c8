"""The citizen's chat socket against the project's ASGI application, on the real database:
origins, visitor tokens, the bot with buttons, the hand-over, messages and typing both ways,
continuity across reconnections, the end of a chat and floods."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.core import mail, signing
from django.test import AsyncClient

from agents.models import AgentProfile
from channels_inbound.chat.actions import (
    do_abandon_gone_chats,
    do_send_agent_typing,
    do_send_chat_message,
)
from channels_inbound.chat.models import ChatSession, ChatState, ChatWidget
from channels_inbound.chat.tokens import SALT, VisitorClaim, make_token
from contacts.models import ContactIdentity
from interactions.lifecycle import Status
from interactions.models import Interaction, Message
from kernel.events import agent_group
from routing.models import Offer, OfferStatus

from .chat_helpers import (
    KEY,
    ORIGIN,
    Citizen,
    communicator,
    connect,
    fresh_rate_limits,  # noqa: F401 - autouse fixture
    make_agent,
    make_widget,
    start_chat,
    topic_id,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


@pytest.fixture
def widget(db: Any) -> ChatWidget:
    return make_widget()


async def _widget(**kw: Any) -> ChatWidget:
    return await sync_to_async(make_widget)(**kw)


async def _agent(**kw: Any) -> AgentProfile:
    return await sync_to_async(make_agent)(**kw)


async def _walk_bot_to_queue(citizen: Citizen, widget: ChatWidget) -> dict[str, Any]:
    """Pre-chat form, then "Un acte de naissance" > "Pour moi": the chat is queued."""
    tid = await sync_to_async(topic_id)(widget, "État civil")
    welcome = await start_chat(citizen, topic=tid)
    assert welcome["state"] == "bot"
    await citizen.send(type="choose", key="1", node=welcome["ask"]["node"])
    ask = await citizen.until("ask")
    await citizen.send(type="choose", key="1", node=ask["ask"]["node"])
    await citizen.until("state", state="waiting")
    return welcome


# --- Origins -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "origin",
    [ORIGIN, "https://www.mairie-exemple.fr:443", "https://demarches.exemple.gouv.fr"],
)
async def test_a_configured_origin_may_open_the_chat(widget: ChatWidget, origin: str) -> None:
    ws = communicator(origin=origin)
    connected, _ = await ws.connect()
    assert connected
    await ws.disconnect()


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "http://www.mairie-exemple.fr",  # another scheme is another origin
        "https://www.mairie-exemple.fr.evil.example",
        "https://exemple.gouv.fr",  # the wildcard covers subdomains only
        "null",
        None,
    ],
)
async def test_other_origins_are_refused(widget: ChatWidget, origin: str | None) -> None:
    ws = communicator(origin=origin)
    connected, code = await ws.connect()
    assert not connected
    assert code == 4403


async def test_the_sites_own_pages_may_open_the_chat(widget: ChatWidget) -> None:
    # The demo page is served by the contact centre itself (host in ALLOWED_HOSTS).
    from channels.testing import WebsocketCommunicator

    from contactcentre.asgi import application

    ws = WebsocketCommunicator(
        application,
        f"/ws/chat/{KEY}/",
        headers=[(b"host", b"localhost:8000"), (b"origin", b"http://localhost:8000")],
    )
    connected, _ = await ws.connect()
    assert connected
    await ws.disconnect()


async def test_an_unknown_or_inactive_widget_is_refused(widget: ChatWidget) -> None:
    ws = communicator(key="no-such-widget")
    connected, code = await ws.connect()
    assert (connected, code) == (False, 4404)
    await database_sync_to_async(
        lambda: type(widget.endpoint).objects.filter(pk=widget.endpoint_id).update(active=False)
    )()
    ws = communicator()
    connected, code = await ws.connect()
    assert (connected, code) == (False, 4404)


async def test_a_widget_origin_does_not_open_the_agent_console(widget: ChatWidget) -> None:
    from channels.testing import WebsocketCommunicator

    from contactcentre.asgi import application

    ws = WebsocketCommunicator(
        application, "/ws/console/", headers=[(b"host", b"localhost"), (b"origin", ORIGIN.encode())]
    )
    connected, _ = await ws.connect()
    assert not connected


# --- Tokens --------------------------------------------------------------------------------------
async def test_a_tampered_token_is_refused(widget: ChatWidget) -> None:
    citizen = await connect()
    welcome = await start_chat(citizen)
    token = welcome["token"]
    session_id = welcome["session"]
    await citizen.close()

    # given another visitor's session id slipped into the signed part
    other = await sync_to_async(ChatSession.objects.create)(
        widget=widget, visitor_id="another-visitor-0001", display_name="Autre"
    )
    payload, _, signature = token.rpartition(":")
    forged_value = signing.dumps(
        {"v": "another-visitor-0001", "s": str(other.pk), "w": KEY}, salt="not-the-salt"
    )
    forgeries = [
        token[:-2] + ("AA" if not token.endswith("AA") else "BB"),  # signature altered
        forged_value,  # signed with another salt
        payload.replace(payload[5], "x" if payload[5] != "x" else "y", 1) + ":" + signature,
        "not-a-token",
        make_token(VisitorClaim("another-visitor-0001", str(other.pk), "another-widget")),
    ]
    for forged in forgeries:
        intruder = await connect()
        await intruder.send(type="hello", token=forged, lang="fr")
        error = await intruder.until("error")
        assert error["code"] == "invalid_token"
        closed = await intruder.ws.receive_output(timeout=2)
        assert closed == {"type": "websocket.close", "code": 4401}

    # the genuine token still works and leads to its own session only
    citizen = await connect()
    await citizen.send(type="hello", token=token, lang="fr")
    again = await citizen.until("welcome")
    assert again["session"] == session_id
    await citizen.close()


async def test_an_expired_token_is_refused(widget: ChatWidget, settings: Any) -> None:
    citizen = await connect()
    welcome = await start_chat(citizen)
    await citizen.close()
    settings.CHAT_TOKEN_MAX_AGE_SECONDS = -1
    citizen = await connect()
    await citizen.send(type="hello", token=welcome["token"], lang="fr")
    assert (await citizen.until("error"))["code"] == "invalid_token"


def test_the_token_is_signed_with_its_own_salt() -> None:
    token = make_token(VisitorClaim("visitor-12345678", "s", "w"))
    with pytest.raises(signing.BadSignature):
        signing.loads(token)  # not usable as a token for anything else
    assert signing.loads(token, salt=SALT)["v"] == "visitor-12345678"


# --- The bot and the hand-over -------------------------------------------------------------------
async def test_the_bot_asks_with_buttons_and_hands_over_to_one_queued_interaction(
    widget: ChatWidget,
) -> None:
    citizen = await connect()
    tid = await sync_to_async(topic_id)(widget, "État civil")

    # when the citizen fills in the pre-chat form
    welcome = await start_chat(citizen, topic=tid)
    # then the bot greets and asks its first question as buttons
    assert welcome["state"] == "bot"
    assert [e["text"] for e in welcome["entries"]] == [
        "Bonjour, je suis l'assistant de la mairie.",
        "Votre demande concerne :",
    ]
    assert welcome["ask"]["options"] == [
        {"key": "1", "label": "Un acte de naissance"},
        {"key": "2", "label": "Autre chose"},
    ]
    assert welcome["token"]
    assert await database_sync_to_async(Interaction.objects.count)() == 0

    # when an answer that is not a button is typed: asked again
    await citizen.send(type="message", text="je ne sais pas", id="c1")
    assert (await citizen.until("entry"))["entry"]["text"] == "je ne sais pas"
    assert (await citizen.until("entry"))["entry"]["text"] == (
        "Choisissez une des réponses proposées."
    )
    ask = await citizen.until("ask")
    assert ask["ask"]["node"] == "menu"

    # when they press "Un acte de naissance" (typed label works too), then "Pour moi"
    await citizen.send(type="message", text="un acte de naissance", id="c2")
    ask = await citizen.until("ask")
    assert ask["ask"]["prompt"] == "Pour vous ou pour un proche ?"
    await citizen.send(type="choose", key="1", node="pour_qui")
    bot_says = await citizen.until("entry")
    assert bot_says["entry"]["kind"] == "citizen"
    assert bot_says["entry"]["text"] == "Pour moi"
    assert (await citizen.until("entry"))["entry"]["text"] == (
        "Je vous mets en relation avec un conseiller."
    )
    await citizen.until("state", state="waiting")
    queue = await citizen.until("queue")
    assert queue["position"] == 1

    # then exactly one chat interaction waits, with the topic's and the bot's requirements
    interaction = await database_sync_to_async(Interaction.objects.get)()
    assert interaction.channel == "chat"
    assert interaction.status == Status.QUEUED
    assert interaction.required_skills == {"etat-civil": 3}
    assert interaction.priority == 2
    assert interaction.subject == "État civil"
    assert interaction.external_ref == f"chat:{welcome['session']}"
    summary = await database_sync_to_async(lambda: interaction.messages.get().text)()
    assert "Awa Diallo" in summary
    assert "menu=1 > pour_qui=1" in summary
    identity = await database_sync_to_async(
        lambda: ContactIdentity.objects.select_related("contact").get(kind="chat")
    )()
    assert identity.contact.display_name == "Awa Diallo"
    assert await database_sync_to_async(lambda: interaction.contact_id)() == identity.contact_id

    # a late click on an old question changes nothing
    await citizen.send(type="choose", key="2", node="menu")
    assert (await citizen.until("error"))["code"] == "not_now"
    assert await database_sync_to_async(Interaction.objects.count)() == 1
    await citizen.close()


async def test_without_a_flow_the_chat_is_queued_at_once() -> None:
    widget = await _widget(flow=None)
    citizen = await connect()
    welcome = await start_chat(citizen, topic=await sync_to_async(topic_id)(widget, "Urbanisme"))
    assert welcome["state"] == "waiting"
    assert welcome["queue"]["position"] == 1
    interaction = await database_sync_to_async(Interaction.objects.get)()
    assert interaction.required_skills == {"urbanisme": 1}
    await citizen.close()


async def test_the_pre_chat_form_needs_a_name_and_a_topic(widget: ChatWidget) -> None:
    citizen = await connect()
    await citizen.send(type="hello", lang="fr")
    await citizen.until("welcome")
    await citizen.send(type="start", name="   ", topic=None)
    assert (await citizen.until("error"))["code"] == "required"
    await citizen.send(type="start", name="Awa", topic=999999)
    assert (await citizen.until("error"))["code"] == "required"
    assert await database_sync_to_async(ChatSession.objects.count)() == 0
    await citizen.close()


async def test_positions_follow_the_queue(widget: ChatWidget, settings: Any) -> None:
    settings.CHAT_QUEUE_REFRESH_SECONDS = 0.2
    first = await connect(ip="192.0.2.21")
    await _walk_bot_to_queue(first, widget)
    assert (await first.until("queue"))["position"] == 1
    second = await connect(ip="192.0.2.22")
    await _walk_bot_to_queue(second, widget)
    assert (await second.until("queue"))["position"] == 2

    # when the first one leaves, the second moves up without asking
    await first.send(type="end")
    await first.until("state", state="ended")
    assert (await second.until("queue", position=1))["position"] == 1
    await first.close()
    await second.close()


async def test_the_estimated_wait_comes_from_the_last_hours_answers() -> None:
    widget = await _widget(flow=None)

    def answered_earlier() -> None:
        from datetime import timedelta

        from django.utils import timezone

        from interactions.actions import do_create_interaction, do_transition_interaction

        now = timezone.now()
        queue = widget.endpoint.queue
        for waited in (240, 360):  # answered after 4 and 6 minutes: 5 on average
            earlier = do_create_interaction(
                channel="chat", contact=None, queue=queue, now=now - timedelta(minutes=30)
            )
            do_transition_interaction(
                interaction=earlier,
                to=Status.ASSIGNED,
                now=now - timedelta(minutes=30) + timedelta(seconds=waited),
            )
            do_transition_interaction(interaction=earlier, to=Status.CLOSED, now=now)

    await database_sync_to_async(answered_earlier)()
    citizen = await connect()
    welcome = await start_chat(citizen)
    assert welcome["state"] == "waiting"
    assert welcome["queue"]["position"] == 1
    assert 290 <= welcome["queue"]["wait_seconds"] <= 300
    await citizen.close()


# --- With an agent -------------------------------------------------------------------------------
async def test_agent_and_citizen_exchange_messages_and_typing_and_a_reload_keeps_it(
    widget: ChatWidget, settings: Any
) -> None:
    settings.PUBLIC_BASE_URL = "https://contact.example.gouv.fr"
    settings.CHAT_RATE_LIMIT_TRANSCRIPT_ADDRESS = (10, 10.0)  # the per-conversation limit first
    agent = await _agent()
    layer = get_channel_layer()
    console = await layer.new_channel()
    await layer.group_add(agent_group(agent.pk), console)

    async def console_event(name: str) -> dict[str, Any]:
        while True:
            message = await asyncio.wait_for(layer.receive(console), timeout=5)
            if message["event"] == name:
                return dict(message["payload"])

    citizen = await connect()
    welcome = await _walk_bot_to_queue(citizen, widget)

    # the router offered the chat to the agent, who accepts it
    offer_event = await console_event("offer.created")
    from routing.offers import do_accept_offer

    await database_sync_to_async(do_accept_offer)(offer_id=offer_event["offer_id"], agent=agent)
    joined = await citizen.until("state", state="chatting")
    assert joined["agent"] == "Claire"
    interaction_id = offer_event["interaction_id"]

    # agent -> citizen, with the typing indicator first
    await database_sync_to_async(do_send_agent_typing)(interaction_id=interaction_id, typing=True)
    assert await citizen.until("typing") == {"type": "typing", "typing": True, "name": "Claire"}
    message = await database_sync_to_async(do_send_chat_message)(
        interaction_id=interaction_id, author_id=agent.user_id, text="Bonjour, que puis-je faire ?"
    )
    entry = (await citizen.until("entry"))["entry"]
    assert entry == {
        "id": f"m{message.pk}",
        "kind": "agent",
        "text": "Bonjour, que puis-je faire ?",
        "at": message.created_at.isoformat(),
        "author": "Claire",
    }
    assert await console_event("message.created") == {
        "interaction_id": interaction_id,
        "message_id": message.pk,
        "direction": "outbound",
    }

    # citizen -> agent: typing, then the message
    await citizen.send(type="typing", typing=True)
    typing = await console_event("chat.typing")
    assert typing == {"interaction_id": interaction_id, "typing": True}
    await citizen.send(type="message", text="Je voudrais un acte de naissance.", id="abc-1")
    echo = (await citizen.until("entry"))["entry"]
    assert echo["kind"] == "citizen"
    assert echo["client_id"] == "abc-1"
    created = await console_event("message.created")
    assert created["interaction_id"] == interaction_id
    assert created["direction"] == "inbound"
    stored = await database_sync_to_async(Message.objects.get)(pk=created["message_id"])
    assert stored.text == "Je voudrais un acte de naissance."
    assert echo["id"] == f"m{stored.pk}"
    # the same frame sent again after a reconnection is not stored twice: it is answered with
    # the stored message (test_chat_resend.py)
    await citizen.send(type="message", text="Je voudrais un acte de naissance.", id="abc-1")
    assert (await citizen.until("entry"))["entry"] == echo
    inbound = await database_sync_to_async(
        lambda: Message.objects.filter(interaction_id=interaction_id, direction="inbound").count()
    )()
    assert inbound == 2  # the hand-over summary and the citizen's message

    # when the citizen reloads the page: same token, same conversation
    await citizen.close()
    reloaded = await connect()
    await reloaded.send(type="hello", token=welcome["token"], lang="fr")
    snapshot = await reloaded.until("welcome")
    assert snapshot["session"] == welcome["session"]
    assert snapshot["state"] == "chatting"
    assert snapshot["agent"] == "Claire"
    texts = [(e["kind"], e["text"]) for e in snapshot["entries"]]
    assert texts[-2:] == [
        ("agent", "Bonjour, que puis-je faire ?"),
        ("citizen", "Je voudrais un acte de naissance."),
    ]
    assert ("bot", "Bonjour, je suis l'assistant de la mairie.") in texts
    # and it goes on: the agent's next message reaches the reloaded page
    await database_sync_to_async(do_send_chat_message)(
        interaction_id=interaction_id, author_id=agent.user_id, text="Je m'en occupe."
    )
    assert (await reloaded.until("entry"))["entry"]["text"] == "Je m'en occupe."

    # when the agent closes the chat, the citizen sees the end and may ask for the transcript
    from interactions.actions import do_transition_interaction

    interaction = await database_sync_to_async(Interaction.objects.get)(pk=interaction_id)
    await database_sync_to_async(do_transition_interaction)(
        interaction=interaction, to=Status.WRAP_UP, reason="agent_done"
    )
    await reloaded.until("state", state="ended")
    await reloaded.send(type="message", text="Encore une chose", id="late-1")
    assert (await reloaded.until("error"))["code"] == "ended"
    await reloaded.send(type="transcript", email="awa.diallo@example.fr")
    assert (await reloaded.until("transcript"))["ok"] is True
    # a confirmation link first (tests/integration/channels/test_hardening_channels.py), then
    # the conversation once the citizen confirms
    assert len(mail.outbox) == 1
    link = mail.outbox[0].body.split("https://contact.example.gouv.fr", 1)[1].split()[0]
    assert (await AsyncClient().post(link)).status_code == 200
    assert len(mail.outbox) == 2
    sent = mail.outbox[1]
    assert sent.to == ["awa.diallo@example.fr"]
    assert sent.subject == "Votre conversation avec Mairie d'Exemple"
    assert "Claire\u00a0: Bonjour, que puis-je faire ?" in sent.body
    assert "Vous\u00a0: Je voudrais un acte de naissance." in sent.body
    assert "Assistant virtuel\u00a0: Bonjour, je suis l'assistant de la mairie." in sent.body
    await reloaded.send(type="transcript", email="pas-une-adresse")
    assert (await reloaded.until("error"))["code"] == "email"
    for _ in range(2):
        await reloaded.send(type="transcript", email="awa.diallo@example.fr")
        await reloaded.until("transcript")
    await reloaded.send(type="transcript", email="awa.diallo@example.fr")
    assert (await reloaded.until("error"))["code"] == "transcript_limit"
    assert len(mail.outbox) == 4  # three confirmation links and the conversation
    await reloaded.close()
    await layer.group_discard(agent_group(agent.pk), console)


async def test_a_new_conversation_keeps_the_visitor(widget: ChatWidget) -> None:
    citizen = await connect()
    welcome = await _walk_bot_to_queue(citizen, widget)
    await citizen.send(type="end")
    await citizen.until("state", state="ended")
    await citizen.send(type="start", name="Awa Diallo", topic=None)
    # topics are required on this widget
    assert (await citizen.until("error"))["code"] == "required"
    tid = await sync_to_async(topic_id)(widget, "Urbanisme")
    await citizen.send(type="start", name="Awa Diallo", topic=tid)
    second = await citizen.until("welcome")
    assert second["session"] != welcome["session"]
    sessions = await database_sync_to_async(
        lambda: list(ChatSession.objects.order_by().values_list("visitor_id", flat=True).distinct())
    )()
    assert len(sessions) == 1
    await citizen.close()


# --- Leaving ------------------------------------------------------------------------------------
async def test_leaving_while_offered_abandons_and_cancels_the_offer(widget: ChatWidget) -> None:
    agent = await _agent()
    citizen = await connect()
    await _walk_bot_to_queue(citizen, widget)
    offer = await database_sync_to_async(Offer.objects.get)()
    assert offer.status == OfferStatus.PENDING
    assert offer.agent_id == agent.pk

    await citizen.send(type="end")
    await citizen.until("state", state="ended")

    offer = await database_sync_to_async(Offer.objects.get)()
    assert offer.status == OfferStatus.CANCELLED
    interaction = await database_sync_to_async(Interaction.objects.get)()
    assert interaction.status == Status.ABANDONED
    assert interaction.assigned_agent_id is None
    session = await database_sync_to_async(ChatSession.objects.get)()
    assert session.state == ChatState.ENDED
    await citizen.close()


async def test_a_waiting_citizen_who_never_comes_back_is_abandoned(
    widget: ChatWidget, settings: Any
) -> None:
    citizen = await connect()
    await _walk_bot_to_queue(citizen, widget)
    await citizen.close()
    assert await database_sync_to_async(do_abandon_gone_chats)() == 0  # just left
    settings.CHAT_ABANDON_AFTER_SECONDS = -1
    assert await database_sync_to_async(do_abandon_gone_chats)() == 1
    interaction = await database_sync_to_async(Interaction.objects.get)()
    assert interaction.status == Status.ABANDONED
    reason = await database_sync_to_async(
        lambda: interaction.transitions.order_by("at", "id").last().reason
    )()
    assert reason == "citizen_gone"


# --- Floods ---------------------------------------------------------------------------------------
async def test_a_flood_of_messages_is_limited(settings: Any) -> None:
    await _widget(flow=None)
    settings.CHAT_RATE_LIMIT_VISITOR = (8, 6)  # burst 8, then one every 10 s
    citizen = await connect(ip="192.0.2.50")
    welcome = await start_chat(citizen)  # hello + start: 2 tokens
    assert welcome["state"] == "waiting"
    for n in range(40):
        await citizen.send(type="message", text=f"spam {n}", id=f"spam-{n}")
    limited = 0
    closed = None
    while closed is None:
        output = await citizen.ws.receive_output(timeout=5)
        if output["type"] == "websocket.close":
            closed = output["code"]
            break
        frame = json.loads(output["text"])
        if frame["type"] == "error" and frame["code"] == "rate_limited":
            limited += 1
            assert frame["retry_after"] > 0
    # then: 8 messages stored (the burst; hello and start counted before the visitor existed),
    # the rest refused, and a socket that
    # went on after 20 refusals in a row was closed
    assert closed == 4429
    assert limited == 20
    stored = await database_sync_to_async(
        lambda: list(Message.objects.filter(text__startswith="spam").values_list("text", flat=True))
    )()
    assert stored == [f"spam {n}" for n in range(8)]


async def test_the_address_bucket_limits_many_visitors_behind_one_address(
    widget: ChatWidget, settings: Any
) -> None:
    settings.CHAT_RATE_LIMIT_IP = (4, 1)
    first = await connect(ip="192.0.2.60")
    await first.send(type="hello", lang="fr")
    await first.until("welcome")
    second = await connect(ip="192.0.2.60")
    for _ in range(3):
        await second.send(type="hello", lang="fr")
        await second.until("welcome")
    await second.send(type="hello", lang="fr")
    assert (await second.until("error"))["code"] == "rate_limited"
    elsewhere = await connect(ip="192.0.2.61")
    await elsewhere.send(type="hello", lang="fr")
    await elsewhere.until("welcome")
    for citizen in (first, second, elsewhere):
        await citizen.close()


async def test_a_socket_that_keeps_flooding_is_closed(widget: ChatWidget, settings: Any) -> None:
    settings.CHAT_RATE_LIMIT_VISITOR = (2, 1)
    citizen = await connect(ip="192.0.2.51")
    for _ in range(30):
        await citizen.send(type="hello", lang="fr")
    while True:
        output = await citizen.ws.receive_output(timeout=2)
        if output["type"] == "websocket.close":
            assert output["code"] == 4429
            break


async def test_too_many_sockets_from_one_address_are_refused(
    widget: ChatWidget, settings: Any
) -> None:
    settings.CHAT_RATE_LIMIT_CONNECT_IP = (3, 1)
    opened = []
    for _ in range(3):
        opened.append(await connect(ip="192.0.2.52"))
    ws = communicator(ip="192.0.2.52")
    connected, code = await ws.connect()
    assert (connected, code) == (False, 4429)
    other = await connect(ip="192.0.2.53")  # another address is not affected
    for citizen in [*opened, other]:
        await citizen.close()


async def test_oversized_and_malformed_frames(widget: ChatWidget, settings: Any) -> None:
    citizen = await connect()
    await citizen.ws.send_to(text_data="{not json")
    assert (await citizen.until("error"))["code"] == "bad_frame"
    await citizen.send(type="shout")
    assert (await citizen.until("error"))["code"] == "bad_frame"
    await start_chat(citizen)
    await citizen.send(type="message", text="x" * (settings.CHAT_MAX_MESSAGE_CHARS + 1))
    assert (await citizen.until("error"))["code"] == "too_long"
    await citizen.ws.send_to(text_data="x" * (settings.CHAT_MAX_FRAME_BYTES + 1))
    closed = await citizen.ws.receive_output(timeout=2)
    assert closed == {"type": "websocket.close", "code": 1009}
