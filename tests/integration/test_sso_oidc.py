"""Sign-in through an organisation's OpenID Connect provider, against a real provider on
loopback (oidc-provider-mock: discovery, JWKS, authorization code, userinfo, end_session), made
to require PKCE S256 and a nonce as ProConnect does. The test chooses each person's claims
(e-mail, sub, acr, amr, roles) through the provider's own API, plays the browser's part at its
authorization endpoint, and drives our side with Django's test client.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import requests
from django.contrib.auth import SESSION_KEY, get_user_model
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.test import Client

from agents.models import AgentProfile
from configuration.models import Team
from organisations.models import Membership, Organisation
from sso.models import ExternalIdentity, IdentityProvider

pytestmark = pytest.mark.django_db

User = get_user_model()
CLIENT_ID = "centre-de-contacts-caf"


# --------------------------------------------------------------------------- the provider


@pytest.fixture(scope="module")
def provider_url() -> Iterator[str]:
    """oidc-provider-mock on a free loopback port, with PKCE required (its authorization-code
    grant, extended with authlib's own RFC 7636 check) and the nonce required."""
    import os

    import flask
    from authlib.oauth2.rfc6749 import InvalidRequestError
    from authlib.oauth2.rfc7636 import CodeChallenge
    from oidc_provider_mock import _app
    from oidc_provider_mock._server import _threaded_server

    challenges: dict[str, tuple[str, str]] = {}

    class RequiredChallenge(CodeChallenge):
        def validate_code_challenge(self, grant: Any, redirect_uri: Any) -> None:
            if not grant.request.payload.data.get("code_challenge"):
                raise InvalidRequestError("PKCE is required")
            super().validate_code_challenge(grant, redirect_uri)

        def get_authorization_code_challenge(self, authorization_code: Any) -> str | None:
            return challenges.get(authorization_code.code, ("", ""))[0] or None

        def get_authorization_code_challenge_method(self, authorization_code: Any) -> str | None:
            return challenges.get(authorization_code.code, ("", ""))[1] or None

    class PkceGrant(_app.AuthorizationCodeGrant):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            RequiredChallenge(required=True)(self)

        def save_authorization_code(self, code: str, request: Any) -> None:
            super().save_authorization_code(code, request)
            data = request.payload.data
            challenges[code] = (data.get("code_challenge"), data.get("code_challenge_method"))

    previous = _app.AuthorizationCodeGrant
    os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"  # plain HTTP on loopback
    _app.AuthorizationCodeGrant = PkceGrant
    try:
        app = _app.app(require_nonce=True)

        @app.after_request
        def announce_pkce(response: Any) -> Any:
            # ... and says so in its discovery document, as RFC 8414 providers do.
            if flask.request.path == "/.well-known/openid-configuration":
                metadata = response.get_json()
                metadata["code_challenge_methods_supported"] = ["S256"]
                metadata["claims_parameter_supported"] = True
                response.set_data(json.dumps(metadata))
            return response

        with _threaded_server(app=app) as server:
            yield f"http://localhost:{server.server_port}"
    finally:
        _app.AuthorizationCodeGrant = previous


def set_claims(provider_url: str, sub: str, **claims: Any) -> None:
    """What the provider says about ``sub`` from now on."""
    response = requests.put(f"{provider_url}/users/{sub}", json=claims, timeout=5)
    assert response.status_code == 204, response.text


# --------------------------------------------------------------------------- our side


@dataclass
class World:
    org: Organisation
    other: Organisation
    team: Team
    idp: IdentityProvider
    url: str


def _member(username: str, org: Organisation, role: str = "agent", **extra: Any) -> Any:
    user = User.objects.create_user(username, f"{username}@example.fr", "pw-Test-2026!", **extra)
    user.groups.add(Group.objects.get(name=role))
    if role != "agent":
        user.is_staff = True
        user.save(update_fields=["is_staff"])
    Membership.objects.create(user=user, organisation=org)
    AgentProfile.objects.create(organisation=org, user=user, languages=["fr"])
    return user


@pytest.fixture
def world(roles: None, provider_url: str) -> World:
    cache.clear()
    org = Organisation.objects.create(name="CAF de test", slug="caf-test")
    other = Organisation.objects.create(name="Mairie de test", slug="mairie-test")
    team = Team.objects.create(organisation=org, name="Accueil")
    idp = IdentityProvider.objects.create(
        organisation=org,
        name="ProConnect",
        kind=IdentityProvider.Kind.PROCONNECT,
        discovery_url=f"{provider_url}/.well-known/openid-configuration",
        client_id=CLIENT_ID,
        client_secret="secret-de-test",
        scopes="openid email profile",
    )
    return World(org=org, other=other, team=team, idp=idp, url=provider_url)


@dataclass
class Attempt:
    response: Any  # our callback's answer
    client: Client
    authorize_url: str
    callback_url: str


def sign_in(world: World, sub: str, *, client: Client | None = None, next_url: str = "") -> Attempt:
    """The whole round trip: our login link, the provider's authorization page (the person
    picks ``sub``), back to our callback."""
    client = client or Client(HTTP_ACCEPT_LANGUAGE="en")
    start = client.get(
        f"/accounts/oidc/{world.org.slug}/login/" + (f"?next={next_url}" if next_url else "")
    )
    assert start.status_code == 302, start.content
    authorize_url = start["Location"]
    assert authorize_url.startswith(f"{world.url}/oauth2/authorize?")
    answer = requests.post(authorize_url, data={"sub": sub}, allow_redirects=False, timeout=5)
    assert answer.status_code == 302, answer.text
    callback = answer.headers["Location"]
    assert callback.startswith(f"http://testserver/accounts/oidc/{world.org.slug}/callback/?")
    parts = urlsplit(callback)
    response = client.get(f"{parts.path}?{parts.query}")
    return Attempt(response, client, authorize_url, f"{parts.path}?{parts.query}")


def signed_in_as(client: Client) -> Any:
    user_id = client.session.get(SESSION_KEY)
    return User.objects.get(pk=user_id) if user_id else None


# --------------------------------------------------------------------------- sign-in


def test_the_login_page_offers_the_organisations_provider(world: World) -> None:
    page = Client(HTTP_ACCEPT_LANGUAGE="fr").get("/accounts/login/?next=/console/")
    text = page.content.decode()
    assert "Se connecter avec ProConnect (CAF de test)" in text
    assert 'href="/accounts/oidc/caf-test/login/?next=/console/"' in text
    # a disabled provider is not offered, and its link leads nowhere
    world.idp.enabled = False
    world.idp.save()
    page = Client().get("/accounts/login/")
    assert "ProConnect" not in page.content.decode()
    assert Client().get("/accounts/oidc/caf-test/login/").status_code == 404
    assert Client().get("/accounts/oidc/mairie-test/login/").status_code == 404


def test_an_agent_signs_in_by_email_with_state_nonce_and_pkce(world: World) -> None:
    agent = _member("agnes", world.org)
    set_claims(world.url, "sub-agnes", email="Agnes@example.fr", given_name="Agnès")
    attempt = sign_in(world, "sub-agnes", next_url="/console/")
    assert attempt.response.status_code == 302
    assert attempt.response["Location"] == "/console/"
    assert signed_in_as(attempt.client) == agent
    assert attempt.client.get("/console/").status_code == 200
    link = ExternalIdentity.objects.get(provider=world.idp, user=agent)
    assert link.sub == "sub-agnes"
    assert link.last_login_at is not None
    # what was asked of the provider: a code, with state, nonce and an S256 challenge
    asked = parse_qs(urlsplit(attempt.authorize_url).query)
    assert asked["response_type"] == ["code"]
    assert asked["client_id"] == [CLIENT_ID]
    assert asked["code_challenge_method"] == ["S256"]
    assert len(asked["code_challenge"][0]) >= 43
    assert len(asked["state"][0]) >= 32
    assert len(asked["nonce"][0]) >= 32
    # the answer cannot be played again (the state was used up)
    again = Client(HTTP_ACCEPT_LANGUAGE="en").get(attempt.callback_url)
    assert again.status_code == 400
    assert "expired" in again.content.decode()
    replay = attempt.client.get(attempt.callback_url)
    assert replay.status_code == 400


def test_proconnect_gets_only_the_parameters_it_knows(world: World) -> None:
    """ProConnect refuses any authorization parameter it does not know: PKCE only when its
    discovery document announces S256; the amr claim asked for (through "claims") when amr
    values count as the second factor; end_session with id_token_hint, state and
    post_logout_redirect_uri only. Another provider that publishes no PKCE methods still gets
    PKCE."""
    issuer = "https://proconnect.example.invalid/api/v2"
    world.idp.discovery_url = f"{issuer}/.well-known/openid-configuration"
    world.idp.mfa_amr_values = "mfa totp pop"
    world.idp.save()
    metadata = {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
        "jwks_uri": f"{issuer}/jwks",
        "end_session_endpoint": f"{issuer}/session/end",
    }
    cache.set(f"sso:discovery:{world.idp.discovery_url}", metadata, 60)

    def asked() -> dict[str, list[str]]:
        start = Client().get(f"/accounts/oidc/{world.org.slug}/login/")
        assert start["Location"].startswith(f"{issuer}/authorize?")
        return parse_qs(urlsplit(start["Location"]).query)

    params = asked()
    assert set(params) == {
        "response_type",
        "client_id",
        "redirect_uri",
        "scope",
        "state",
        "nonce",
        "claims",
    }
    assert json.loads(params["claims"][0]) == {"id_token": {"amr": {"essential": True}}}
    cache.set(
        f"sso:discovery:{world.idp.discovery_url}",
        {**metadata, "code_challenge_methods_supported": ["S256"]},
        60,
    )
    assert asked()["code_challenge_method"] == ["S256"]
    world.idp.kind = IdentityProvider.Kind.OIDC
    world.idp.mfa_amr_values = ""
    world.idp.save()
    cache.set(f"sso:discovery:{world.idp.discovery_url}", metadata, 60)
    params = asked()
    assert params["code_challenge_method"] == ["S256"]
    assert "claims" not in params


def test_the_provider_refuses_a_code_without_its_verifier(world: World) -> None:
    """PKCE is checked by the provider itself: with the session's verifier changed, the code is
    refused at the token endpoint and nobody is signed in."""
    _member("bruno", world.org)
    set_claims(world.url, "sub-bruno", email="bruno@example.fr")
    client = Client()
    start = client.get(f"/accounts/oidc/{world.org.slug}/login/")
    session = client.session
    state = parse_qs(urlsplit(start["Location"]).query)["state"][0]
    states = session["oidc_states"]
    states[state]["code_verifier"] = "x" * 64
    session["oidc_states"] = states
    session.save()
    answer = requests.post(
        start["Location"], data={"sub": "sub-bruno"}, allow_redirects=False, timeout=5
    )
    parts = urlsplit(answer.headers["Location"])
    response = client.get(f"{parts.path}?{parts.query}")
    assert response.status_code == 403
    assert signed_in_as(client) is None


def test_a_sign_in_left_too_long_is_refused(world: World) -> None:
    _member("olga", world.org)
    set_claims(world.url, "sub-olga", email="olga@example.fr")
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    start = client.get(f"/accounts/oidc/{world.org.slug}/login/")
    session = client.session
    states = session["oidc_states"]
    for entry in states.values():
        entry["added_on"] -= 601
    session["oidc_states"] = states
    session.save()
    answer = requests.post(
        start["Location"], data={"sub": "sub-olga"}, allow_redirects=False, timeout=5
    )
    parts = urlsplit(answer.headers["Location"])
    response = client.get(f"{parts.path}?{parts.query}")
    assert response.status_code == 400
    assert "expired" in response.content.decode()
    assert signed_in_as(client) is None


def test_a_state_from_another_organisations_sign_in_is_refused(world: World) -> None:
    """A state issued for organisation A cannot finish at organisation B's callback."""
    IdentityProvider.objects.create(
        organisation=world.other,
        name="Keycloak",
        discovery_url=world.idp.discovery_url,
        client_id="mairie",
        client_secret="s",
    )
    _member("carla", world.org)
    set_claims(world.url, "sub-carla", email="carla@example.fr")
    client = Client()
    start = client.get(f"/accounts/oidc/{world.org.slug}/login/")
    answer = requests.post(
        start["Location"], data={"sub": "sub-carla"}, allow_redirects=False, timeout=5
    )
    query = urlsplit(answer.headers["Location"]).query
    response = client.get(f"/accounts/oidc/{world.other.slug}/callback/?{query}")
    assert response.status_code == 400
    assert signed_in_as(client) is None


def test_matching_by_sub_uses_the_link_only(world: World) -> None:
    world.idp.match_on = IdentityProvider.MatchOn.SUB
    world.idp.save()
    agent = _member("denis", world.org)
    set_claims(world.url, "sub-denis", email="denis@example.fr")
    # same e-mail address, but no link to this sub: unknown
    refused = sign_in(world, "sub-denis")
    assert refused.response.status_code == 403
    assert signed_in_as(refused.client) is None
    # nor does account creation make a second account for the address
    world.idp.create_accounts = True
    world.idp.new_account_team = world.team
    world.idp.save()
    refused = sign_in(world, "sub-denis")
    assert refused.response.status_code == 403
    assert "exists but is not linked" in refused.response.content.decode()
    assert User.objects.filter(email__iexact="denis@example.fr").count() == 1
    ExternalIdentity.objects.create(provider=world.idp, user=agent, sub="sub-denis")
    set_claims(world.url, "sub-denis", email="changed@example.org")
    attempt = sign_in(world, "sub-denis")
    assert attempt.response.status_code == 302
    assert signed_in_as(attempt.client) == agent


def test_just_in_time_creation_into_the_configured_team(world: World) -> None:
    world.idp.create_accounts = True
    world.idp.new_account_team = world.team
    world.idp.save()
    set_claims(
        world.url,
        "sub-emma",
        email="emma.martin@caf.example.fr",
        given_name="Emma",
        usual_name="Martin",
        roles=["cc-admins"],  # no role mapping configured: ignored
    )
    attempt = sign_in(world, "sub-emma")
    assert attempt.response.status_code == 302
    user = signed_in_as(attempt.client)
    assert user.email == "emma.martin@caf.example.fr"
    assert (user.first_name, user.last_name) == ("Emma", "Martin")
    assert not user.has_usable_password()
    assert user.membership.organisation == world.org
    assert list(user.groups.values_list("name", flat=True)) == ["agent"]
    assert not user.is_staff
    profile = user.agent_profile
    assert profile.team == world.team
    assert profile.organisation == world.org
    assert profile.skills.count() == 0
    assert ExternalIdentity.objects.get(user=user).sub == "sub-emma"
    assert attempt.client.get("/console/").status_code == 200
    # the second time, the same account
    assert signed_in_as(sign_in(world, "sub-emma").client) == user
    assert User.objects.filter(email="emma.martin@caf.example.fr").count() == 1


def test_roles_come_from_the_provider_only_when_mapped(world: World) -> None:
    agent = _member("fanny", world.org)
    set_claims(world.url, "sub-fanny", email="fanny@example.fr", groups=["cc-chefs"])
    sign_in(world, "sub-fanny")
    assert list(agent.groups.values_list("name", flat=True)) == ["agent"]
    world.idp.role_claim = "groups"
    world.idp.role_mapping = {"cc-chefs": "supervisor", "cc-agents": "agent"}
    world.idp.save()
    attempt = sign_in(world, "sub-fanny")
    assert attempt.response.status_code == 302
    agent.refresh_from_db()
    assert set(agent.groups.values_list("name", flat=True)) == {"supervisor"}
    assert agent.is_staff
    # values that map to no role: refused, roles unchanged
    set_claims(world.url, "sub-fanny", email="fanny@example.fr", groups=["autre"])
    refused = sign_in(world, "sub-fanny")
    assert refused.response.status_code == 403
    assert "no role" in refused.response.content.decode()
    assert set(agent.groups.values_list("name", flat=True)) == {"supervisor"}


# --------------------------------------------------------------------------- refusals


def test_an_unknown_person_is_refused_when_accounts_are_not_created(world: World) -> None:
    set_claims(world.url, "sub-gaston", email="gaston@example.fr")
    attempt = sign_in(world, "sub-gaston")
    assert attempt.response.status_code == 403
    assert "No account of this organisation matches your identity" in (
        attempt.response.content.decode()
    )
    assert signed_in_as(attempt.client) is None
    assert not User.objects.filter(email="gaston@example.fr").exists()


def test_a_disabled_account_is_refused(world: World) -> None:
    _member("helene", world.org, is_active=False)
    set_claims(world.url, "sub-helene", email="helene@example.fr")
    attempt = sign_in(world, "sub-helene")
    assert attempt.response.status_code == 403
    assert "disabled" in attempt.response.content.decode()
    assert signed_in_as(attempt.client) is None


def test_an_account_of_another_organisation_is_refused(world: World) -> None:
    """A mairie agent's address, through the CAF's provider: refused, with or without account
    creation, and nothing is linked or created."""
    outsider = _member("ines", world.other)
    set_claims(world.url, "sub-ines", email="ines@example.fr")
    for create in (False, True):
        world.idp.create_accounts = create
        world.idp.new_account_team = world.team if create else None
        world.idp.save()
        attempt = sign_in(world, "sub-ines")
        assert attempt.response.status_code == 403
        assert "does not belong to this organisation" in attempt.response.content.decode()
        assert signed_in_as(attempt.client) is None
    assert not ExternalIdentity.objects.filter(user=outsider).exists()
    assert User.objects.filter(email__iexact="ines@example.fr").count() == 1


def test_a_platform_administrator_is_refused(world: World) -> None:
    admin = User.objects.create_superuser("root", "root@example.fr", "pw-Test-2026!")
    Membership.objects.create(user=admin, organisation=world.org)
    set_claims(world.url, "sub-root", email="root@example.fr")
    attempt = sign_in(world, "sub-root")
    assert attempt.response.status_code == 403
    assert signed_in_as(attempt.client) is None


def test_an_id_token_from_another_issuer_is_refused(world: World) -> None:
    """The provider's discovery document (as cached) names another issuer than the one that
    signs the tokens: the real token fails the issuer check; nobody is signed in."""
    _member("nina", world.org)
    set_claims(world.url, "sub-nina", email="nina@example.fr")
    metadata = requests.get(world.idp.discovery_url, timeout=5).json()
    metadata["issuer"] = f"{world.url}/another-tenant"
    cache.set(f"sso:discovery:{world.idp.discovery_url}", metadata, 60)
    attempt = sign_in(world, "sub-nina")
    assert attempt.response.status_code == 403
    assert "did not sign you in" in attempt.response.content.decode()
    assert signed_in_as(attempt.client) is None


def test_the_id_token_checks(world: World) -> None:
    """Audience, issuer, expiry, algorithm and signature of an ID token, against tokens signed
    here with a key of our own (the provider on loopback only ever signs valid ones)."""
    import time

    from cryptography.hazmat.primitives.asymmetric import rsa
    from django.core.exceptions import SuspiciousOperation

    from sso.backends import OrganisationOIDCBackend

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    backend = OrganisationOIDCBackend()
    backend.configure(
        world.idp, {"issuer": "https://idp.example", "token_endpoint": "x", "jwks_uri": "x"}
    )
    now = int(time.time())
    good = {
        "iss": "https://idp.example",
        "aud": CLIENT_ID,
        "sub": "s",
        "iat": now,
        "exp": now + 60,
        "nonce": "n",
    }

    def check(claims: dict[str, Any], *, signer: Any = key, alg: str = "RS256") -> Any:
        token = jwt.encode(claims, signer, algorithm=alg)
        return backend._verify_jws(token, key.public_key())

    backend._checking_id_token = True
    assert check(good)["sub"] == "s"
    for bad in (
        {**good, "aud": "another-client"},
        {**good, "iss": "https://evil.example"},
        {**good, "exp": now - 3600},
        {**good, "aud": [CLIENT_ID, "another"]},  # several audiences and no azp
        {**good, "azp": "another"},
        {k: v for k, v in good.items() if k != "exp"},
    ):
        with pytest.raises(SuspiciousOperation):
            check(bad)
    with pytest.raises(SuspiciousOperation):
        check(good, signer=other_key)
    with pytest.raises(SuspiciousOperation):
        check(good, signer="a-shared-secret-of-enough-length-32b", alg="HS256")


def test_a_provider_that_does_not_answer_is_a_clear_error(world: World) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    world.idp.discovery_url = f"http://127.0.0.1:{port}/.well-known/openid-configuration"
    world.idp.save()
    response = Client(HTTP_ACCEPT_LANGUAGE="fr").get(f"/accounts/oidc/{world.org.slug}/login/")
    assert response.status_code == 503
    text = unescape(response.content.decode())
    assert "ProConnect ne répond pas" in text


# --------------------------------------------------------------------------- second factor


def test_the_providers_mfa_counts_as_the_second_factor_when_configured(world: World) -> None:
    supervisor = _member("jules", world.org, role="supervisor")
    team = Team.objects.create(organisation=world.org, name="Superviseurs")
    team.supervisors.add(supervisor)
    set_claims(world.url, "sub-jules", email="jules@example.fr", acr="eidas2", amr=["pwd", "otp"])

    # not configured: the claims are ignored, the site's own code is asked for
    attempt = sign_in(world, "sub-jules", next_url="/supervision/")
    assert signed_in_as(attempt.client) == supervisor
    page = attempt.client.get("/supervision/")
    assert page.status_code == 302
    assert page["Location"].startswith("/accounts/otp/")

    # configured, but not these values: still the code
    world.idp.mfa_acr_values = "eidas3"
    world.idp.mfa_amr_values = "hwk"
    world.idp.save()
    attempt = sign_in(world, "sub-jules")
    assert attempt.client.get("/supervision/")["Location"].startswith("/accounts/otp/")

    # an accepted acr
    world.idp.mfa_acr_values = "eidas2 eidas3"
    world.idp.save()
    attempt = sign_in(world, "sub-jules")
    assert attempt.client.get("/supervision/").status_code == 200

    # an accepted amr, with an acr that is not
    world.idp.mfa_acr_values = ""
    world.idp.mfa_amr_values = "otp mfa"
    world.idp.save()
    set_claims(world.url, "sub-jules", email="jules@example.fr", acr="eidas1", amr=["pwd", "otp"])
    attempt = sign_in(world, "sub-jules")
    assert attempt.client.get("/supervision/").status_code == 200

    # a password login of the same person still asks for the code
    client = Client()
    client.post("/accounts/login/", {"username": "jules", "password": "pw-Test-2026!"})
    assert client.get("/supervision/")["Location"].startswith("/accounts/otp/")


def test_the_console_socket_accepts_the_providers_second_factor(world: World) -> None:
    from kernel.second_factor import session_device_confirmed

    agent = _member("karim", world.org)
    AgentProfile.objects.filter(user=agent).update(remote=True)  # a teleworker: code required
    world.idp.mfa_amr_values = "mfa"
    world.idp.save()
    set_claims(world.url, "sub-karim", email="karim@example.fr", amr=["mfa"])
    attempt = sign_in(world, "sub-karim")
    assert session_device_confirmed(agent, attempt.client.session)
    assert attempt.client.get("/console/").status_code == 200
    set_claims(world.url, "sub-karim", email="karim@example.fr", amr=["pwd"])
    attempt = sign_in(world, "sub-karim")
    assert not session_device_confirmed(agent, attempt.client.session)


# --------------------------------------------------------------------------- logout


def test_logout_is_propagated_to_the_provider(world: World) -> None:
    agent = _member("lea", world.org)
    set_claims(world.url, "sub-lea", email="lea@example.fr")
    attempt = sign_in(world, "sub-lea")
    client = attempt.client
    assert signed_in_as(client) == agent

    response = client.post("/accounts/logout/")
    assert response.status_code == 200
    assert signed_in_as(client) is None
    assert client.get("/console/").status_code == 302  # logged out here
    text = response.content.decode()
    target = unescape(re.search(r'id="sso-end-session" href="([^"]+)"', text)[1])  # type: ignore[index]
    assert f'content="0;url={target}"' in unescape(text)  # followed by itself
    assert target.startswith(f"{world.url}/oauth2/end_session?")
    query = parse_qs(urlsplit(target).query)
    assert query["post_logout_redirect_uri"] == ["http://testserver/accounts/login/"]
    assert set(query) == {"id_token_hint", "state", "post_logout_redirect_uri"}  # ProConnect's
    # the hint is the provider's own ID token for this person, signed with its key
    jwks = requests.get(f"{world.url}/jwks", timeout=5).json()
    key = jwt.PyJWK(jwks["keys"][0])
    hint = jwt.decode(query["id_token_hint"][0], key, algorithms=["RS256"], audience=CLIENT_ID)
    assert hint["sub"] == "sub-lea"
    # the provider's end-session page takes it, and sends the browser back to our login page
    page = requests.get(target, timeout=5)
    assert page.status_code == 200
    confirm = requests.post(
        f"{world.url}/oauth2/end_session/confirm",
        data={"redirect_uri": "http://testserver/accounts/login/"},
        allow_redirects=False,
        timeout=5,
    )
    assert confirm.status_code == 302
    assert confirm.headers["Location"].startswith("http://testserver/accounts/login/")


def test_a_password_session_logs_out_as_before(world: World) -> None:
    _member("marc", world.org)
    client = Client()
    client.post("/accounts/login/", {"username": "marc", "password": "pw-Test-2026!"})
    assert signed_in_as(client) is not None
    response = client.post("/accounts/logout/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/"
