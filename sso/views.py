"""Sign-in through the organisation's provider (authorization code flow with state, nonce and
PKCE S256), and logout propagated to it (RP-initiated logout)."""

from __future__ import annotations

import json
import logging
import secrets
import time
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth.views import LogoutView
from django.core.exceptions import SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render, resolve_url
from django.urls import reverse
from django.utils.crypto import get_random_string
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django_otp import login as otp_login
from mozilla_django_oidc.utils import (
    add_state_and_verifier_and_nonce_to_session,
    generate_code_challenge,
)
from requests import HTTPError, RequestException

from kernel.redirects import safe_next_url

from .actions import (
    Refusal,
    SignInRefused,
    do_sign_in_from_claims,
    provider_second_factor,
    second_factor_accepted,
)
from .backends import OrganisationOIDCBackend, ProviderUnavailable, provider_metadata
from .models import IdentityProvider

logger = logging.getLogger(__name__)

BACKEND = "sso.backends.OrganisationOIDCBackend"
STATES_KEY = "oidc_states"  # mozilla-django-oidc's: state -> nonce, PKCE verifier
STATE_PROVIDER_KEY = "cc_sso_states"  # state -> (provider id, next URL)
STATE_MAX_AGE_SECONDS = 600  # a sign-in not finished within ten minutes starts again
SESSION_PROVIDER_KEY = "cc_sso_provider"  # the provider this session signed in through
SESSION_ID_TOKEN_KEY = "oidc_id_token"  # noqa: S105 (a session key) its ID token, the logout hint


def _provider(org_slug: str) -> IdentityProvider:
    provider = (
        IdentityProvider.objects.select_related("organisation", "new_account_team")
        .filter(organisation__slug=org_slug, enabled=True, organisation__active=True)
        .first()
    )
    if provider is None:
        raise Http404
    return provider


def _callback_url(request: HttpRequest, provider: IdentityProvider) -> str:
    path = reverse("sso-callback", kwargs={"org_slug": provider.organisation.slug})
    return request.build_absolute_uri(path)


def _failure(
    request: HttpRequest, provider: IdentityProvider | None, message: str, status: int
) -> HttpResponse:
    return render(
        request,
        "sso/refused.html",
        {"provider": provider, "message": message},
        status=status,
    )


def _unreachable(provider: IdentityProvider) -> str:
    return _("%(name)s cannot be reached. Try again in a moment, or log in with your password.") % {
        "name": provider.name
    }


def _refused_by(provider: IdentityProvider) -> str:
    return _("%(name)s did not sign you in.") % {"name": provider.name}


REFUSAL_MESSAGES = {
    Refusal.UNKNOWN: lambda: _(
        "No account of this organisation matches your identity. Ask your administrator to "
        "create one."
    ),
    Refusal.INACTIVE: lambda: _(
        "Your account has been disabled. Ask your supervisor or administrator."
    ),
    Refusal.OTHER_ORGANISATION: lambda: _(
        "Your account does not belong to this organisation: log in through your own "
        "organisation's page."
    ),
    Refusal.AMBIGUOUS: lambda: _(
        "Several accounts have your e-mail address: ask your administrator to link yours."
    ),
    Refusal.LINKED_ELSEWHERE: lambda: _(
        "This account is linked to another identity at the provider: ask your administrator."
    ),
    Refusal.UNLINKED: lambda: _(
        "An account with your e-mail address exists but is not linked to this identity: ask "
        "your administrator to link it."
    ),
    Refusal.MISSING_CLAIM: lambda: _(
        "The identity provider did not give what this site needs to recognise you (a "
        "verified e-mail address or an identifier)."
    ),
    Refusal.NO_ROLE: lambda: _(
        "Your identity provider grants you no role in the contact centre. Ask your administrator."
    ),
    Refusal.PLATFORM_ADMIN: lambda: _(
        "Platform administrators log in with their password and second factor."
    ),
}


def uses_pkce(provider: IdentityProvider, metadata: dict[str, Any]) -> bool:
    """PKCE (S256) unless the provider says it lacks it: its discovery document lists methods
    without S256, or it is ProConnect and lists none (ProConnect refuses any parameter it does
    not know). State and nonce are always sent."""
    methods = metadata.get("code_challenge_methods_supported")
    if methods is None:
        return provider.kind != IdentityProvider.Kind.PROCONNECT
    return "S256" in methods


@never_cache
def sso_login(request: HttpRequest, org_slug: str) -> HttpResponse:
    """Send the browser to the provider's authorization endpoint."""
    provider = _provider(org_slug)
    try:
        metadata = provider_metadata(provider)
    except ProviderUnavailable as exc:
        logger.warning("sso: discovery of %s failed: %s", provider.organisation.slug, exc)
        return _failure(
            request,
            provider,
            _unreachable(provider),
            503,
        )
    state = get_random_string(32)
    params = {
        "response_type": "code",
        "client_id": provider.client_id,
        "redirect_uri": _callback_url(request, provider),
        "scope": " ".join(provider.scope_list),
        "state": state,
        "nonce": get_random_string(32),
    }
    verifier = None
    if uses_pkce(provider, metadata):
        verifier = secrets.token_urlsafe(64)[:96]
        params["code_challenge"] = generate_code_challenge(verifier, "S256")
        params["code_challenge_method"] = "S256"
    if provider.acr_values:
        params["acr_values"] = provider.acr_values
    if provider.mfa_amr_values and (
        provider.kind == IdentityProvider.Kind.PROCONNECT
        or metadata.get("claims_parameter_supported")
    ):
        # amr is in the ID token only when asked for (ProConnect's rule, standard elsewhere).
        params["claims"] = json.dumps({"id_token": {"amr": {"essential": True}}})
    add_state_and_verifier_and_nonce_to_session(request, state, params, verifier)
    states = request.session.get(STATE_PROVIDER_KEY) or {}
    states = {k: v for k, v in states.items() if k in request.session[STATES_KEY]}
    next_url = safe_next_url(request, request.GET.get("next"), "")
    states[state] = [provider.pk, next_url]
    request.session[STATE_PROVIDER_KEY] = states
    request.session.modified = True
    return HttpResponseRedirect(f"{metadata['authorization_endpoint']}?{urlencode(params)}")


@never_cache
def sso_callback(request: HttpRequest, org_slug: str) -> HttpResponse:
    """The provider sends the browser back here with a code (or an error)."""
    provider = _provider(org_slug)
    state = request.GET.get("state", "")
    states = request.session.get(STATES_KEY) or {}
    owners = request.session.get(STATE_PROVIDER_KEY) or {}
    entry, owner = states.pop(state, None), owners.pop(state, None)
    request.session[STATES_KEY], request.session[STATE_PROVIDER_KEY] = states, owners
    if (
        entry is None
        or owner is None
        or owner[0] != provider.pk
        or time.time() - float(entry.get("added_on", 0)) > STATE_MAX_AGE_SECONDS
    ):
        # No such sign-in started in this browser (or for another organisation, or too long
        # ago): replayed, forged, or the session ended meanwhile.
        return _failure(
            request,
            provider,
            _("This sign-in link has expired. Start again from the login page."),
            400,
        )
    if request.GET.get("error") or not request.GET.get("code"):
        return _failure(request, provider, _refused_by(provider), 403)
    backend = OrganisationOIDCBackend()
    try:
        backend.configure(provider, provider_metadata(provider))
        claims, id_token = backend.exchange_code(
            code=request.GET["code"],
            redirect_uri=_callback_url(request, provider),
            nonce=entry["nonce"],
            code_verifier=entry["code_verifier"],
        )
    except HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else 502
        logger.warning("sso: %s token exchange refused: %s", provider.organisation.slug, status)
        if status < 500:  # the provider answered no (a bad code, verifier or client)
            return _failure(request, provider, _refused_by(provider), 403)
        return _failure(request, provider, _unreachable(provider), 503)
    except (ProviderUnavailable, RequestException) as exc:
        logger.warning("sso: %s token exchange failed: %s", provider.organisation.slug, exc)
        return _failure(
            request,
            provider,
            _unreachable(provider),
            503,
        )
    except SuspiciousOperation as exc:
        logger.warning("sso: %s answer refused: %s", provider.organisation.slug, exc)
        return _failure(request, provider, _refused_by(provider), 403)
    try:
        user = do_sign_in_from_claims(provider, claims)
    except SignInRefused as refused:
        logger.info(
            "sso: %s refused a sign-in: %s", provider.organisation.slug, refused.reason.value
        )
        return _failure(request, provider, REFUSAL_MESSAGES[refused.reason](), 403)
    login(request, user, backend=BACKEND)
    request.session[SESSION_PROVIDER_KEY] = provider.pk
    request.session[SESSION_ID_TOKEN_KEY] = id_token
    factor = second_factor_accepted(provider, claims)
    if factor:
        otp_login(request, provider_second_factor(provider, user, factor))
    return HttpResponseRedirect(owner[1] or resolve_url(settings.LOGIN_REDIRECT_URL))


def end_session_url(request: HttpRequest) -> str | None:
    """Where to send the browser so the provider ends its session too (``None``: this session
    did not sign in through a provider, or the provider has no end_session_endpoint)."""
    provider_id = request.session.get(SESSION_PROVIDER_KEY)
    id_token = request.session.get(SESSION_ID_TOKEN_KEY)
    if not provider_id or not id_token:
        return None
    provider = IdentityProvider.objects.filter(pk=provider_id).first()
    if provider is None:
        return None
    try:
        endpoint = provider_metadata(provider).get("end_session_endpoint")
    except ProviderUnavailable:
        return None
    if not endpoint:
        return None
    query: dict[str, Any] = {
        "id_token_hint": id_token,
        "post_logout_redirect_uri": request.build_absolute_uri(resolve_url(settings.LOGIN_URL)),
        "state": get_random_string(32),
    }
    if provider.kind != IdentityProvider.Kind.PROCONNECT:  # ProConnect takes these three only
        query["client_id"] = provider.client_id
    return f"{endpoint}?{urlencode(query)}"


class SingleSignOnLogoutView(LogoutView):
    """Django's logout; a session that signed in through a provider then goes on to the
    provider's end_session_endpoint (with the ID token as hint), through a page that follows it
    by itself (a form's redirect to another site would be blocked by our form-action policy)."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        target = end_session_url(request)
        response = super().post(request, *args, **kwargs)
        if target is None:
            return response
        return render(request, "sso/logged_out.html", {"end_session_url": target})
