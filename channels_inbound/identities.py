"""Which of a citizen's identities their open interactions use.

An open interaction (waiting, offered, in progress or in wrap-up) came in on a phone number, an
e-mail address or a chat visitor id, and the agent's replies go back to it. Each channel knows
which one from its own records:

- SMS: the senders of its inbound SMS and the numbers its replies went to; an SMS interaction
  with no inbound SMS yet replies to the citizen's first phone number
  (``channels_inbound.sms.actions._addresses``), so that one counts too;
- phone: the caller's number of its call;
- e-mail: the citizen's address on every message of its thread, in or out;
- chat: the visitor id of its chat session.

They answer the contacts app's ``identities_in_use_requested`` hook (connected in
``ChannelsInboundConfig.ready()``): ``contacts.actions.do_remove_identity`` refuses to remove
these from the record.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from contacts.actions import ContactError, normalize_identity
from contacts.identity import InvalidIdentity
from contacts.models import Contact, ContactIdentity, IdentityKind
from contacts.signals import identities_in_use_requested
from interactions.channels import Channel
from interactions.lifecycle import OPEN_STATUSES
from interactions.models import Interaction

from .chat.models import ChatSession
from .email.models import EmailThreadEntry
from .sms.models import InboundSms, OutboundSms
from .voice.models import Call


def _normalised(kind: str, raws: Iterable[str | None]) -> set[tuple[str, str]]:
    found = set()
    for raw in raws:
        try:
            value = normalize_identity(kind, raw)
        except (InvalidIdentity, ContactError):
            continue  # an unparseable sender never became an identity
        if value is not None:
            found.add((kind, value))
    return found


def identities_in_use(contact_id: int) -> set[tuple[str, str]]:
    """``(kind, normalised value)`` of the identities the citizen's open interactions use."""
    by_channel: dict[str, list[int]] = defaultdict(list)
    for pk, channel in Interaction.objects.filter(
        contact_id=contact_id, status__in=OPEN_STATUSES
    ).values_list("pk", "channel"):
        by_channel[channel].append(pk)
    used: set[tuple[str, str]] = set()
    if by_channel.get(Channel.SMS):
        ids = by_channel[Channel.SMS]
        inbound = InboundSms.objects.filter(message__interaction_id__in=ids)
        used |= _normalised(IdentityKind.PHONE, inbound.values_list("sender", flat=True))
        used |= _normalised(
            IdentityKind.PHONE,
            OutboundSms.objects.filter(interaction_id__in=ids).values_list("to", flat=True),
        )
        answered = set(inbound.values_list("message__interaction_id", flat=True))
        if any(pk not in answered for pk in ids):
            first_phone = (
                ContactIdentity.objects.filter(contact_id=contact_id, kind=IdentityKind.PHONE)
                .order_by("id")
                .values_list("value", flat=True)
                .first()
            )
            if first_phone is not None:
                used.add((IdentityKind.PHONE, first_phone))
    if by_channel.get(Channel.VOICE):
        calls = Call.objects.filter(interaction_id__in=by_channel[Channel.VOICE])
        used |= _normalised(IdentityKind.PHONE, calls.values_list("caller_e164", flat=True))
    if by_channel.get(Channel.EMAIL):
        entries = EmailThreadEntry.objects.filter(interaction_id__in=by_channel[Channel.EMAIL])
        used |= _normalised(IdentityKind.EMAIL, entries.values_list("citizen_address", flat=True))
    if by_channel.get(Channel.CHAT):
        sessions = ChatSession.objects.filter(interaction_id__in=by_channel[Channel.CHAT])
        used |= _normalised(IdentityKind.CHAT, sessions.values_list("visitor_id", flat=True))
    return used


def on_identities_in_use_requested(
    sender: type[Contact], *, contact_id: int, **kwargs: Any
) -> set[tuple[str, str]]:
    return identities_in_use(contact_id)


def connect() -> None:
    identities_in_use_requested.connect(
        on_identities_in_use_requested, dispatch_uid="channels_inbound.identities_in_use"
    )
