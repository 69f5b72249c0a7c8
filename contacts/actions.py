"""Writes on citizens: resolving an identity to a contact, adding and removing identities,
merging."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, cast

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from kernel.errors import ApplicationError, ErrorKind, SingleCodeError
from organisations import authz
from organisations.models import sole_organisation

from .identity import InvalidIdentity, normalize_chat_id, normalize_email, normalize_phone
from .models import Case, Contact, ContactIdentity, ContactMerge, IdentityKind, IdentityRemoval
from .signals import contacts_merging, identities_in_use_requested

logger = logging.getLogger(__name__)


class ContactError(SingleCodeError):
    """A business rule on contacts was broken (the message says which; 409)."""

    kind = ErrorKind.CONFLICT
    default_code = "contact_rule"


class IdentityRemovalRefused(ContactError):
    """:func:`do_remove_identity` refused; ``code`` says why: ``not_found`` (not on any record,
    e.g. already removed), ``other_citizen``, ``merged`` (the record is a merge tombstone) or
    ``in_use`` (an open interaction of the citizen came in on it, replies go to it). The
    ``messages`` are what a person reads; the raise's own message is for the logs."""

    kinds = {"not_found": ErrorKind.NOT_FOUND, "other_citizen": ErrorKind.INVALID}
    messages = {
        "not_found": _("This identity is no longer on this record."),
        "other_citizen": _("This identity belongs to another citizen: it cannot be removed here."),
        "merged": _("This record was merged into another: correct the kept one."),
        "in_use": _(
            "An open conversation of this citizen came in on this identity and replies go to "
            "it: it can be removed once that conversation is closed."
        ),
    }

    def __init__(self, code: str, detail: str) -> None:
        ApplicationError.__init__(self, code, self.messages[code])
        self.detail = detail


def phone_or_none(raw: str | None) -> str | None:
    """``raw`` in E.164 (numbers without a country code read in ``PHONE_DEFAULT_REGION``), or
    None when it is withheld or not a phone number: how every channel reads a caller, a sender
    or one of our numbers."""
    try:
        return normalize_phone(raw, settings.PHONE_DEFAULT_REGION)
    except InvalidIdentity:
        return None


def normalize_identity(kind: str, raw: str | None) -> str | None:
    """Normalise ``raw`` for ``kind``; ``None`` means "withheld / absent: match nobody"."""
    if kind == IdentityKind.PHONE:
        return normalize_phone(raw, settings.PHONE_DEFAULT_REGION)
    if kind == IdentityKind.EMAIL:
        return normalize_email(raw)
    if kind == IdentityKind.CHAT:
        return normalize_chat_id(raw)
    raise ContactError(f"unknown identity kind {kind!r}")


def find_contact(
    kind: str, raw: str | None, *, organisation_id: int | None = None
) -> Contact | None:
    """The organisation's citizen with this identity (each body has its own records)."""
    value = normalize_identity(kind, raw)
    if value is None:
        return None
    identity = (
        ContactIdentity.objects.select_related("contact")
        .filter(organisation_id=organisation_id or sole_organisation(), kind=kind, value=value)
        .first()
    )
    return identity.contact if identity else None


@dataclass(frozen=True)
class ResolvedContact:
    contact: Contact | None
    created: bool


def resolve_contact(
    kind: str, raw: str | None, *, display_name: str = "", organisation_id: int | None = None
) -> ResolvedContact:
    """Return the organisation's citizen behind an identity, creating the record on first
    contact. The same number writing to the CAF and to the mairie is two records, one each.

    A withheld identity gives ``ResolvedContact(None, False)``: an anonymous caller is never
    attached to someone else's record. Safe under concurrency: two first contacts from the same
    number at once end with one citizen (the identity's unique constraint decides).
    """
    value = normalize_identity(kind, raw)
    if value is None:
        return ResolvedContact(None, False)
    org_id = organisation_id or sole_organisation()
    existing = ContactIdentity.objects.select_related("contact").filter(
        organisation_id=org_id, kind=kind, value=value
    )
    found = existing.first()
    if found is not None:
        return ResolvedContact(found.contact, False)
    try:
        with transaction.atomic():
            contact = Contact.objects.create(
                display_name=display_name[:200], organisation_id=org_id
            )
            ContactIdentity.objects.create(contact=contact, kind=kind, value=value)
    except IntegrityError:
        found = existing.first()
        if found is None:  # pragma: no cover - the constraint fired, so the row exists
            raise
        return ResolvedContact(found.contact, False)
    return ResolvedContact(contact, True)


def resolve_contacts(kind: str, wanted: list[tuple[int, str | None, str]]) -> list[ResolvedContact]:
    """:func:`resolve_contact` for a batch, with set-based statements: one read of the known
    identities, one insert of the new citizens and one of their identities, whatever the batch
    size. ``wanted`` is ``(organisation id, raw identity, display name)``; the answer is in the
    same order. Raises :class:`~contacts.identity.InvalidIdentity` only through
    :func:`normalize_identity`: the caller normalises (or skips) unparseable values first.

    Safe under concurrency like :func:`resolve_contact`: an identity another process inserted
    first wins (``ON CONFLICT DO NOTHING``), and the citizen this batch created for it in vain
    is deleted in the same transaction."""
    keys = [(org_id, normalize_identity(kind, raw)) for org_id, raw, _name in wanted]
    distinct = {(o, v) for o, v in keys if v is not None}
    found = _contacts_by_identity(kind, distinct)
    names: dict[tuple[int, str], str] = {}
    for (org_id, value), (_org, _raw, name) in zip(keys, wanted, strict=True):
        if value is not None and (org_id, value) not in found:
            names.setdefault((org_id, value), name[:200])
    created: set[int] = set()
    if names:
        # No savepoint of its own inside a transaction (a failure here fails the caller's
        # block anyway): two statements fewer per batch.
        with transaction.atomic(savepoint=not transaction.get_connection().in_atomic_block):
            missing = list(names)
            contacts = Contact.objects.bulk_create(
                Contact(display_name=names[key], organisation_id=key[0]) for key in missing
            )
            won = _insert_identities(kind, list(zip(missing, contacts, strict=True)))
            if len(won) < len(missing):  # another process created some identities first
                won.update(_contacts_by_identity(kind, set(missing) - set(won)))
            lost = [
                c.pk
                for key, c in zip(missing, contacts, strict=True)
                if key not in won or won[key].pk != c.pk
            ]
            if lost:  # another process created these identities first: theirs are kept
                Contact.objects.filter(pk__in=lost).delete()
            created = {c.pk for c in contacts} - set(lost)
            found.update(won)
    results = []
    for key in keys:
        contact = found.get((key[0], key[1])) if key[1] is not None else None
        results.append(ResolvedContact(contact, contact is not None and contact.pk in created))
    return results


def _insert_identities(
    kind: str, rows: list[tuple[tuple[int, str], Contact]]
) -> dict[tuple[int, str], Contact]:
    """Insert ``((organisation id, value), new citizen)`` identities, those another process
    created first left as they are (``ON CONFLICT DO NOTHING``), in one statement; returns the
    ones inserted, with their citizen."""
    table = connection.ops.quote_name(ContactIdentity._meta.db_table)
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    values = ", ".join(["(%s, %s, %s, %s, %s, %s)"] * len(rows))
    params: list[Any] = []
    for (org_id, value), contact in rows:
        params += [org_id, contact.pk, kind, value, False, now]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (organisation_id, contact_id, kind, value, verified,"  # noqa: S608
            f" created_at) VALUES {values} ON CONFLICT DO NOTHING"
            " RETURNING organisation_id, value, contact_id",
            params,
        )
        inserted = {(org_id, value): contact_id for org_id, value, contact_id in cursor.fetchall()}
    return {key: contact for key, contact in rows if inserted.get(key) == contact.pk}


def _contacts_by_identity(kind: str, keys: set[tuple[int, str]]) -> dict[tuple[int, str], Contact]:
    """The citizens holding these ``(organisation id, normalised value)`` identities."""
    if not keys:
        return {}
    if connection.vendor == "postgresql":
        return _contacts_by_identity_pg(kind, keys)
    rows = ContactIdentity.objects.select_related("contact").filter(
        kind=kind,
        value__in={v for _o, v in keys},
        organisation_id__in={o for o, _v in keys},
    )
    return {
        (i.organisation_id, i.value): i.contact
        for i in rows
        if (i.organisation_id, i.value) in keys
    }


def _contacts_by_identity_pg(
    kind: str, keys: set[tuple[int, str]]
) -> dict[tuple[int, str], Contact]:
    """:func:`_contacts_by_identity` in one plain statement (no query built per call: the
    ingestion's hot path), the citizens made from their row as the ORM makes them."""
    quote = connection.ops.quote_name
    fields = Contact._meta.concrete_fields
    columns = ", ".join(f"c.{quote(f.column)}" for f in fields)
    sql = (
        f"SELECT i.organisation_id, i.value, {columns}"  # noqa: S608 - model metadata
        f" FROM {quote(ContactIdentity._meta.db_table)} i"
        f" JOIN {quote(Contact._meta.db_table)} c ON c.id = i.contact_id"
        " WHERE i.kind = %s AND i.value = ANY(%s) AND i.organisation_id = ANY(%s)"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [kind, sorted({v for _o, v in keys}), sorted({o for o, _v in keys})])
        rows = cursor.fetchall()
    names = [f.attname for f in fields]
    return {
        (org_id, value): Contact.from_db(connection.alias, names, contact)
        for org_id, value, *contact in rows
        if (org_id, value) in keys
    }


def do_add_identity(
    *, contact: Contact, kind: str, raw: str, verified: bool = False
) -> ContactIdentity:
    value = normalize_identity(kind, raw)
    if value is None:
        raise ContactError("a withheld or empty identity cannot be added")
    owner = ContactIdentity.objects.filter(
        organisation_id=contact.organisation_id, kind=kind, value=value
    ).first()
    if owner is not None and owner.contact_id != contact.pk:
        raise ContactError(
            f"{value} already belongs to citizen #{owner.contact_id}: merge the two records instead"
        )
    identity, _created = ContactIdentity.objects.get_or_create(
        organisation_id=contact.organisation_id,
        kind=kind,
        value=value,
        defaults={"contact": contact, "verified": verified},
    )
    return identity


def identities_in_use(contact_id: int) -> set[tuple[str, str]]:
    """``(kind, normalised value)`` of the identities the citizen's open interactions use, as
    the apps keeping those conversations answer
    :data:`~contacts.signals.identities_in_use_requested` (the channels)."""
    used: set[tuple[str, str]] = set()
    for _receiver, answer in identities_in_use_requested.send(Contact, contact_id=contact_id):
        used |= cast(set[tuple[str, str]], answer)
    return used


@transaction.atomic
def do_remove_identity(
    *, contact_id: int, identity_id: int, actor_id: int | None = None
) -> IdentityRemoval:
    """Take a wrong identity (number, address, chat id) off a citizen's record.

    The rule: any identity of the record may go, except one an open interaction of this citizen
    uses: the one it came in on, or the one replies go to (:func:`identities_in_use`, answered
    by the channels); wrap that conversation up first.
    Refused too for an identity of another citizen (merge the records instead) and on a merged
    record (correct the kept one). Removing the last identity is allowed: the record stays
    reachable through its history and cases, and a right one can be added.

    Only the identity row goes, so the number or address no longer finds this citizen (their
    next contact from it starts a new record); the record, its interactions and messages are
    kept, and an :class:`IdentityRemoval` row records what was removed, from whom, by whom.
    """
    # Lock order: the citizen, then its identity (ingest and merges lock the citizen first).
    contact = Contact.objects.select_for_update().filter(pk=contact_id).first()
    if contact is None:
        raise IdentityRemovalRefused("not_found", f"no citizen #{contact_id}")
    if contact.merged_into_id is not None:
        raise IdentityRemovalRefused(
            "merged", f"citizen #{contact_id} was merged into #{contact.merged_into_id}"
        )
    identity = ContactIdentity.objects.select_for_update().filter(pk=identity_id).first()
    if identity is None:
        raise IdentityRemovalRefused("not_found", f"no identity #{identity_id}")
    if identity.contact_id != contact.pk:
        raise IdentityRemovalRefused(
            "other_citizen", f"identity #{identity_id} belongs to citizen #{identity.contact_id}"
        )
    if (identity.kind, identity.value) in identities_in_use(contact.pk):
        raise IdentityRemovalRefused(
            "in_use", f"an open interaction of citizen #{contact_id} uses identity #{identity_id}"
        )
    removal = IdentityRemoval.objects.create(
        contact=contact, kind=identity.kind, value=identity.value, removed_by_id=actor_id
    )
    identity.delete()
    contact.save(update_fields=["updated_at"])
    # The value itself stays out of the logs (personal data): it is in the audit row.
    logger.info(
        "identity #%s (%s) removed from citizen #%s by user #%s (audit #%s)",
        identity_id,
        removal.kind,
        contact.pk,
        actor_id,
        removal.pk,
    )
    return removal


@transaction.atomic
def do_merge_contacts(
    *, target: Contact, source: Contact, actor: User | None = None
) -> ContactMerge:
    """Merge ``source`` into ``target``: identities, interactions and cases move to ``target``;
    ``source`` stays as a tombstone pointing at ``target`` so nothing referring to it is lost.

    The rows other apps keep about the citizen (interactions) are moved by their receivers of
    :data:`~contacts.signals.contacts_merging`, in this transaction; their counts join the
    merge's summary (``ContactMerge.moved``)."""
    if target.pk == source.pk:
        raise ContactError("a citizen cannot be merged into itself")
    if target.organisation_id != source.organisation_id:
        raise ContactError("citizens of two organisations cannot be merged")
    # Lock both rows in primary-key order (the project's lock-ordering rule). FOR NO KEY
    # UPDATE: the interactions moved next may be held by a transaction whose commit checks
    # their foreign key to these citizens (FOR KEY SHARE), which FOR UPDATE would block
    # (a deadlock; channels_inbound.ingest, _CITIZEN_LOCK_NOTE).
    locked = {
        c.pk: c
        for c in Contact.objects.select_for_update(no_key=True)
        .filter(pk__in=[target.pk, source.pk])
        .order_by("pk")
    }
    target, source = locked[target.pk], locked[source.pk]
    if source.merged_into_id is not None:
        raise ContactError(f"citizen #{source.pk} was already merged")
    if target.merged_into_id is not None:
        raise ContactError(f"citizen #{target.pk} was merged into #{target.merged_into_id}")
    moved = {"identities": ContactIdentity.objects.filter(contact=source).update(contact=target)}
    for receiver, answer in contacts_merging.send(Contact, source=source, target=target):
        counts = cast(dict[str, int], answer)
        if moved.keys() & counts.keys():
            raise RuntimeError(f"{receiver!r} counts rows under a name already used: {counts}")
        moved.update(counts)
    moved["cases"] = Case.objects.filter(contact=source).update(contact=target)
    moved["merged_contacts"] = Contact.objects.filter(merged_into=source).update(merged_into=target)
    if source.notes:
        target.notes = f"{target.notes}\n{source.notes}".strip()
    if not target.display_name:
        target.display_name = source.display_name
    target.save(update_fields=["notes", "display_name", "updated_at"])
    source.merged_into = target
    source.save(update_fields=["merged_into", "updated_at"])
    return ContactMerge.objects.create(source=source, target=target, merged_by=actor, moved=moved)


# What a citizen's record update may change (identities, merges and history go elsewhere).
CONTACT_FIELDS = frozenset({"display_name", "preferred_language", "notes"})


def do_create_contact(*, actor: Any, organisation_id: int | None = None, **fields: Any) -> Contact:
    """A new citizen record in the actor's organisation (a platform administrator names it;
    asking for another organisation is refused with :class:`~organisations.authz.OutOfScope`)."""
    unknown = set(fields) - CONTACT_FIELDS
    if unknown:
        raise ContactError(f"not a citizen field: {', '.join(sorted(unknown))}")
    org_id = authz.organisation_for_new(actor, organisation_id)
    principal = authz.principal_for(actor)
    if principal.role == authz.Role.SUPERVISOR and not principal.team_ids:
        raise authz.OutOfScope("a supervisor of no team has no scope")
    return Contact.objects.create(organisation_id=org_id, **fields)


def do_update_contact(*, actor: Any, contact: Contact, changes: dict[str, Any]) -> Contact:
    """Correct a citizen's name, language or notes (anyone who may change the record)."""
    unknown = set(changes) - CONTACT_FIELDS
    if unknown:
        raise ContactError(f"not a citizen field: {', '.join(sorted(unknown))}")
    with transaction.atomic():
        locked = Contact.objects.select_for_update().filter(pk=contact.pk).first()
        if locked is None:
            raise authz.OutOfScope(f"no citizen #{contact.pk}")
        authz.check_change(actor, locked)
        changed = sorted(name for name, value in changes.items() if getattr(locked, name) != value)
        for name in changed:
            setattr(locked, name, changes[name])
        if changed:
            locked.save(update_fields=[*changed, "updated_at"])
    return locked
