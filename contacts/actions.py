"""Writes on citizens: resolving an identity to a contact, adding identities, merging."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction

from .identity import normalize_chat_id, normalize_email, normalize_phone
from .models import Case, Contact, ContactIdentity, ContactMerge, IdentityKind


class ContactError(Exception):
    """A business rule on contacts was broken (the message says which)."""


def normalize_identity(kind: str, raw: str | None) -> str | None:
    """Normalise ``raw`` for ``kind``; ``None`` means "withheld / absent: match nobody"."""
    if kind == IdentityKind.PHONE:
        return normalize_phone(raw, settings.PHONE_DEFAULT_REGION)
    if kind == IdentityKind.EMAIL:
        return normalize_email(raw)
    if kind == IdentityKind.CHAT:
        return normalize_chat_id(raw)
    raise ContactError(f"unknown identity kind {kind!r}")


def find_contact(kind: str, raw: str | None) -> Contact | None:
    value = normalize_identity(kind, raw)
    if value is None:
        return None
    identity = (
        ContactIdentity.objects.select_related("contact").filter(kind=kind, value=value).first()
    )
    return identity.contact if identity else None


@dataclass(frozen=True)
class ResolvedContact:
    contact: Contact | None
    created: bool


def resolve_contact(kind: str, raw: str | None, *, display_name: str = "") -> ResolvedContact:
    """Return the citizen behind an identity, creating the record on first contact.

    A withheld identity gives ``ResolvedContact(None, False)``: an anonymous caller is never
    attached to someone else's record. Safe under concurrency: two first contacts from the same
    number at once end with one citizen (the identity's unique constraint decides).
    """
    value = normalize_identity(kind, raw)
    if value is None:
        return ResolvedContact(None, False)
    existing = ContactIdentity.objects.select_related("contact").filter(kind=kind, value=value)
    found = existing.first()
    if found is not None:
        return ResolvedContact(found.contact, False)
    try:
        with transaction.atomic():
            contact = Contact.objects.create(display_name=display_name[:200])
            ContactIdentity.objects.create(contact=contact, kind=kind, value=value)
    except IntegrityError:
        found = existing.first()
        if found is None:  # pragma: no cover - the constraint fired, so the row exists
            raise
        return ResolvedContact(found.contact, False)
    return ResolvedContact(contact, True)


def do_add_identity(
    *, contact: Contact, kind: str, raw: str, verified: bool = False
) -> ContactIdentity:
    value = normalize_identity(kind, raw)
    if value is None:
        raise ContactError("a withheld or empty identity cannot be added")
    owner = ContactIdentity.objects.filter(kind=kind, value=value).first()
    if owner is not None and owner.contact_id != contact.pk:
        raise ContactError(
            f"{value} already belongs to citizen #{owner.contact_id}: merge the two records instead"
        )
    identity, _created = ContactIdentity.objects.get_or_create(
        kind=kind, value=value, defaults={"contact": contact, "verified": verified}
    )
    return identity


@transaction.atomic
def do_merge_contacts(
    *, target: Contact, source: Contact, actor: User | None = None
) -> ContactMerge:
    """Merge ``source`` into ``target``: identities, interactions and cases move to ``target``;
    ``source`` stays as a tombstone pointing at ``target`` so nothing referring to it is lost."""
    from interactions.models import Interaction

    if target.pk == source.pk:
        raise ContactError("a citizen cannot be merged into itself")
    # Lock both rows in primary-key order (the project's lock-ordering rule).
    locked = {
        c.pk: c
        for c in Contact.objects.select_for_update()
        .filter(pk__in=[target.pk, source.pk])
        .order_by("pk")
    }
    target, source = locked[target.pk], locked[source.pk]
    if source.merged_into_id is not None:
        raise ContactError(f"citizen #{source.pk} was already merged")
    if target.merged_into_id is not None:
        raise ContactError(f"citizen #{target.pk} was merged into #{target.merged_into_id}")
    moved = {
        "identities": ContactIdentity.objects.filter(contact=source).update(contact=target),
        "interactions": Interaction.objects.filter(contact=source).update(contact=target),
        "cases": Case.objects.filter(contact=source).update(contact=target),
        "merged_contacts": Contact.objects.filter(merged_into=source).update(merged_into=target),
    }
    if source.notes:
        target.notes = f"{target.notes}\n{source.notes}".strip()
    if not target.display_name:
        target.display_name = source.display_name
    target.save(update_fields=["notes", "display_name", "updated_at"])
    source.merged_into = target
    source.save(update_fields=["merged_into", "updated_at"])
    return ContactMerge.objects.create(source=source, target=target, merged_by=actor, moved=moved)
