"""Data subject rights: find a citizen, export everything held about them, rectify, erase.

Every function takes the acting user and checks scope through
:func:`organisations.authz.dpo_rows` (an officer acts on their own organisation's citizens only)
and writes one access-log line (who, when, which record; never the citizen's identity).

Erasure keeps the statistics: the citizen record, its interactions, transitions, offers and
queues stay with their timestamps; what goes is what identifies or tells about the person
(numbers, addresses, names, message texts, attachments, recordings, chat transcripts, notes).
A citizen with an interaction still open is refused (:class:`ErasureRefused`): the agent
serving them needs the conversation, and the channel could write new data after the erasure;
close it first (docs/quality-and-privacy.md, "Data subject rights").
"""

from __future__ import annotations

from typing import Any

from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.db.models import Q, QuerySet, TextField
from django.db.models.functions import Cast
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from contacts.actions import ContactError, normalize_identity
from contacts.identity import InvalidIdentity
from contacts.models import Case, Contact, ContactIdentity, IdentityKind, IdentityRemoval
from interactions.lifecycle import OPEN_STATUSES
from interactions.models import Interaction, InteractionTransition, Message
from kernel.audit import AccessAction, log_access
from organisations import authz

from .models import AccessLog
from .retention import drop_attachments

ERASED_NAME = ""


class ErasureRefused(Exception):
    """The citizen still has an open interaction (the message says how many)."""


# --------------------------------------------------------------------------- finding


def citizens(user: Any) -> QuerySet[Contact]:
    return authz.dpo_rows(user, Contact)


def search(user: Any, query: str, *, limit: int = 50) -> list[Contact]:
    """Citizens of the officer's organisation whose number, address, chat id or name matches.
    Logged without the words searched (they are identities)."""
    query = query.strip()
    if not query:
        return []
    values = {query.lower()}
    for kind in IdentityKind.values:
        try:
            normal = normalize_identity(kind, query)
        except (ContactError, InvalidIdentity):
            normal = None
        if normal:
            values.add(normal)
    matched = Q(display_name__icontains=query) | Q(identities__value__in=values)
    found = list(citizens(user).filter(matched).distinct().order_by("-pk")[:limit])
    log_access(
        user,
        AccessAction.SEARCH,
        organisation_id=authz.principal_for(user).organisation_id,
        results=len(found),
    )
    return found


def family(contact: Contact) -> list[int]:
    """The citizen and the records merged into it (the same person), ids."""
    ids, frontier = [contact.pk], [contact.pk]
    while frontier:
        frontier = list(
            Contact.objects.filter(merged_into_id__in=frontier).values_list("pk", flat=True)
        )
        ids.extend(frontier)
    return ids


# --------------------------------------------------------------------------- export


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _attachment_summary(entries: list[Any]) -> list[dict[str, Any]]:
    return [
        {
            key: entry.get(key)
            for key in ("name", "content_type", "size", "recording", "duration_seconds")
            if isinstance(entry, dict) and entry.get(key) is not None
        }
        for entry in entries or []
    ]


def export_data(user: Any, contact: Contact) -> dict[str, Any]:
    """Everything held about this citizen (their organisation's records), as plain data."""
    from channels_inbound.chat.models import ChatSession
    from channels_inbound.email.models import EmailThreadEntry
    from channels_inbound.sms.models import InboundSms, OutboundSms
    from channels_inbound.voice.models import Call
    from console.models import InteractionWrapUp

    ids = family(contact)
    interactions = list(
        Interaction.objects.filter(contact_id__in=ids).select_related("queue").order_by("pk")
    )
    iids = [i.pk for i in interactions]
    messages: dict[int, list[dict[str, Any]]] = {}
    for m in Message.objects.filter(interaction_id__in=iids).order_by("created_at", "pk"):
        messages.setdefault(m.interaction_id, []).append(
            {
                "at": _iso(m.created_at),
                "channel": m.channel,
                "direction": m.direction,
                "text": m.text,
                "attachments": _attachment_summary(m.attachments),
                "delivery_status": m.delivery_status,
            }
        )
    transitions: dict[int, list[dict[str, Any]]] = {}
    for t in InteractionTransition.objects.filter(interaction_id__in=iids).order_by("at", "pk"):
        transitions.setdefault(t.interaction_id, []).append(
            {"at": _iso(t.at), "from": t.from_status, "to": t.to_status, "reason": t.reason}
        )
    wrapups = {
        w.interaction_id: {"code": w.code.label if w.code else None, "notes": w.notes}
        for w in InteractionWrapUp.objects.filter(interaction_id__in=iids).select_related("code")
    }
    data: dict[str, Any] = {
        "format": "contactcentre-subject-export/1",
        "generated_at": timezone.now().isoformat(),
        "organisation": {"id": contact.organisation_id, "name": contact.organisation.name},
        "citizen": {
            "id": contact.pk,
            "merged_records": ids[1:],
            "name": contact.display_name,
            "preferred_language": contact.preferred_language,
            "notes": contact.notes,
            "created_at": _iso(contact.created_at),
            "updated_at": _iso(contact.updated_at),
        },
        "identities": [
            {"kind": i.kind, "value": i.value, "verified": i.verified, "since": _iso(i.created_at)}
            for i in ContactIdentity.objects.filter(contact_id__in=ids).order_by("kind", "value")
        ],
        "cases": [
            {
                "reference": c.reference,
                "subject": c.subject,
                "status": c.status,
                "created_at": _iso(c.created_at),
                "closed_at": _iso(c.closed_at),
            }
            for c in Case.objects.filter(contact_id__in=ids).order_by("pk")
        ],
        "interactions": [
            {
                "id": i.pk,
                "channel": i.channel,
                "direction": i.direction,
                "subject": i.subject,
                "status": i.status,
                "queue": i.queue.name if i.queue else None,
                "created_at": _iso(i.created_at),
                "closed_at": _iso(i.closed_at),
                "abandoned_at": _iso(i.abandoned_at),
                "transitions": transitions.get(i.pk, []),
                "messages": messages.get(i.pk, []),
                "wrap_up": wrapups.get(i.pk),
            }
            for i in interactions
        ],
        "sms": {
            "received": [
                {"at": _iso(s.received_at), "from": s.sender, "to": s.recipient, "text": s.body}
                for s in InboundSms.objects.filter(message__interaction_id__in=iids).order_by("pk")
            ],
            "sent": [
                {"at": _iso(s.created_at), "to": s.to, "text": s.body, "status": s.status}
                for s in OutboundSms.objects.filter(interaction_id__in=iids).order_by("pk")
            ],
        },
        "emails": [
            {
                "at": _iso(e.sent_at or e.created_at),
                "direction": e.direction,
                "citizen_address": e.citizen_address,
                "subject": e.subject,
            }
            for e in EmailThreadEntry.objects.filter(interaction_id__in=iids).order_by("pk")
        ],
        "calls": [
            {
                "caller": c.caller_e164 or c.caller,
                "started_at": _iso(c.started_at),
                "ended_at": _iso(c.ended_at),
                "outcome": c.outcome,
                "recording": bool(c.recording_url),
            }
            for c in Call.objects.filter(interaction_id__in=iids).order_by("pk")
        ],
        "chats": [
            {
                "name_given": s.display_name,
                "topic": s.topic_label,
                "started_at": _iso(s.created_at),
                "ended_at": _iso(s.ended_at),
                "bot_conversation": s.bot_log,
            }
            for s in ChatSession.objects.filter(interaction_id__in=iids).order_by("pk")
        ],
        "requests": [
            {"at": _iso(a.at), "action": a.action, "by": a.actor_name}
            for a in AccessLog.objects.filter(
                object_type="contacts.contact",
                object_id__in=[str(i) for i in ids],
                action__in=[AccessAction.EXPORT, AccessAction.RECTIFY, AccessAction.ERASE],
            ).order_by("at", "pk")
        ],
    }
    return data


def log_export(user: Any, contact: Contact, fmt: str) -> None:
    log_access(user, AccessAction.EXPORT, contact, format=fmt)


# --------------------------------------------------------------------------- rectification


def do_rectify(user: Any, contact: Contact, changes: dict[str, str]) -> list[str]:
    """Correct the name, language or notes, and identity values (``identity-<id>``: a new
    value). Returns the names of the fields changed (logged, not their values)."""
    changed: list[str] = []
    with transaction.atomic():
        locked = citizens(user).select_for_update().filter(pk=contact.pk).first()
        if locked is None:
            raise authz.OutOfScope(f"no citizen #{contact.pk}")
        for name in ("display_name", "preferred_language", "notes"):
            if name in changes and getattr(locked, name) != changes[name]:
                setattr(locked, name, changes[name])
                changed.append(name)
        if changed:
            locked.save(update_fields=[*changed, "updated_at"])
        for identity in ContactIdentity.objects.filter(contact=locked):
            raw = changes.get(f"identity-{identity.pk}")
            if raw is None or raw == identity.value:
                continue
            try:
                value = normalize_identity(identity.kind, raw)
            except InvalidIdentity:
                value = None
            if not value:
                raise ContactError(
                    _("“%(value)s” is not a valid %(kind)s.")
                    % {
                        "value": raw,
                        "kind": identity.get_kind_display(),
                    }
                )
            identity.value = value
            identity.save(update_fields=["value"])
            changed.append(f"identity-{identity.pk}")
        log_access(user, AccessAction.RECTIFY, locked, fields=changed)
    return changed


# --------------------------------------------------------------------------- erasure


def open_interactions(contact: Contact) -> int:
    return Interaction.objects.filter(
        contact_id__in=family(contact), status__in=OPEN_STATUSES
    ).count()


def do_erase(user: Any, contact: Contact) -> dict[str, int]:
    """Erase what identifies this citizen or tells about them (see the module's docstring).

    Refused (:class:`ErasureRefused`, and an ``erase_refused`` line in the log) while an
    interaction of theirs is open. Returns how many rows of each kind were emptied."""
    from channels_inbound.chat.models import ChatSession
    from channels_inbound.email.models import EmailAcknowledgement, EmailThreadEntry
    from channels_inbound.sms.models import InboundSms, OutboundSms
    from channels_inbound.voice.models import Call, CallEvent
    from console.models import AgentEvent, InteractionWrapUp

    if not citizens(user).filter(pk=contact.pk).exists():
        raise authz.OutOfScope(f"no citizen #{contact.pk}")
    still_open = open_interactions(contact)
    if still_open:
        log_access(user, AccessAction.ERASE_REFUSED, contact, open_interactions=still_open)
        raise ErasureRefused(
            ngettext(
                "This citizen has %(n)d conversation still open: close it, then erase.",
                "This citizen has %(n)d conversations still open: close them, then erase.",
                still_open,
            )
            % {"n": still_open}
        )
    with transaction.atomic():
        ids = family(contact)
        list(Contact.objects.select_for_update().filter(pk__in=ids).values_list("pk", flat=True))
        interactions = Interaction.objects.filter(contact_id__in=ids)
        iids = list(interactions.values_list("pk", flat=True))
        identities = list(ContactIdentity.objects.filter(contact_id__in=ids))
        values = {i.value for i in identities}
        phones = {i.value for i in identities if i.kind == IdentityKind.PHONE}
        addresses = {i.value for i in identities if i.kind == IdentityKind.EMAIL}
        names = set(
            Contact.objects.filter(pk__in=ids)
            .exclude(display_name="")
            .values_list("display_name", flat=True)
        )
        texts = set(
            Message.objects.filter(interaction_id__in=iids)
            .exclude(text="")
            .values_list("text", flat=True)
        )
        done: dict[str, int] = {}
        for entries in (
            Message.objects.filter(interaction_id__in=iids)
            .exclude(attachments=[])
            .values_list("attachments", flat=True)
        ):
            drop_attachments(list(entries or []), recordings=False)
            drop_attachments(list(entries or []), recordings=True)
        done["messages"] = Message.objects.filter(interaction_id__in=iids).update(
            text="", html="", attachments=[]
        )
        done["interactions"] = interactions.update(subject="", external_ref="")
        done["cases"] = Case.objects.filter(contact_id__in=ids).update(subject="")
        done["wrap_ups"] = InteractionWrapUp.objects.filter(interaction_id__in=iids).update(
            notes=""
        )
        entries = EmailThreadEntry.objects.filter(interaction_id__in=iids)
        for entry in entries.only("pk"):
            EmailThreadEntry.objects.filter(pk=entry.pk).update(
                message_id=f"<erased-{entry.pk}@invalid>"
            )
        done["emails"] = entries.update(citizen_address="", subject="", references="")
        done["acknowledgements"] = EmailAcknowledgement.objects.filter(
            Q(interaction_id__in=iids) | Q(address__in=addresses)
        ).delete()[0]
        done["sms_sent"] = OutboundSms.objects.filter(
            Q(interaction_id__in=iids) | Q(to__in=phones)
        ).update(to="", body="", error="")
        done["sms_received"] = InboundSms.objects.filter(
            Q(message__interaction_id__in=iids) | Q(sender__in=phones)
        ).update(sender="", body="", media=[], error="")
        calls = Call.objects.filter(Q(interaction_id__in=iids) | Q(caller_e164__in=phones))
        CallEvent.objects.filter(call__in=calls).update(data={})
        done["calls"] = calls.update(caller="", caller_e164="", recording_url="", session={})
        done["chats"] = ChatSession.objects.filter(interaction_id__in=iids).update(
            display_name="", bot_log=[], flow_session={}, topic_label=""
        )
        _erase_satisfaction(iids)
        # Console events carrying the citizen (their payloads are copies of the conversation).
        mentions = Q(pk__in=[])
        for value in values | names | {t for t in texts if len(t) >= 3}:
            mentions |= Q(as_text__contains=value)
        done["console_events"] = (
            AgentEvent.objects.annotate(as_text=Cast("payload", TextField()))
            .filter(mentions)
            .delete()[0]
        )
        IdentityRemoval.objects.filter(contact_id__in=ids).update(value="")
        done["identities"] = ContactIdentity.objects.filter(contact_id__in=ids).delete()[0]
        Contact.objects.filter(pk__in=ids).update(
            display_name=ERASED_NAME, notes="", updated_at=timezone.now()
        )
        _erase_admin_history(ids, [i.pk for i in identities])
        log_access(user, AccessAction.ERASE, contact, **done)
    return done


def _erase_satisfaction(iids: list[int]) -> None:
    from supervision.models import SatisfactionResponse

    SatisfactionResponse.objects.filter(interaction_id__in=iids).update(comment="")


def _erase_admin_history(contact_ids: list[int], identity_ids: list[int]) -> None:
    """The admin's history names the objects it changed: those lines lose the names."""
    for model, ids in ((Contact, contact_ids), (ContactIdentity, identity_ids)):
        LogEntry.objects.filter(
            content_type=ContentType.objects.get_for_model(model),
            object_id__in=[str(i) for i in ids],
        ).update(object_repr=_("(erased)"), change_message="")
