"""The console's pages and endpoints over HTTP: replies per channel, notes, wrap-up, transfers,
the citizen panel, telework settings, and the login protections (second factor, brute force,
idle timeout)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from agents.models import AgentPresence, AgentProfile, AgentState
from channels_inbound.models import Endpoint
from configuration.models import Queue
from console.models import InteractionWrapUp, WrapUpCode
from contacts.actions import resolve_contact
from contacts.models import Contact
from interactions.actions import do_create_interaction, do_record_message
from interactions.models import Interaction, Message
from routing.models import Offer

pytestmark = pytest.mark.django_db

JSON = {"accept": "application/json"}


def _available(agent: AgentProfile) -> None:
    now = timezone.now()
    AgentPresence.objects.filter(agent=agent).update(
        state=AgentState.AVAILABLE, last_heartbeat_at=now, state_since=now
    )


def _assigned(agent: AgentProfile, channel: str, contact: Contact | None = None) -> Interaction:
    queue = Queue.objects.get_or_create(code="caf", defaults={"name": "CAF"})[0]
    interaction = do_create_interaction(
        channel=channel, contact=contact, queue=queue, subject="Question", enqueue=False
    )
    Interaction.objects.filter(pk=interaction.pk).update(status="assigned", assigned_agent=agent)
    interaction.refresh_from_db()
    return interaction


@pytest.fixture
def alice(make_user: Callable[..., Any]) -> Any:
    return make_user("alice", first_name="Alice")


@pytest.fixture
def client_for() -> Callable[[Any], Client]:
    def make(user: Any) -> Client:
        client = Client()
        client.force_login(user)
        return client

    return make


def test_the_console_page_carries_a_snapshot(alice: Any, client_for: Callable) -> None:
    response = client_for(alice).get("/console/")
    assert response.status_code == 200
    assert b'id="console-snapshot"' in response.content
    assert "Console agent" in response.content.decode()  # French first


def test_a_user_without_agent_profile_is_told_so(make_user: Callable, client_for: Callable) -> None:
    user = make_user("sam", profile=False)
    assert client_for(user).get("/console/").status_code == 403


def test_sms_reply_goes_through_the_sms_channel(alice: Any, client_for: Callable) -> None:
    contact = resolve_contact("phone", "+33612345678").contact
    interaction = _assigned(alice.agent_profile, "sms", contact)
    assert interaction.queue is not None
    Endpoint.objects.create(
        channel="sms", address="+33900000001", name="CAF", queue=interaction.queue
    )
    response = client_for(alice).post(
        f"/console/interactions/{interaction.pk}/reply/", {"text": "Bonjour"}, headers=JSON
    )
    assert response.status_code == 200, response.content
    message = Message.objects.get(interaction=interaction, direction="outbound")
    assert message.text == "Bonjour"
    assert message.author == alice
    assert message.outbound_sms.to == "+33612345678"


def test_a_phone_call_has_no_written_reply(alice: Any, client_for: Callable) -> None:
    interaction = _assigned(alice.agent_profile, "voice")
    response = client_for(alice).post(
        f"/console/interactions/{interaction.pk}/reply/", {"text": "x"}, headers=JSON
    )
    assert response.status_code == 400
    assert not Message.objects.filter(interaction=interaction).exists()


def test_someone_elses_interaction_is_not_reachable(
    alice: Any, make_user: Callable, client_for: Callable
) -> None:
    bob = make_user("bob")
    interaction = _assigned(bob.agent_profile, "sms")
    client = client_for(alice)
    assert client.get(f"/console/interactions/{interaction.pk}/").status_code == 404
    assert (
        client.post(f"/console/interactions/{interaction.pk}/note/", {"text": "x"}).status_code
        == 404
        or not Message.objects.filter(interaction=interaction).exists()
    )


def test_note_wrap_up_and_close(alice: Any, client_for: Callable) -> None:
    interaction = _assigned(alice.agent_profile, "email")
    code = WrapUpCode.objects.create(code="answered", label="Réponse apportée")
    client = client_for(alice)
    client.post(
        f"/console/interactions/{interaction.pk}/note/", {"text": "à rappeler"}, headers=JSON
    )
    note = Message.objects.get(interaction=interaction)
    assert note.direction == "note"
    response = client.post(
        f"/console/interactions/{interaction.pk}/close/",
        {"code": code.pk, "notes": "Réglé"},
        headers=JSON,
    )
    assert response.status_code == 200
    interaction.refresh_from_db()
    assert interaction.status == "closed"
    assert list(interaction.transitions.values_list("to_status", flat=True))[-2:] == [
        "wrap_up",
        "closed",
    ]
    wrap_up = InteractionWrapUp.objects.get(interaction=interaction)
    assert (wrap_up.code, wrap_up.notes) == (code, "Réglé")


def test_transfer_to_a_queue_requeues_with_that_queues_requirements(
    alice: Any, client_for: Callable, skill: Callable, queue: Callable
) -> None:
    target = queue("prefecture", needs={"sejour": 3})
    interaction = _assigned(alice.agent_profile, "email")
    response = client_for(alice).post(
        f"/console/interactions/{interaction.pk}/transfer/",
        {"target": f"queue:{target.pk}"},
        headers=JSON,
    )
    assert response.status_code == 200, response.content
    interaction.refresh_from_db()
    assert interaction.status == "queued"
    assert interaction.queue == target
    assert interaction.required_skills == {"sejour": 3}
    assert interaction.assigned_agent is None
    moves = list(interaction.transitions.values_list("to_status", flat=True))
    assert moves[-2:] == ["transferred", "queued"]


def test_transfer_to_a_named_agent_offers_it_to_them(
    alice: Any, make_user: Callable, client_for: Callable
) -> None:
    bob = make_user("bob").agent_profile
    interaction = _assigned(alice.agent_profile, "email")
    client = client_for(alice)
    # Bob is offline: refused, nothing changes
    response = client.post(
        f"/console/interactions/{interaction.pk}/transfer/",
        {"target": f"agent:{bob.pk}"},
        headers=JSON,
    )
    assert response.status_code == 409
    interaction.refresh_from_db()
    assert interaction.status == "assigned"
    _available(bob)
    response = client.post(
        f"/console/interactions/{interaction.pk}/transfer/",
        {"target": f"agent:{bob.pk}"},
        headers=JSON,
    )
    assert response.status_code == 200
    interaction.refresh_from_db()
    assert (interaction.status, interaction.assigned_agent_id) == ("offered", bob.pk)
    offer = Offer.objects.get(interaction=interaction, status="pending")
    assert offer.agent_id == bob.pk
    assert offer.decision.rule == "transfer_to_agent"


def test_citizen_panel_shows_every_channel_and_merges_records(
    alice: Any, client_for: Callable
) -> None:
    contact = resolve_contact("email", "marie@example.fr").contact
    assert contact is not None
    other = resolve_contact("phone", "+33612345678").contact
    assert other is not None
    old_sms = do_create_interaction(channel="sms", contact=other, enqueue=False, subject="SMS")
    do_record_message(interaction=old_sms, direction="inbound", text="Mon dossier CAF ?")
    interaction = _assigned(alice.agent_profile, "email", contact)
    client = client_for(alice)
    response = client.post(
        f"/console/citizens/{contact.pk}/merge/", {"identity": "06 12 34 56 78"}, headers=JSON
    )
    assert response.status_code == 200, response.content
    panel = client.get(f"/console/interactions/{interaction.pk}/").content.decode()
    assert "+33612345678" in panel
    assert "Mon dossier CAF ?" in panel  # the SMS of the other record, now the same citizen
    other.refresh_from_db()
    assert other.merged_into_id == contact.pk
    # a citizen the agent does not serve is out of reach
    stranger = resolve_contact("email", "x@example.fr").contact
    assert stranger is not None
    assert client.get(f"/console/citizens/{stranger.pk}/").status_code == 404


def test_telework_phone_is_validated_and_normalised(alice: Any, client_for: Callable) -> None:
    client = client_for(alice)
    response = client.post("/console/settings/", {"telework_phone": "12345"})
    assert response.status_code == 200
    assert b'aria-invalid="true"' in response.content
    client.post("/console/settings/", {"telework_phone": "06 12 34 56 78"})
    alice.agent_profile.refresh_from_db()
    assert alice.agent_profile.telework_phone == "+33612345678"


# --------------------------------------------------------------------------- login protections


PASSWORD = "pw-Test-2026!"


def _password_login(username: str, password: str = PASSWORD) -> tuple[Client, Any]:
    client = Client()
    response = client.post("/accounts/login/", {"username": username, "password": password})
    return client, response


def test_a_teleworker_must_enrol_a_second_factor_then_use_it(
    make_user: Callable, settings: Any
) -> None:
    settings.OTP_TOTP_THROTTLE_FACTOR = 0  # (a wrong code delays the next try by seconds)
    user = make_user("tele")
    AgentProfile.objects.filter(user=user).update(remote=True)
    client, response = _password_login("tele")
    assert response.status_code == 302
    # the console is out of reach until a device is enrolled
    response = client.get("/console/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/otp/enrol/")
    assert client.get("/console/", headers=JSON).status_code == 403
    page = client.get("/accounts/otp/enrol/")
    assert b"<svg" in page.content  # the QR code
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    response = client.post("/accounts/otp/enrol/", {"token": "000000", "next": "/console/"})
    assert "aria-invalid" in response.content.decode()
    token = totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits)
    response = client.post("/accounts/otp/enrol/", {"token": f"{token:06d}", "next": "/console/"})
    assert response.status_code == 302
    assert client.get("/console/").status_code == 200
    # next login: password, then the code
    client, _ = _password_login("tele")
    assert client.get("/console/")["Location"].startswith("/accounts/otp/")
    device.refresh_from_db()
    device.last_t = -1
    device.save()
    token = totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits)
    client.post("/accounts/otp/", {"token": f"{token:06d}"})
    assert client.get("/console/").status_code == 200


def test_an_agent_in_the_office_logs_in_without_second_factor(make_user: Callable) -> None:
    make_user("camille")
    client, _ = _password_login("camille")
    assert client.get("/console/").status_code == 200


def test_brute_force_locks_the_account_out(make_user: Callable, settings: Any) -> None:
    make_user("camille")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        _password_login("camille", "wrong")
    client, response = _password_login("camille")  # even the right password now
    assert response.status_code == 429
    assert "Trop de tentatives" in response.content.decode()
    assert client.get("/console/").status_code == 302  # not logged in


def test_idle_session_ends_and_the_ping_extends_it(make_user: Callable, settings: Any) -> None:
    make_user("camille")
    client, _ = _password_login("camille")
    left = client.post("/console/session/ping/", headers=JSON).json()["seconds_left"]
    assert left == settings.CONSOLE_IDLE_TIMEOUT_SECONDS
    session = client.session
    session["cc_last_activity"] = time.time() - settings.CONSOLE_IDLE_TIMEOUT_SECONDS + 30
    session.save()
    # a passive ping (the console checking) only reports the time left
    passive = client.post(
        "/console/session/ping/", headers={**JSON, "x-console-passive": "1"}
    ).json()
    assert passive["seconds_left"] <= 30
    # "Stay logged in" extends
    assert client.post("/console/session/ping/", headers=JSON).json()["seconds_left"] > 60
    session = client.session
    session["cc_last_activity"] = time.time() - settings.CONSOLE_IDLE_TIMEOUT_SECONDS - 1
    session.save()
    response = client.get("/console/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert client.get("/console/").status_code == 302  # logged out for good


def test_logging_out_withdraws_the_offers_still_ringing(
    alice: Any, make_user: Callable, client_for: Callable
) -> None:
    bob = make_user("bob").agent_profile
    _available(bob)
    interaction = _assigned(alice.agent_profile, "email")
    client_for(alice).post(
        f"/console/interactions/{interaction.pk}/transfer/",
        {"target": f"agent:{bob.pk}"},
        headers=JSON,
    )
    offer = Offer.objects.get(interaction=interaction, status="pending")
    assert offer.agent_id == bob.pk
    # when Bob logs out of the console while the offer rings
    client_for(bob.user).post("/accounts/logout/")
    # then the contact waits again at once (not until the offer expires), and Bob is offline
    offer.refresh_from_db()
    assert offer.status == "cancelled"
    interaction.refresh_from_db()
    assert (interaction.status, interaction.assigned_agent_id) == ("queued", None)
    assert AgentPresence.objects.get(agent=bob).state == AgentState.OFFLINE
