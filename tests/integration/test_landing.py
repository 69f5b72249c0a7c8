"""Where each role lands after login, and what the login page says when a session was ended."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

from interactions.models import Interaction
from organisations.models import Membership
from tests.integration.test_admin_scope import verified
from tests.integration.test_api_scope import Body, caf, mairie

__all__ = ["caf", "mairie"]

pytestmark = pytest.mark.django_db


def _landing(user: User) -> str:
    client = Client()
    client.force_login(user)
    verified(client, user)  # second factor done where the role needs one
    response = client.get("/")
    return response["Location"] if response.status_code == 302 else f"{response.status_code}"


def test_each_role_lands_on_its_own_home(caf: Body) -> None:
    assert _landing(caf.agent) == "/console/"
    assert _landing(caf.supervisor) == "/supervision/"
    officer = User.objects.create_user("dpo-caf", "dpo@caf.example.fr", "pw-Test-2026!")
    officer.groups.add(Group.objects.get(name="data_protection_officer"))
    Membership.objects.create(user=officer, organisation=caf.org)
    assert _landing(officer) == "/privacy/"


def test_the_menu_leads_each_role_to_its_pages(caf: Body) -> None:
    officer = User.objects.create_user("dpo-caf", "dpo@caf.example.fr", "pw-Test-2026!")
    officer.groups.add(Group.objects.get(name="data_protection_officer"))
    Membership.objects.create(user=officer, organisation=caf.org)

    def menu(user: User, path: str) -> str:
        client = Client(HTTP_ACCEPT_LANGUAGE="fr")
        client.force_login(user)
        verified(client, user)
        page = client.get(path)
        assert page.status_code == 200, path
        text = page.content.decode()
        return text[text.index("<nav") : text.index("</nav>")]

    assert 'href="/privacy/">Protection des données' in menu(officer, "/privacy/")
    agent_menu = menu(caf.agent, "/console/activity/")
    assert 'href="/console/activity/">Mon activité' in agent_menu
    assert "/privacy/" not in agent_menu
    assert "/privacy/" not in menu(caf.supervisor, "/supervision/")


def test_someone_with_no_role_sees_only_their_organisations_waiting_count(
    caf: Body, mairie: Body
) -> None:
    Interaction.objects.filter(pk=mairie.interaction.pk).update(status="queued")
    Interaction.objects.create(channel="sms", queue=mairie.queue, contact=mairie.citizen)
    newcomer = User.objects.create_user("nouveau", "nouveau@caf.example.fr", "pw-Test-2026!")
    Membership.objects.create(user=newcomer, organisation=caf.org)
    client = Client(HTTP_ACCEPT_LANGUAGE="fr")
    client.force_login(newcomer)
    page = client.get("/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "nouveau" in text
    # two contacts wait at the mairie; none at the CAF, the newcomer's organisation
    assert "0 interaction" in text


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("idle=1", "après une période d’inactivité"),
        ("ended=logged_out_by_supervisor", "Un superviseur a fermé votre session"),
        ("ended=logout", "depuis une autre fenêtre"),
        ("ended=disabled", "Votre compte a été désactivé"),
        ("ended=session", "Votre session a pris fin"),
        ("ended=%3Cscript%3E", "Votre session a pris fin"),  # anything else: the plain words
    ],
)
def test_the_login_page_says_why_a_session_ended(query: str, expected: str) -> None:
    page = Client(HTTP_ACCEPT_LANGUAGE="fr").get(f"/accounts/login/?{query}")
    text = page.content.decode()
    assert expected in text
    assert 'role="status"' in text
    assert "&lt;script&gt;" not in text  # the reason given is never echoed back


def test_the_login_page_is_quiet_when_nothing_ended() -> None:
    page = Client(HTTP_ACCEPT_LANGUAGE="fr").get("/accounts/login/")
    assert 'id="login-ended"' not in page.content.decode()


def _login_through_the_form(user: User) -> str:
    """The login form with the password, then the second factor when the role asks for one
    (a confirmed TOTP device, its current code): the path the browser ends on."""
    from django_otp.oath import totp
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    client = Client(HTTP_ACCEPT_LANGUAGE="fr")
    page = client.post(
        "/accounts/login/",
        {"username": user.get_username(), "password": "pw-Test-2026!"},
        follow=True,
    )
    if page.request["PATH_INFO"] == "/accounts/otp/":
        code = totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits)
        page = client.post(
            "/accounts/otp/",
            {"token": f"{code:06d}", "next": page.context["next"]},
            follow=True,
        )
    assert page.status_code == 200
    return str(page.request["PATH_INFO"])


def test_after_the_login_form_each_role_lands_on_its_own_home(caf: Body) -> None:
    officer = User.objects.create_user("dpo-caf", "dpo@caf.example.fr", "pw-Test-2026!")
    officer.groups.add(Group.objects.get(name="data_protection_officer"))
    Membership.objects.create(user=officer, organisation=caf.org)
    assert _login_through_the_form(caf.agent) == "/console/"
    assert _login_through_the_form(caf.supervisor) == "/supervision/"
    assert _login_through_the_form(officer) == "/privacy/"
