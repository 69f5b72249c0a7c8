"""The visitor token: a signed, expiring claim "this browser is visitor V in session S of
widget W".

The widget keeps it in the browser's storage and sends it on every (re)connection, which is
how a conversation survives a page reload. It is signed with ``SECRET_KEY`` (django.core.signing,
salted for this use), so it cannot be forged or altered; it carries a timestamp and is refused
after ``CHAT_TOKEN_MAX_AGE_SECONDS``. Each connection gets a fresh one (a sliding expiry).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.conf import settings
from django.core import signing

SALT = "channels_chat.visitor-token"


class InvalidToken(Exception):
    """Tampered, expired, or for another widget."""


@dataclass(frozen=True)
class VisitorClaim:
    visitor_id: str
    session_id: str
    widget_key: str


def new_visitor_id() -> str:
    """A random chat identity (contacts.identity accepts [A-Za-z0-9_-]{8,64})."""
    return secrets.token_urlsafe(24)  # 32 characters, 192 bits


def make_token(claim: VisitorClaim) -> str:
    return signing.dumps(
        {"v": claim.visitor_id, "s": claim.session_id, "w": claim.widget_key}, salt=SALT
    )


def read_token(token: str, *, widget_key: str) -> VisitorClaim:
    if not isinstance(token, str) or len(token) > 1000:
        raise InvalidToken("malformed token")
    try:
        data = signing.loads(token, salt=SALT, max_age=settings.CHAT_TOKEN_MAX_AGE_SECONDS)
    except signing.SignatureExpired as exc:
        raise InvalidToken("expired token") from exc
    except signing.BadSignature as exc:
        raise InvalidToken("bad signature") from exc
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in "vsw"):
        raise InvalidToken("malformed token")
    if data["w"] != widget_key:
        raise InvalidToken("token of another widget")
    return VisitorClaim(visitor_id=data["v"], session_id=data["s"], widget_key=data["w"])
