"""API tokens: the second factor cannot be skipped through the API; tokens expire and end with
the session (logout, idle timeout) and the password; service tokens act for one organisation."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.test import Client
from django.utils import timezone
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.test import APIClient

from apitokens.actions import do_create_service_token, do_revoke_service_token
from apitokens.models import PersonalToken, RevokeReason, ServiceToken
from configuration.models import Queue
from console.middleware import LAST_ACTIVITY_KEY
from organisations.models import Membership, Organisation

pytestmark = pytest.mark.django_db

PASSWORD = "pw-Test-2026!"
TOKEN_URL = "/api/v1/auth/token/"


def _device(user: Any) -> TOTPDevice:
    return TOTPDevice.objects.create(user=user, name="phone", confirmed=True)


def _code(device: TOTPDevice) -> str:
    code = totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits)
    return str(code).zfill(device.digits)


def _api() -> APIClient:
    """An API client reading English messages (the default language is French)."""
    return APIClient(HTTP_ACCEPT_LANGUAGE="en")


def _bearer(raw: str) -> APIClient:
    client = _api()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def _personal_token(user: Any, **extra: str) -> str:
    response = _api().post(
        TOKEN_URL, {"username": user.username, "password": PASSWORD, **extra}, format="json"
    )
    assert response.status_code == 201, response.content
    return str(response.json()["token"])


@pytest.fixture
def two_orgs() -> tuple[Organisation, Organisation]:
    return (
        Organisation.objects.create(name="CAF de la Gironde", slug="caf-33"),
        Organisation.objects.create(name="Mairie de Bordeaux", slug="mairie-bordeaux"),
    )


@pytest.fixture
def platform_admin(roles: None) -> Any:
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_superuser("root", "root@example.fr", PASSWORD)


# --------------------------------------------------------------------------- personal tokens


def test_token_request_for_a_totp_account_without_totp_is_refused(make_user: Any) -> None:
    supervisor = make_user("nadia", "supervisor")
    _device(supervisor)
    response = _api().post(TOKEN_URL, {"username": "nadia", "password": PASSWORD}, format="json")
    assert response.status_code == 401
    assert "second factor" in response.json()["detail"]
    wrong = _api().post(
        TOKEN_URL, {"username": "nadia", "password": PASSWORD, "otp": "000000"}, format="json"
    )
    assert wrong.status_code == 401
    assert "code is not valid" in wrong.json()["detail"]
    assert not PersonalToken.objects.exists()


def test_token_request_for_an_account_that_never_enrolled_is_refused(make_user: Any) -> None:
    make_user("nadia", "supervisor")  # needs a second factor, has no device yet
    response = _api().post(
        TOKEN_URL, {"username": "nadia", "password": PASSWORD, "otp": "123456"}, format="json"
    )
    assert response.status_code == 403
    assert "enrol" in response.json()["detail"]
    assert not PersonalToken.objects.exists()


def test_teleworker_needs_the_second_factor_for_a_token(make_user: Any) -> None:
    agent = make_user("camille", "agent")
    agent.agent_profile.remote = True
    agent.agent_profile.save(update_fields=["remote"])
    device = _device(agent)
    refused = _api().post(TOKEN_URL, {"username": "camille", "password": PASSWORD}, format="json")
    assert refused.status_code == 401
    assert _personal_token(agent, otp=_code(device)).startswith("ccp_")


def test_token_request_with_a_valid_totp_works(make_user: Any) -> None:
    supervisor = make_user("nadia", "supervisor")
    device = _device(supervisor)
    response = _api().post(
        TOKEN_URL,
        {"username": "nadia", "password": PASSWORD, "otp": _code(device)},
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["token_type"] == "Bearer"
    expires_at = PersonalToken.objects.get(user=supervisor).expires_at
    assert (
        timedelta(seconds=settings.API_TOKEN_TTL_SECONDS - 60)
        < expires_at - timezone.now()
        <= timedelta(seconds=settings.API_TOKEN_TTL_SECONDS)
    )
    assert _bearer(body["token"]).get("/api/v1/queues/").status_code == 200
    # The former DRF keyword still works.
    legacy = _api()
    legacy.credentials(HTTP_AUTHORIZATION=f"Token {body['token']}")
    assert legacy.get("/api/v1/queues/").status_code == 200


def test_wrong_password_gets_no_token(make_user: Any) -> None:
    make_user("camille", "agent")
    response = _api().post(TOKEN_URL, {"username": "camille", "password": "nope"}, format="json")
    assert response.status_code == 401
    assert not PersonalToken.objects.exists()


def test_token_from_a_session_that_passed_the_second_factor(make_user: Any) -> None:
    supervisor = make_user("nadia", "supervisor")
    device = _device(supervisor)
    client = Client()
    client.force_login(supervisor)
    # Password only: the session has not passed the second factor yet.
    assert client.post(TOKEN_URL).status_code == 403
    assert not PersonalToken.objects.exists()
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    response = client.post(TOKEN_URL)
    assert response.status_code == 201, response.content
    assert _bearer(response.json()["token"]).get("/api/v1/queues/").status_code == 200


def test_a_token_cannot_make_another_token(make_user: Any) -> None:
    raw = _personal_token(make_user("camille", "agent"))
    assert _bearer(raw).post(TOKEN_URL).status_code == 403
    assert PersonalToken.objects.count() == 1


def test_token_after_logout_is_refused(make_user: Any) -> None:
    agent = make_user("camille", "agent")
    raw = _personal_token(agent)
    assert _bearer(raw).get("/api/v1/queues/").status_code == 200
    browser = Client()
    browser.force_login(agent)
    browser.post("/accounts/logout/")
    response = _bearer(raw).get("/api/v1/queues/")
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]
    assert PersonalToken.objects.get().revoked_reason == RevokeReason.LOGOUT


def test_token_after_password_change_is_refused(make_user: Any) -> None:
    agent = make_user("camille", "agent")
    raw = _personal_token(agent)
    agent.set_password("another-Pw-2026!")
    agent.save()
    response = _bearer(raw).get("/api/v1/queues/")
    assert response.status_code == 401
    assert "password" in response.json()["detail"]
    assert PersonalToken.objects.get().revoked_reason == RevokeReason.PASSWORD


def test_token_after_expiry_is_refused(make_user: Any) -> None:
    raw = _personal_token(make_user("camille", "agent"))
    PersonalToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    response = _bearer(raw).get("/api/v1/queues/")
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


def test_idle_timeout_revokes_tokens(make_user: Any) -> None:
    agent = make_user("camille", "agent")
    raw = _personal_token(agent)
    browser = Client()
    browser.force_login(agent)
    session = browser.session
    session[LAST_ACTIVITY_KEY] = time.time() - settings.CONSOLE_IDLE_TIMEOUT_SECONDS - 1
    session.save()
    assert browser.get("/").status_code == 302  # the session ended
    assert _bearer(raw).get("/api/v1/queues/").status_code == 401
    assert PersonalToken.objects.get().revoked_reason == RevokeReason.IDLE


def test_delete_revokes_the_presented_token(make_user: Any) -> None:
    agent = make_user("camille", "agent")
    raw, other = _personal_token(agent), _personal_token(agent)
    assert _bearer(raw).delete(TOKEN_URL).status_code == 204
    assert _bearer(raw).get("/api/v1/queues/").status_code == 401
    assert _bearer(other).get("/api/v1/queues/").status_code == 200


def test_unknown_or_malformed_tokens_are_refused(make_user: Any) -> None:
    raw = _personal_token(make_user("camille", "agent"))
    for bad in (raw[:-2] + "xx", "ccp_nothing_here", "garbage", raw + " extra"):
        assert _bearer(bad).get("/api/v1/queues/").status_code == 401, bad


def test_tokens_are_stored_hashed(make_user: Any, platform_admin: Any) -> None:
    raw = _personal_token(make_user("camille", "agent"))
    _service, service_raw = do_create_service_token(
        platform_admin, name="GRC", organisation_id=None, scope="read"
    )
    for model, secret in ((PersonalToken, raw), (ServiceToken, service_raw)):
        row = model.objects.values().get()
        stored = " ".join(str(value) for value in row.values())
        assert secret not in stored
        assert secret.rsplit("_", 1)[1] not in stored  # nor its secret part
        assert row["prefix"] in secret  # only the public prefix identifies it


# --------------------------------------------------------------------------- service tokens


def test_service_token_reads_only_its_organisations_rows(
    two_orgs: tuple[Organisation, Organisation], platform_admin: Any
) -> None:
    # Needs the REST viewsets scoped with organisations.authz (being done in parallel).
    caf, mairie = two_orgs
    Queue.objects.create(code="caf-accueil", name="Accueil CAF", organisation=caf)
    Queue.objects.create(code="mairie-etat-civil", name="État civil", organisation=mairie)
    _token, raw = do_create_service_token(
        platform_admin, name="GRC", organisation_id=caf.pk, scope="read"
    )
    response = _bearer(raw).get("/api/v1/queues/")
    assert response.status_code == 200, response.content
    assert [q["code"] for q in response.json()["results"]] == ["caf-accueil"]


def test_read_only_service_token_cannot_write(
    two_orgs: tuple[Organisation, Organisation], platform_admin: Any
) -> None:
    caf, _mairie = two_orgs
    _token, raw = do_create_service_token(
        platform_admin, name="GRC", organisation_id=caf.pk, scope="read"
    )
    client = _bearer(raw)
    assert client.get("/api/v1/queues/").status_code == 200
    response = client.post("/api/v1/queues/", {"code": "x", "name": "X"}, format="json")
    assert response.status_code == 403
    assert not Queue.objects.filter(code="x").exists()


def test_write_service_token_has_view_add_change_on_its_data_only(
    two_orgs: tuple[Organisation, Organisation], platform_admin: Any
) -> None:
    from apitokens.authentication import ServiceUser

    caf, _mairie = two_orgs
    token, _raw = do_create_service_token(
        platform_admin, name="GRC", organisation_id=caf.pk, scope="write"
    )
    user = ServiceUser(token)
    assert user.has_perms(
        ["configuration.view_queue", "configuration.add_queue", "configuration.change_queue"]
    )
    assert not user.has_perm("configuration.delete_queue")
    assert not user.has_perm("auth.view_user")
    assert not user.has_perm("apitokens.view_servicetoken")
    assert not user.has_perm("organisations.change_organisation")


def test_revoked_service_token_is_refused(
    two_orgs: tuple[Organisation, Organisation], platform_admin: Any
) -> None:
    caf, _mairie = two_orgs
    token, raw = do_create_service_token(
        platform_admin, name="GRC", organisation_id=caf.pk, scope="read"
    )
    assert _bearer(raw).get("/api/v1/queues/").status_code == 200
    assert do_revoke_service_token(platform_admin, token)
    response = _bearer(raw).get("/api/v1/queues/")
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]


def test_expired_service_token_is_refused(
    two_orgs: tuple[Organisation, Organisation], platform_admin: Any
) -> None:
    caf, _mairie = two_orgs
    _token, raw = do_create_service_token(
        platform_admin, name="GRC", organisation_id=caf.pk, scope="read"
    )
    ServiceToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert _bearer(raw).get("/api/v1/queues/").status_code == 401


def _org_admin(make_user: Any, username: str, org: Organisation) -> Any:
    user = make_user(username, "administrator", profile=False)
    Membership.objects.create(user=user, organisation=org)
    return user


def test_org_admin_makes_service_tokens_for_their_organisation_only(
    make_user: Any, two_orgs: tuple[Organisation, Organisation]
) -> None:
    from organisations.authz import OutOfScope

    caf, mairie = two_orgs
    admin = _org_admin(make_user, "alice", caf)
    token, _raw = do_create_service_token(admin, name="GRC", organisation_id=None, scope="read")
    assert token.organisation == caf
    assert token.created_by == admin
    with pytest.raises(OutOfScope):
        do_create_service_token(admin, name="GRC", organisation_id=mairie.pk, scope="read")
    theirs, _raw = do_create_service_token(
        _org_admin(make_user, "bruno", mairie), name="GRC", organisation_id=None, scope="read"
    )
    with pytest.raises(OutOfScope):
        do_revoke_service_token(admin, theirs)
    supervisor = make_user("nadia", "supervisor", profile=False)
    Membership.objects.create(user=supervisor, organisation=caf)
    with pytest.raises(OutOfScope):
        do_create_service_token(supervisor, name="X", organisation_id=None, scope="read")


def _admin_client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = _device(user).persistent_id
    session.save()
    return client


def test_admin_lists_creates_once_and_revokes_service_tokens_of_own_organisation(
    make_user: Any, two_orgs: tuple[Organisation, Organisation]
) -> None:
    caf, mairie = two_orgs
    admin = _org_admin(make_user, "alice", caf)
    do_create_service_token(
        _org_admin(make_user, "bruno", mairie),
        name="Mairie GRC",
        organisation_id=None,
        scope="read",
    )
    client = _admin_client(admin)
    add = client.post(
        "/admin/apitokens/servicetoken/add/",
        {"name": "CAF GRC", "organisation": caf.pk, "scope": "write", "expires_at_0": ""},
    )
    assert add.status_code == 200, add.content
    token = ServiceToken.objects.get(name="CAF GRC")
    page = add.content.decode()
    secret = page.split('id="service-token-secret"', 1)[1].split('value="', 1)[1].split('"', 1)[0]
    assert secret.startswith(f"ccs_{token.prefix}_")
    assert token.created_by == admin
    assert token.organisation == caf
    assert _bearer(secret).get("/api/v1/queues/").status_code == 200
    # Another organisation cannot be chosen.
    other = client.post(
        "/admin/apitokens/servicetoken/add/",
        {"name": "X", "organisation": mairie.pk, "scope": "read"},
    )
    assert other.status_code == 200
    assert not ServiceToken.objects.filter(name="X").exists()
    listing = client.get("/admin/apitokens/servicetoken/").content.decode()
    assert "CAF GRC" in listing
    assert "Mairie GRC" not in listing
    assert (
        secret
        not in client.get(f"/admin/apitokens/servicetoken/{token.pk}/change/").content.decode()
    )
    revoked = client.post(
        "/admin/apitokens/servicetoken/",
        {"action": "revoke", "_selected_action": [token.pk]},
    )
    assert revoked.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert token.revoked_by == admin
    assert _bearer(secret).get("/api/v1/queues/").status_code == 401


def test_supervisors_do_not_see_service_tokens_in_the_admin(
    make_user: Any, two_orgs: tuple[Organisation, Organisation]
) -> None:
    caf, _mairie = two_orgs
    supervisor = make_user("nadia", "supervisor", profile=False)
    Membership.objects.create(user=supervisor, organisation=caf)
    assert Group.objects.filter(name="supervisor", user=supervisor).exists()
    client = _admin_client(supervisor)
    assert client.get("/admin/apitokens/servicetoken/").status_code == 403


LIST_ENDPOINTS = [
    "contacts",
    "interactions",
    "queues",
    "skills",
    "agents",
    "teams",
    "offers",
    "routing-decisions",
    "presence",
]


@pytest.mark.parametrize("endpoint", LIST_ENDPOINTS)
def test_service_token_lists_answer_without_error(
    endpoint: str, two_orgs: tuple[Organisation, Organisation], platform_admin: Any
) -> None:
    caf, _mairie = two_orgs
    _token, raw = do_create_service_token(
        platform_admin, name="GRC", organisation_id=caf.pk, scope="read"
    )
    response = _bearer(raw).get(f"/api/v1/{endpoint}/")
    assert response.status_code in (200, 403), response.content


def test_write_service_token_creates_in_its_organisation(
    two_orgs: tuple[Organisation, Organisation], platform_admin: Any
) -> None:
    caf, _mairie = two_orgs
    _token, raw = do_create_service_token(
        platform_admin, name="GRC", organisation_id=caf.pk, scope="write"
    )
    response = _bearer(raw).post(
        "/api/v1/queues/", {"code": "caf-rsa", "name": "RSA"}, format="json"
    )
    assert response.status_code == 201, response.content
    assert Queue.objects.get(code="caf-rsa").organisation == caf
