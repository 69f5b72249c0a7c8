""" "Follow my request": the signed link given in acknowledgements, and what its page shows.

A link is ``/suivi/<token>/`` where the token is a random value (32 bytes) signed with
``django.core.signing`` (salted, timestamped). The database keeps only the SHA-256 of the random
value, in a :class:`~publicquality.models.FollowLink` row: revoking the row kills the link. A
bad signature, an unknown, expired or revoked link and another organisation's interaction all
get the same 404 (nothing to enumerate). The page shows no personal data: the channel, the
state, the dates, the announced delay.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.core import signing
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from interactions.lifecycle import Status
from interactions.models import Interaction, Message, MessageDirection

from .commitments import announced_delay_seconds
from .models import FollowLink

SALT = "publicquality.follow"


class UnknownLink(Exception):
    """Bad signature, expired, unknown or revoked: all answered alike (404)."""


def _hash(nonce: str) -> str:
    return hashlib.sha256(nonce.encode()).hexdigest()


def _signer() -> signing.TimestampSigner:
    return signing.TimestampSigner(salt=SALT)


def issue_follow_token(interaction: Interaction) -> str:
    """A new link token for ``interaction`` (a row is stored; the token itself is not)."""
    nonce = secrets.token_urlsafe(32)
    FollowLink.objects.create(
        organisation_id=interaction.organisation_id,
        interaction=interaction,
        nonce_hash=_hash(nonce),
    )
    return _signer().sign(nonce)


def follow_url(interaction: Interaction) -> str:
    """The absolute link for an acknowledgement, or "" when ``PUBLIC_BASE_URL`` is not set (a
    message must not carry a link that leads nowhere)."""
    base = str(getattr(settings, "PUBLIC_BASE_URL", "") or "").rstrip("/")
    if not base or not getattr(settings, "FOLLOW_LINKS", True):
        return ""
    token = issue_follow_token(interaction)
    return base + reverse("publicquality:follow", kwargs={"token": token})


def acknowledgement_line(url: str) -> str:
    """The sentence of an acknowledgement that gives the link (in the active language)."""
    if not url:
        return ""
    return _("Follow the progress of your request (no login needed): %(url)s") % {"url": url}


def follow_line(interaction: Interaction) -> Callable[[], str]:
    """The acknowledgements' sentence (``channels_inbound.hooks.ACKNOWLEDGEMENT_LINES``): the
    link is issued once, its sentence is rendered in each language the acknowledgement is
    written in ("" when there is no link)."""
    return partial(acknowledgement_line, follow_url(interaction))


def link_for_token(token: str) -> FollowLink:
    """The live link a token names, or :class:`UnknownLink`."""
    max_age = timedelta(days=int(getattr(settings, "FOLLOW_LINK_MAX_AGE_DAYS", 365)))
    try:
        nonce = _signer().unsign(token, max_age=max_age)
    except signing.BadSignature as exc:  # SignatureExpired included
        raise UnknownLink from exc
    link = (
        FollowLink.objects.select_related("interaction")
        .filter(nonce_hash=_hash(nonce), revoked_at__isnull=True)
        .first()
    )
    if link is None or link.interaction.organisation_id != link.organisation_id:
        raise UnknownLink
    return link


def do_revoke_follow_links(*, interaction: Interaction) -> int:
    """Revoke every link of an interaction (e.g. at the citizen's request); returns how many."""
    return FollowLink.objects.filter(interaction=interaction, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )


# --------------------------------------------------------------------------- the page's content

RECEIVED, IN_PROGRESS, ANSWERED, CLOSED = "received", "in_progress", "answered", "closed"
STATES = (RECEIVED, IN_PROGRESS, ANSWERED, CLOSED)


@dataclass(frozen=True)
class FollowState:
    state: str  # one of STATES
    channel: str
    received_at: datetime
    last_answer_at: datetime | None
    announced_delay_s: int | None
    answer_due_at: datetime | None


def state_of(interaction: Interaction) -> FollowState:
    """What the citizen's page shows, read afresh from the interaction."""
    interaction.refresh_from_db(fields=["status", "queued_at", "created_at", "queue"])
    last_answer = (
        Message.objects.filter(
            interaction=interaction, direction=MessageDirection.OUTBOUND, author__isnull=False
        )
        .order_by("-created_at")
        .values_list("created_at", flat=True)
        .first()
    )
    if interaction.status in (Status.CLOSED, Status.ABANDONED):
        state = CLOSED
    elif last_answer is not None:
        state = ANSWERED
    elif interaction.status in (Status.ASSIGNED, Status.WRAP_UP):
        state = IN_PROGRESS
    else:
        state = RECEIVED
    received = interaction.queued_at or interaction.created_at
    delay = announced_delay_seconds(interaction)
    due = received + timedelta(seconds=delay) if delay is not None else None
    return FollowState(
        state=state,
        channel=interaction.channel,
        received_at=received,
        last_answer_at=last_answer,
        announced_delay_s=delay,
        answer_due_at=due,
    )


def mark_viewed(link: FollowLink) -> None:
    FollowLink.objects.filter(pk=link.pk).update(last_viewed_at=timezone.now())
