"""Outgoing webhooks end to end: real PostgreSQL, a real HTTP receiver on loopback, the
signature checked as a receiver would, retries, disabling, organisations kept apart, and the
admin's test button (docs/operations.md, "Outgoing webhooks")."""

from __future__ import annotations

import hashlib
import hmac
import socket
import time
from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.test import Client
from django.utils import timezone

from contacts.models import Contact, ContactIdentity
from interactions.actions import do_create_interaction, do_transition_interaction
from interactions.lifecycle import Status
from supervision.actions import do_record_satisfaction
from webhooks import signing
from webhooks.actions import do_sweep
from webhooks.models import Delivery, Event, Subscription

from .conftest import Body, Receiver

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

ALL_EVENTS = [str(e) for e in Event.values]


def subscribe(body: Body, url: str, events: list[str] | None = None, **extra: Any) -> Subscription:
    return Subscription.objects.create(
        organisation=body.org, name="Logiciel métier", url=url, events=events or ALL_EVENTS, **extra
    )


def citizen(body: Body) -> Contact:
    contact = Contact.objects.create(organisation=body.org, display_name="Jeanne Martin")
    ContactIdentity.objects.create(
        organisation=body.org, contact=contact, kind="phone", value="+33612345678"
    )
    return contact


def serve_close_and_rate(body: Body, score: int = 4) -> Any:
    """A citizen's SMS: created (queued), offered, assigned, wrapped up, closed, rated."""
    interaction = do_create_interaction(
        channel="sms", contact=citizen(body), queue=body.queue, subject="Mon dossier"
    )
    do_transition_interaction(
        interaction=interaction, to=Status.OFFERED, extra={"assigned_agent": body.agent}
    )
    for status in (Status.ASSIGNED, Status.WRAP_UP, Status.CLOSED):
        do_transition_interaction(interaction=interaction, to=status)
    do_record_satisfaction(interaction=interaction, score=score, comment="Très bien, merci Paul")
    return interaction


def sweep_until(condition: Any, seconds: float = 10.0) -> bool:
    """Run the periodic sweep (it posts itself on the embedded default and in these tests)
    until ``condition()`` holds."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        do_sweep()
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())


def independent_signature(secret: str, header: str, body: bytes) -> bool:
    """The receiver's check, written from the documentation (not with webhooks.signing)."""
    parts = dict(item.split("=", 1) for item in header.split(","))
    expected = hmac.new(
        secret.encode(), parts["t"].encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    return hmac.compare_digest(expected, parts["v1"]) and abs(time.time() - int(parts["t"])) < 300


def test_signed_deliveries_reach_the_receiver_and_their_signature_verifies(
    hook_settings: Any, bodies: tuple[Body, Body], receiver: Receiver
) -> None:
    caf, _mairie = bodies
    subscription = subscribe(caf, receiver.url)

    interaction = serve_close_and_rate(caf, score=4)
    assert sweep_until(lambda: len(receiver.received) >= 4)

    # one delivery per event, in the order they happened
    assert receiver.events() == [
        "interaction.created",
        "interaction.assigned",
        "interaction.closed",
        "survey.answered",
    ]
    for request in receiver.received:
        assert request.path == "/hooks/centre?source=cc"
        assert request.headers["Content-Type"] == "application/json; charset=utf-8"
        header = request.headers[signing.SIGNATURE_HEADER]
        assert independent_signature(subscription.secret, header, request.body)
        assert signing.verify(subscription.secret, header, request.body)
        # a tampered body or another secret does not verify
        assert not signing.verify(subscription.secret, header, request.body + b" ")
        assert not signing.verify("whsec_autre", header, request.body)
        payload = request.json
        assert request.headers["X-Webhook-Id"] == payload["id"]
        assert request.headers["X-Webhook-Event"] == payload["event"]
        assert payload["organisation"] == {"id": caf.org.pk, "slug": "caf"}
        assert payload["data"]["interaction_id"] == interaction.pk
        # ids only: no name, number, subject or comment
        text = request.body.decode()
        for personal in ("Jeanne", "Martin", "+33612345678", "Mon dossier", "Paul"):
            assert personal not in text
    created, assigned, closed, answered = (r.json["data"] for r in receiver.received)
    assert created["queue_id"] == caf.queue.pk
    assert created["channel"] == "sms"
    assert assigned["agent_id"] == caf.agent.pk
    assert assigned["status"] == "assigned"
    assert closed["status"] == "closed"
    assert answered["score"] == 4
    assert len({r.json["id"] for r in receiver.received}) == 4

    # the delivery log: each delivered at the first attempt, with its status code and duration
    log = list(Delivery.objects.filter(subscription=subscription).order_by("id"))
    assert [d.status for d in log] == ["delivered"] * 4
    for delivery in log:
        [attempt] = delivery.log.all()
        assert attempt.status_code == 200
        assert attempt.number == 1
        assert attempt.error == ""
    # a second sweep sends nothing again
    do_sweep()
    assert len(receiver.received) == 4


def test_a_receiver_answering_500_then_200_gets_the_event_again_and_the_log_shows_both(
    hook_settings: Any, bodies: tuple[Body, Body], make_receiver: Any
) -> None:
    caf, _ = bodies
    flaky = make_receiver((500, 200))
    subscribe(caf, flaky.url, [str(Event.INTERACTION_CREATED)])

    do_create_interaction(channel="email", contact=None, queue=caf.queue, subject="Question")
    do_sweep()
    delivery = Delivery.objects.get()
    assert delivery.status == "pending"
    assert delivery.attempts == 1
    assert delivery.last_status_code == 500
    assert delivery.next_attempt_at > timezone.now() - timedelta(seconds=1)
    assert sweep_until(lambda: Delivery.objects.get().status == "delivered")

    first, second = flaky.received
    assert first.body == second.body  # the same event, the same bytes
    assert first.headers["X-Webhook-Id"] == second.headers["X-Webhook-Id"]
    assert (first.headers["X-Webhook-Attempt"], second.headers["X-Webhook-Attempt"]) == ("1", "2")
    attempts = list(Delivery.objects.get().log.values_list("number", "status_code", "error"))
    assert attempts[0][:2] == (1, 500)
    assert "500" in attempts[0][2]
    assert attempts[1] == (2, 200, "")
    assert Subscription.objects.get().consecutive_failures == 0


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_receiver_that_is_down_gets_retries_then_the_subscription_is_disabled(
    hook_settings: Any, bodies: tuple[Body, Body], make_receiver: Any, make_user: Any
) -> None:
    hook_settings.WEBHOOK_MAX_ATTEMPTS = 3
    hook_settings.WEBHOOK_DISABLE_AFTER_FAILURES = 4
    caf, _ = bodies
    port = _closed_port()
    subscription = subscribe(caf, f"http://127.0.0.1:{port}/hook", [str(Event.INTERACTION_CREATED)])

    first = do_create_interaction(channel="sms", contact=None, queue=caf.queue)
    assert sweep_until(lambda: Delivery.objects.get().status == "failed")
    delivery = Delivery.objects.get()
    assert delivery.attempts == 3
    errors = list(delivery.log.values_list("status_code", "error"))
    assert len(errors) == 3
    assert all(code is None and "connexion refusée" in error for code, error in errors)
    subscription.refresh_from_db()
    assert subscription.active
    assert subscription.consecutive_failures == 3

    # the fourth failed attempt in a row switches it off, with the reason
    second = do_create_interaction(channel="sms", contact=None, queue=caf.queue)
    do_sweep()
    subscription.refresh_from_db()
    assert not subscription.active
    assert subscription.consecutive_failures == 4
    assert "après 4 échecs consécutifs" in subscription.disabled_reason
    assert "connexion refusée" in subscription.disabled_reason
    waiting = Delivery.objects.get(body__contains=f'"interaction_id":{second.pk}')
    assert waiting.status == "pending"
    assert waiting.attempts == 1
    time.sleep(0.3)
    do_sweep()
    waiting.refresh_from_db()
    assert waiting.attempts == 1
    # nothing new is recorded while it is off
    do_create_interaction(channel="sms", contact=None, queue=caf.queue)
    assert Delivery.objects.count() == 2
    assert first.pk != second.pk

    # the administrator sees why in the admin, and switching it on sends what was kept
    client = Client()
    client.force_login(caf.admin)
    _pass_second_factor(client, caf.admin)
    page = client.get("/admin/webhooks/subscription/").content.decode()
    assert "Désactivé après 4 échecs consécutifs" in page
    live = make_receiver((200,))
    response = client.post(
        f"/admin/webhooks/subscription/{subscription.pk}/change/",
        {"name": subscription.name, "url": live.url, "events": subscription.events, "active": "on"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    subscription.refresh_from_db()
    assert subscription.active
    assert subscription.consecutive_failures == 0
    assert subscription.disabled_reason == ""
    assert sweep_until(lambda: len(live.received) == 1)
    assert live.received[0].json["data"]["interaction_id"] == second.pk


def test_a_stalled_receiver_is_given_up_after_the_timeout(
    hook_settings: Any, bodies: tuple[Body, Body], make_receiver: Any
) -> None:
    hook_settings.WEBHOOK_TIMEOUT_S = 0.5
    caf, _ = bodies
    stalled = make_receiver((200,), delay=3.0)
    subscribe(caf, stalled.url, [str(Event.INTERACTION_CREATED)])
    do_create_interaction(channel="sms", contact=None, queue=caf.queue)
    started = time.monotonic()
    do_sweep()
    assert time.monotonic() - started < 2.5
    delivery = Delivery.objects.get()
    [attempt] = delivery.log.all()
    assert attempt.status_code is None
    assert attempt.error == "pas de réponse dans le délai"
    assert 400 <= attempt.duration_ms < 2500
    assert delivery.status == "pending"  # tried again later


def test_another_organisations_events_never_reach_this_subscription(
    hook_settings: Any, bodies: tuple[Body, Body], make_receiver: Any
) -> None:
    caf, mairie = bodies
    caf_receiver, mairie_receiver = make_receiver(), make_receiver()
    subscribe(caf, caf_receiver.url)
    subscribe(mairie, mairie_receiver.url, [str(Event.INTERACTION_CLOSED)])

    at_mairie = serve_close_and_rate(mairie)
    at_caf = do_create_interaction(channel="chat", contact=None, queue=caf.queue)
    assert sweep_until(
        lambda: len(mairie_receiver.received) >= 1 and len(caf_receiver.received) >= 1
    )
    time.sleep(0.2)
    do_sweep()

    assert caf_receiver.events() == ["interaction.created"]
    assert caf_receiver.received[0].json["data"]["interaction_id"] == at_caf.pk
    assert mairie_receiver.events() == ["interaction.closed"]  # only what it subscribed to
    assert mairie_receiver.received[0].json["data"]["interaction_id"] == at_mairie.pk
    assert mairie_receiver.received[0].json["organisation"]["slug"] == "mairie"
    assert Delivery.objects.filter(subscription__organisation=caf.org).count() == 1


def test_a_change_that_rolls_back_sends_nothing(
    hook_settings: Any, bodies: tuple[Body, Body], receiver: Receiver
) -> None:
    caf, _ = bodies
    subscribe(caf, receiver.url)

    def fails_after_the_event() -> None:
        with transaction.atomic():
            do_create_interaction(channel="sms", contact=None, queue=caf.queue)
            raise RuntimeError("the write fails after the event")

    with pytest.raises(RuntimeError):
        fails_after_the_event()
    assert not Delivery.objects.exists()
    # an inactive subscription is not sent anything either
    Subscription.objects.update(active=False)
    do_create_interaction(channel="sms", contact=None, queue=caf.queue)
    do_sweep()
    assert not Delivery.objects.exists()
    assert receiver.received == []


def _pass_second_factor(client: Client, user: Any) -> None:
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()


def test_the_admin_test_button_sends_a_signed_test_delivery(
    hook_settings: Any, bodies: tuple[Body, Body], receiver: Receiver
) -> None:
    caf, mairie = bodies
    subscription = subscribe(caf, receiver.url, active=False)  # works on a switched-off one too
    client = Client()
    client.force_login(caf.admin)
    _pass_second_factor(client, caf.admin)

    page = client.get(f"/admin/webhooks/subscription/{subscription.pk}/change/")
    assert page.status_code == 200
    button = f"/admin/webhooks/subscription/{subscription.pk}/test-delivery/"
    assert button in page.content.decode()
    assert subscription.secret in page.content.decode()  # shown to the administrator

    response = client.post(button, follow=True)
    assert response.status_code == 200
    [request] = receiver.received
    assert request.json["event"] == "webhook.test"
    assert request.json["data"]["subscription_id"] == subscription.pk
    assert signing.verify(
        subscription.secret, request.headers[signing.SIGNATURE_HEADER], request.body
    )
    shown = [str(m) for m in response.context["messages"]]
    assert any("200" in m for m in shown), shown
    delivery = Delivery.objects.get()
    assert delivery.is_test
    assert delivery.status == "delivered"
    subscription.refresh_from_db()
    assert subscription.consecutive_failures == 0
    assert not subscription.active

    # the list's action too
    client.post(
        "/admin/webhooks/subscription/",
        {"action": "send_test", "_selected_action": [subscription.pk]},
    )
    assert len(receiver.received) == 2

    # the other organisation's administrator cannot test (nor see) it
    other = Client()
    other.force_login(mairie.admin)
    _pass_second_factor(other, mairie.admin)
    refused = other.post(button)
    assert refused.status_code in (302, 403, 404)
    assert refused.status_code != 302 or refused["Location"] == "/admin/"
    assert len(receiver.received) == 2
    listing = other.get("/admin/webhooks/subscription/").content.decode()
    assert receiver.url not in listing
    assert other.get("/admin/webhooks/delivery/").context["cl"].result_count == 0


def test_a_failed_test_delivery_says_why(
    hook_settings: Any, bodies: tuple[Body, Body], make_receiver: Any
) -> None:
    caf, _ = bodies
    failing = make_receiver((503,))
    subscription = subscribe(caf, failing.url)
    client = Client()
    client.force_login(caf.admin)
    _pass_second_factor(client, caf.admin)
    response = client.post(
        f"/admin/webhooks/subscription/{subscription.pk}/test-delivery/", follow=True
    )
    shown = " ".join(str(m) for m in response.context["messages"])
    assert "503" in shown
    delivery = Delivery.objects.get()
    assert delivery.status == "failed"
    assert delivery.attempts == 1
    assert Subscription.objects.get().consecutive_failures == 0  # nor counted


def test_the_admin_refuses_a_private_or_plain_http_address(
    hook_settings: Any, bodies: tuple[Body, Body]
) -> None:
    hook_settings.WEBHOOK_ALLOW_LOOPBACK = False
    caf, _ = bodies
    client = Client()
    client.force_login(caf.admin)
    _pass_second_factor(client, caf.admin)
    form = {"name": "CRM", "events": [str(Event.INTERACTION_CLOSED)], "active": "on"}
    for url, why in [
        ("https://10.0.0.8/hook", "adresse privée"),
        ("https://169.254.169.254/latest", "adresse privée"),
        ("http://8.8.8.8/hook", "https://"),
        ("http://127.0.0.1:9000/hook", "https://"),
    ]:
        page = client.post("/admin/webhooks/subscription/add/", {**form, "url": url})
        assert page.status_code == 200
        assert why in page.content.decode()
    assert not Subscription.objects.exists()
    hook_settings.WEBHOOK_ALLOWED_NETWORKS = ["10.0.0.0/24"]
    saved = client.post("/admin/webhooks/subscription/add/", {**form, "url": "https://10.0.0.8/h"})
    assert saved.status_code == 302
    subscription = Subscription.objects.get()
    assert subscription.organisation == caf.org  # the administrator's own
    assert subscription.secret.startswith("whsec_")
    assert len(subscription.secret) > 40


@pytest.mark.django_db(transaction=True)
def test_the_embedded_scheduler_runs_the_sweep_that_sends_them(
    hook_settings: Any, bodies: tuple[Body, Body], receiver: Receiver
) -> None:
    """On the embedded default (no broker) the sweep is the sender: it is in the schedule the
    embedded scheduler runs (``python3 dev.py run``), as in Celery beat's."""
    from contactcentre.celery import app
    from contactcentre.embedded import EmbeddedScheduler

    assert app.conf.beat_schedule["webhooks-sweep"]["task"] == "webhooks.sweep"
    scheduler = EmbeddedScheduler()
    assert scheduler.entries["webhooks-sweep"][0] == "webhooks.sweep"
    caf, _ = bodies
    subscribe(caf, receiver.url, [str(Event.INTERACTION_CREATED)])
    created = do_create_interaction(channel="sms", contact=None, queue=caf.queue)
    assert receiver.received == []  # never from inside the change itself
    assert scheduler.run_task("webhooks.sweep") is None
    [request] = receiver.received
    assert request.json["data"]["interaction_id"] == created.pk


def test_an_interaction_the_router_assigns_at_once_is_reported_once(
    hook_settings: Any, bodies: tuple[Body, Body], receiver: Receiver
) -> None:
    """Auto-accepted channels are assigned by the routing pass in bulk (claims_written, not the
    status-change signal): still one ``interaction.assigned``, with the agent."""
    from agents.models import AgentPresence, AgentState
    from routing.claims import do_route_pending

    hook_settings.ROUTING_AUTO_ACCEPT_CHANNELS = ["email"]
    caf, _ = bodies
    now = timezone.now()
    AgentPresence.objects.filter(agent=caf.agent).update(
        state=AgentState.AVAILABLE, last_heartbeat_at=now, state_since=now, idle_since=now
    )
    subscribe(caf, receiver.url)
    mail = do_create_interaction(channel="email", contact=None, queue=caf.queue, subject="Objet")
    assert do_route_pending().assigned == 1
    mail.refresh_from_db()
    assert mail.status == Status.ASSIGNED
    assert sweep_until(lambda: len(receiver.received) >= 2)
    time.sleep(0.2)
    do_sweep()
    assert receiver.events() == ["interaction.created", "interaction.assigned"]
    assigned = receiver.received[1].json["data"]
    assert assigned["interaction_id"] == mail.pk
    assert assigned["agent_id"] == caf.agent.pk
    assert assigned["status"] == "assigned"
