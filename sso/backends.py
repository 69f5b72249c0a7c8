"""The OpenID Connect relying party, one organisation's provider at a time.

mozilla-django-oidc's backend does the protocol work (token request with the PKCE verifier,
JWKS key lookup, signature and nonce check, userinfo as JSON or as a signed JWT, as ProConnect
answers); this subclass takes its settings from an :class:`~sso.models.IdentityProvider` and its
discovery document instead of Django settings, and also checks the ID token's issuer, audience
and expiry (the library checks the signature and nonce only).
"""

from __future__ import annotations

from typing import Any

import jwt
import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core.cache import cache
from django.core.exceptions import SuspiciousOperation
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from .models import IdentityProvider

DISCOVERY_CACHE_SECONDS = 3600
REQUIRED_METADATA = ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri")


class ProviderUnavailable(Exception):
    """The provider's discovery document could not be read (down, stalled, not OIDC)."""


def timeout() -> float:
    return float(getattr(settings, "OIDC_TIMEOUT", 10))


def provider_metadata(provider: IdentityProvider) -> dict[str, Any]:
    """The provider's discovery document (cached an hour)."""
    key = f"sso:discovery:{provider.discovery_url}"
    found = cache.get(key)
    if found is not None:
        return dict(found)
    try:
        response = requests.get(provider.discovery_url, timeout=timeout())
        response.raise_for_status()
        metadata = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise ProviderUnavailable(str(exc)) from exc
    if not isinstance(metadata, dict) or any(not metadata.get(k) for k in REQUIRED_METADATA):
        raise ProviderUnavailable("not an OpenID Connect discovery document")
    cache.set(key, metadata, DISCOVERY_CACHE_SECONDS)
    return metadata


class OrganisationOIDCBackend(OIDCAuthenticationBackend):
    """Loads users for sessions like Django's ``ModelBackend`` (an inactive user is logged
    out); signs nobody in through ``django.contrib.auth.authenticate``: the callback view calls
    :meth:`exchange_code` with the provider of the organisation and its state's nonce and PKCE
    verifier."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.UserModel = get_user_model()
        self.provider: IdentityProvider | None = None
        self.metadata: dict[str, Any] = {}

    def configure(self, provider: IdentityProvider, metadata: dict[str, Any]) -> None:
        self.provider = provider
        self.metadata = metadata
        self.OIDC_OP_TOKEN_ENDPOINT = metadata["token_endpoint"]
        self.OIDC_OP_USER_ENDPOINT = metadata.get("userinfo_endpoint")
        self.OIDC_OP_JWKS_ENDPOINT = metadata["jwks_uri"]
        self.OIDC_RP_CLIENT_ID = provider.client_id
        self.OIDC_RP_CLIENT_SECRET = provider.client_secret
        self.OIDC_RP_SIGN_ALGO = provider.signing_algorithm
        self.OIDC_RP_IDP_SIGN_KEY = None

    def get_settings(self, attr: str, *args: Any) -> Any:
        per_provider = {
            "OIDC_USE_NONCE": True,
            "OIDC_TIMEOUT": timeout(),
            "OIDC_VERIFY_SSL": True,
            "OIDC_ALLOW_UNSECURED_JWT": False,
            "OIDC_TOKEN_USE_BASIC_AUTH": False,
        }
        if attr in per_provider:
            return per_provider[attr]
        return getattr(settings, attr, *args)

    def authenticate(self, request: Any, **kwargs: Any) -> None:
        return None  # only through exchange_code

    def get_user(self, user_id: Any) -> Any:
        return ModelBackend().get_user(user_id)

    def _jwks(self, refresh: bool = False) -> list[dict[str, Any]]:
        key = f"sso:jwks:{self.OIDC_OP_JWKS_ENDPOINT}"
        keys = None if refresh else cache.get(key)
        if keys is None:
            response = requests.get(self.OIDC_OP_JWKS_ENDPOINT, timeout=timeout())
            response.raise_for_status()
            keys = response.json().get("keys") or []
            cache.set(key, keys, DISCOVERY_CACHE_SECONDS)
        return list(keys)

    def retrieve_matching_jwk(self, token: Any) -> Any:
        """The provider's signing key for this token: by ``kid`` (fetched again once when
        unknown: the provider rotated its keys), else its only signing key of that algorithm."""
        header = jwt.get_unverified_header(token)
        kid, alg = header.get("kid"), header.get("alg")
        for refresh in (False, True):
            candidates = [
                k
                for k in self._jwks(refresh)
                if k.get("use", "sig") == "sig"
                and k.get("alg", alg) == alg
                and (kid is None or k.get("kid") == kid)
            ]
            if len(candidates) == 1:
                return jwt.PyJWK(candidates[0], algorithm=alg)
        raise SuspiciousOperation("no signing key of the provider matches the token")

    def verify_token(self, token: Any, **kwargs: Any) -> Any:
        # With a nonce: the ID token (every check). Without: a userinfo answer signed as a JWT
        # (ProConnect's), where iss and aud are checked when present.
        self._checking_id_token = "nonce" in kwargs
        return super().verify_token(token, **kwargs)

    def _verify_jws(self, payload: Any, key: Any) -> dict[str, Any]:
        header = jwt.get_unverified_header(payload)
        if header.get("alg") != self.OIDC_RP_SIGN_ALGO:
            raise SuspiciousOperation("unexpected signing algorithm")
        id_token = getattr(self, "_checking_id_token", True)
        unverified = jwt.decode(payload, options={"verify_signature": False})
        try:
            claims = jwt.decode(
                payload,
                key,
                algorithms=[self.OIDC_RP_SIGN_ALGO],
                audience=self.OIDC_RP_CLIENT_ID if id_token or "aud" in unverified else None,
                issuer=self.metadata["issuer"] if id_token or "iss" in unverified else None,
                options={
                    "require": ["iss", "aud", "exp", "iat", "sub"] if id_token else ["sub"],
                    "verify_aud": id_token or "aud" in unverified,
                },
                leeway=60,
            )
        except jwt.PyJWTError as exc:
            raise SuspiciousOperation(f"ID token refused: {exc}") from exc
        azp = claims.get("azp")
        if isinstance(claims.get("aud"), list) and len(claims["aud"]) > 1 and azp is None:
            raise SuspiciousOperation("ID token refused: several audiences and no azp")
        if azp is not None and azp != self.OIDC_RP_CLIENT_ID:
            raise SuspiciousOperation("ID token refused: azp is another client")
        return dict(claims)

    def exchange_code(
        self, *, code: str, redirect_uri: str, nonce: str, code_verifier: str | None
    ) -> tuple[dict[str, Any], str]:
        """Trade the authorization code for tokens; return the verified ID token's claims merged
        with the userinfo claims, and the raw ID token (for the logout hint)."""
        payload = {
            "client_id": self.OIDC_RP_CLIENT_ID,
            "client_secret": self.OIDC_RP_CLIENT_SECRET,
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
        }
        if code_verifier is not None:
            payload["code_verifier"] = code_verifier
        token_info = self.get_token(payload)
        id_token = token_info.get("id_token")
        if not id_token:
            raise SuspiciousOperation("no ID token in the token response")
        payload = self.verify_token(id_token, nonce=nonce)
        claims = dict(payload)
        access_token = token_info.get("access_token")
        if self.OIDC_OP_USER_ENDPOINT and access_token:
            userinfo = self.get_userinfo(access_token, id_token, payload)
            if userinfo.get("sub") != payload.get("sub"):
                raise SuspiciousOperation("userinfo is about another subject")
            # The ID token's own claims (acr, amr, auth_time...) win over userinfo's.
            claims = {**userinfo, **payload}
        return claims, id_token
