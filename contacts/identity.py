"""Normalising the identities a citizen reaches us with (pure functions, no database).

Phone numbers become E.164 (``+33612345678``) with ``phonenumbers``, the default region being
``settings.PHONE_DEFAULT_REGION`` (FR): ``06 12 34 56 78``, ``+33 6 12 34 56 78`` and
``0033 6 12 34 56 78`` are one identity. Overseas departments keep their own country code
(La Réunion ``+262``, Guadeloupe ``+590``...). A withheld caller id ("anonymous", "restricted",
empty, Twilio's ``+266696687``...) normalises to ``None``: it must never match a citizen.

E-mail addresses are matched on the real address only, never on the display name, so
``"Marie Dupont" <attacker@example.org>`` is not Marie Dupont.
"""

from __future__ import annotations

import email.policy
import re
from email.headerregistry import Address

import phonenumbers

from kernel.errors import SingleCodeError

# Caller ids that carriers and CPaaS send when the number is withheld or unknown.
WITHHELD_CALLER_IDS = frozenset(
    {
        "",
        "anonymous",
        "anonyme",
        "restricted",
        "private",
        "unknown",
        "unavailable",
        "withheld",
        "blocked",
        "+266696687",  # Twilio: "anonymous" rendered as digits
        "+7378742833",  # Twilio: "restricted" rendered as digits
        "+2562533",  # Twilio: "blocked" rendered as digits
        "+8656696",  # Twilio: "unknown" rendered as digits
    }
)

_CHAT_ID_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


class InvalidIdentity(SingleCodeError, ValueError):
    """The value cannot be an identity of this kind (a clear message says why; 400)."""

    default_code = "invalid_identity"


def is_withheld(raw: str | None) -> bool:
    return raw is None or raw.strip().lower() in WITHHELD_CALLER_IDS


def normalize_phone(raw: str | None, region: str = "FR") -> str | None:
    """Return the E.164 form of ``raw``, or ``None`` for a withheld caller id.

    Raises :class:`InvalidIdentity` when the text is not a possible phone number.
    """
    if is_withheld(raw):
        return None
    assert raw is not None
    text = raw.strip()
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidIdentity(f"not a phone number: {text!r}") from exc
    if not phonenumbers.is_possible_number(number):
        raise InvalidIdentity(f"not a possible phone number: {text!r}")
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if e164 in WITHHELD_CALLER_IDS:
        return None
    return e164


def is_valid_phone(raw: str, region: str = "FR") -> bool:
    """A number an agent may dial (stricter than :func:`normalize_phone`)."""
    try:
        number = phonenumbers.parse(raw.strip(), region)
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_valid_number(number)


def normalize_email(raw: str | None) -> str | None:
    """Return the bare address, lower-cased, from a header value or a plain address."""
    if raw is None or not raw.strip():
        return None
    # The modern header parser (not parseaddr): it does not let a display name or a quoted
    # local part smuggle another address in.
    try:
        header = email.policy.default.header_factory("From", raw.strip().replace("\n", " "))
        addresses = getattr(header, "addresses", ())
    except (ValueError, IndexError, TypeError) as exc:
        raise InvalidIdentity(f"not an e-mail address: {raw!r}") from exc
    if len(addresses) != 1 or header.defects:
        raise InvalidIdentity(f"not exactly one e-mail address: {raw!r}")
    parsed: Address = next(iter(addresses))
    if (
        not parsed.username
        or "@" in parsed.username
        or not parsed.domain
        or "." not in parsed.domain
    ):
        raise InvalidIdentity(f"not an e-mail address: {raw!r}")
    # Local parts are case-sensitive in theory, never in practice for the mailboxes citizens use.
    return f"{parsed.username}@{parsed.domain}".lower()


def normalize_chat_id(raw: str | None) -> str | None:
    if raw is None or not raw.strip():
        return None
    text = raw.strip()
    if not _CHAT_ID_RE.match(text):
        raise InvalidIdentity(f"not a chat visitor id: {raw!r}")
    return text
