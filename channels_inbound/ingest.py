"""The one ingest path every channel ends in.

A channel adapter (SMS webhook, voice webhook, SMTP server, IMAP poller, chat consumer) turns a
provider payload into an :class:`InboundMessage` and calls :func:`do_ingest_message`, which:

1. returns at once if the provider id was already stored (a retried or concurrent delivery);
2. resolves the citizen from the sender identity (a withheld one stays anonymous);
3. joins the open interaction it belongs to (same thread, or the citizen's open interaction on
   this channel) or creates one in the endpoint's queue, which queues it for routing;
4. stores the message.

All of it is one transaction: a delivery is either fully recorded or not at all, and the
routing and console events are published only after it commits.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import JSONField, Q
from django.db.models.expressions import RawSQL
from django.utils import timezone

from configuration.models import Queue, QueueSkill, Skill
from contacts.actions import ContactError, normalize_identity, resolve_contact, resolve_contacts
from contacts.identity import InvalidIdentity
from contacts.models import Contact, IdentityKind
from interactions.actions import (
    MAX_TEXT_CHARS,
    do_create_interaction,
    do_record_message,
    do_transition_interaction,
)
from interactions.channels import Channel
from interactions.lifecycle import OPEN_STATUSES, Status
from interactions.models import Interaction, InteractionTransition, Message
from interactions.signals import interaction_status_changed
from kernel import event_catalogue
from kernel.events import Event, agent_group, publish_many, supervisors_group
from kernel.pg import execute_binary

from .models import Endpoint

logger = logging.getLogger(__name__)

IDENTITY_KIND: dict[str, str] = {
    Channel.SMS: IdentityKind.PHONE,
    Channel.VOICE: IdentityKind.PHONE,
    Channel.EMAIL: IdentityKind.EMAIL,
    Channel.CHAT: IdentityKind.CHAT,
}
# A new call is a new interaction and an e-mail continues only by its thread: neither joins the
# citizen's open conversation on the channel.
CONTINUED_BY_THREAD_ONLY = frozenset({Channel.VOICE, Channel.EMAIL})


class IngestError(ValueError):
    """The delivery cannot be recorded (unknown endpoint, no queue...); the message says why."""


@dataclass(frozen=True)
class InboundMessage:
    channel: str
    sender: str | None
    recipient: str
    text: str = ""
    html: str = ""
    provider_id: str | None = None
    subject: str = ""
    display_name: str = ""
    # The interaction this message continues, when the channel knows it (e-mail threading,
    # a chat session, a call): matched on Interaction.external_ref.
    thread_ref: str | None = None
    attachments: list[dict[str, Any]] = field(default_factory=list)
    required_skills: dict[str, int] | None = None
    language: str | None = None
    priority: int | None = None


@dataclass(frozen=True)
class IngestResult:
    interaction: Interaction
    message: Message
    created: bool  # False: this provider id was already recorded, nothing new was written
    new_interaction: bool
    # The endpoint it came in on, when this ingestion looked it up (a batch does).
    endpoint: Endpoint | None = None


def endpoint_for(channel: str, recipient: str) -> Endpoint:
    endpoint = (
        Endpoint.objects.select_related("queue")
        .filter(channel=channel, address=recipient, active=True)
        .first()
    )
    if endpoint is None:
        raise IngestError(f"no active {channel} endpoint for {recipient!r}")
    return endpoint


def _open_interaction(
    msg: InboundMessage, organisation_id: int, contact_id: int | None
) -> Interaction | None:
    candidates = Interaction.objects.select_for_update().filter(
        organisation_id=organisation_id, channel=msg.channel
    )
    if msg.thread_ref:
        found = candidates.filter(external_ref=msg.thread_ref).order_by("-id").first()
        if found is not None:
            return found
    if contact_id is None or msg.channel in CONTINUED_BY_THREAD_ONLY:
        return None
    return (
        candidates.filter(contact_id=contact_id, status__in=OPEN_STATUSES).order_by("-id").first()
    )


def do_ingest_message(msg: InboundMessage, *, queue: Queue | None = None) -> IngestResult:
    if msg.provider_id:
        existing = (
            Message.objects.select_related("interaction")
            .filter(channel=msg.channel, provider_id=msg.provider_id)
            .first()
        )
        if existing is not None:
            return IngestResult(existing.interaction, existing, False, False)
    if queue is None:
        queue = endpoint_for(msg.channel, msg.recipient).queue
    try:
        resolved = resolve_contact(
            IDENTITY_KIND[msg.channel],
            msg.sender,
            display_name=msg.display_name,
            organisation_id=queue.organisation_id,
        )
    except InvalidIdentity:
        resolved = None  # an unparseable sender id is treated like a withheld one
    contact = resolved.contact if resolved else None
    try:
        return _ingest(msg, queue, contact)
    except _Duplicate as duplicate:  # a concurrent delivery of the same id won the race
        existing = duplicate.message
        return IngestResult(existing.interaction, existing, False, False)


class _Duplicate(Exception):
    def __init__(self, message: Message) -> None:
        self.message = message


# _CITIZEN_LOCK_NOTE: ingestion serialises a citizen's deliveries by locking the citizen's row,
# then locks the interaction it continues. The lock is FOR NO KEY UPDATE, not FOR UPDATE: a
# transaction that updated that interaction twice (an agent's close, a routing pass) checks the
# interaction's foreign key to the citizen at its commit (FOR KEY SHARE, fired again because the
# row version is its own), which FOR UPDATE blocks: each waited for the other (deadlock
# detected, seen in bench/loop.py: 12 in 60 s at 20 arrivals/s). FOR NO KEY UPDATE still
# excludes another delivery's lock on the same citizen, and a deletion (erasure).


@transaction.atomic
def _ingest(msg: InboundMessage, queue: Queue, contact: Contact | None) -> IngestResult:
    if contact is not None:
        # One delivery at a time per citizen, so two SMS arriving together join one interaction
        # (FOR NO KEY UPDATE: see _CITIZEN_LOCK_NOTE).
        Contact.objects.select_for_update(no_key=True).filter(pk=contact.pk).first()
    interaction = _open_interaction(msg, queue.organisation_id, contact.pk if contact else None)
    new_interaction = interaction is None
    if interaction is None:
        interaction = do_create_interaction(
            channel=msg.channel,
            contact=contact,
            queue=queue,
            subject=msg.subject or msg.text[:80],
            required_skills=msg.required_skills,
            language=msg.language,
            priority=msg.priority,
            external_ref=msg.thread_ref or "",
        )
    elif interaction.status == Status.CLOSED:
        do_transition_interaction(interaction=interaction, to=Status.QUEUED, reason="reopened")
    recorded = do_record_message(
        interaction=interaction,
        direction="inbound",
        text=msg.text,
        html=msg.html,
        provider_id=msg.provider_id,
        attachments=msg.attachments,
    )
    if not recorded.created:
        raise _Duplicate(recorded.message)  # roll back anything this delivery created
    return IngestResult(interaction, recorded.message, True, new_interaction)


# --- Batches -----------------------------------------------------------------------------------
@contextmanager
def after_commit_in_one_transaction() -> Iterator[None]:
    """Run the after-commit work registered inside this block in one transaction.

    The status-change receivers register their side effects one interaction at a time
    (``transaction.on_commit``): a wallboard counter upsert, a routing wake-up, events. Django
    runs them after the commit in autocommit, so a batch of 200 new interactions would pay 200
    commits (each a WAL flush) after its own. Here they are taken off the connection's list and
    registered again as one callback that runs them, in order, inside one transaction, an
    exception never stopping the others (as ``robust`` callbacks): the same effects, one
    commit. A function registered several times with nothing captured of its own (the routing
    wake-up, coalesced anyway) runs once. Callables that say how to run several of their kind
    at once (a ``run_together`` attribute: the wallboard counters' updates, one statement for
    all, summed by row) are run first, together, in autocommit (one statement, one commit): the
    rest, most often no statement at all (events, wake-ups), then runs in its transaction.
    Rolled back with the savepoint that registered them, as before. (The wallboard counters
    swallow and log their own errors; should one break the transaction, that batch's counter
    updates are lost with it, and ``manage.py rebuild_wallboard_stats`` repairs them.)"""
    conn = transaction.get_connection()
    start = len(conn.run_on_commit)
    yield
    added: list[Callable[[], object]] = []
    together: dict[Callable[[list[Any]], object], list[Any]] = {}
    stateless: set[object] = set()
    for _sids, func, _robust in conn.run_on_commit[start:]:
        run_together = getattr(func, "run_together", None)
        if run_together is not None:
            together.setdefault(run_together, []).append(func)
            continue
        code = getattr(func, "__code__", None)
        if code is not None and not getattr(func, "__closure__", None):
            # (a bound method: the same function of the same object)
            same = (code, id(getattr(func, "__self__", None)))
            if same in stateless:
                continue  # the same function with nothing of its own: once is the same
            stateless.add(same)
        added.append(func)
    if not added and not together:
        return
    del conn.run_on_commit[start:]

    def run_all() -> None:
        for run_together, funcs in together.items():
            try:
                run_together(funcs)
            except Exception:
                logger.exception("after-commit work of an ingest batch failed: %r", run_together)
        if not added:
            return
        with transaction.atomic():
            for func in added:
                try:
                    func()
                except Exception:
                    logger.exception("after-commit work of an ingest batch failed: %r", func)

    transaction.on_commit(run_all, robust=True)


@dataclass
class _Planned:
    """One delivery of a batch while it is being written."""

    msg: InboundMessage
    received_at: datetime | None
    queue: Queue | None = None
    endpoint: Endpoint | None = None
    contact: Contact | None = None
    new_contact: bool = False  # created by this batch: nobody else can see it yet
    interaction: Interaction | None = None
    new_interaction: bool = False
    existing: Message | None = None
    error: Exception | None = None


def do_ingest_batch(
    msgs: Sequence[InboundMessage], *, received_at: Sequence[datetime | None] | None = None
) -> list[IngestResult | Exception]:
    """:func:`do_ingest_message` for a batch, with set-based statements (the answer is in the
    same order: a result, or the exception that delivery raised).

    Runs in the caller's transaction (call it inside ``transaction.atomic``): the citizens of
    the whole batch are resolved or created at once (:func:`contacts.actions.resolve_contacts`),
    their open interactions read and locked in one statement, the new interactions, their
    ``new -> queued`` transitions and the messages written with ``bulk_create``, and the events
    sent with one ``publish_many``. Messages are written in the batch's order, so the caller
    keeps each citizen's order by passing their deliveries oldest first; ``received_at`` (when
    given) becomes each message's ``created_at``, the time the console sorts the thread by.

    A delivery that cannot be recorded for a reason of its own (no endpoint, text too long)
    gets its exception and is left out; the others are written. A database error raises: the
    caller rolls the batch back to its savepoint and falls back to one delivery at a time, so a
    delivery that breaks a statement is isolated too.
    """
    now = timezone.now()
    plans = [_Planned(m, received_at[i] if received_at else None) for i, m in enumerate(msgs)]
    _find_recorded(plans)
    _find_queues(plans)
    for plan in plans:
        if plan.error is None and plan.existing is None and len(plan.msg.text) > MAX_TEXT_CHARS:
            plan.error = ValueError(f"message text longer than {MAX_TEXT_CHARS} characters")
    live = [p for p in plans if p.error is None and p.existing is None]
    _resolve_citizens(live)
    _join_open_interactions(live)
    with after_commit_in_one_transaction():
        _create_interactions(live, now)
        messages = _write_messages(live)
    results: list[IngestResult | Exception] = []
    for plan in plans:
        if plan.error is not None:
            results.append(plan.error)
        elif plan.existing is not None:
            results.append(IngestResult(plan.existing.interaction, plan.existing, False, False))
        else:
            assert plan.interaction is not None
            results.append(
                IngestResult(
                    plan.interaction,
                    messages[id(plan)],
                    True,
                    plan.new_interaction,
                    plan.endpoint,
                )
            )
    return results


def _find_recorded(plans: list[_Planned]) -> None:
    """Deliveries whose provider id is already stored: nothing new to write."""
    by_channel: dict[str, set[str]] = defaultdict(set)
    for plan in plans:
        if plan.msg.provider_id:
            by_channel[plan.msg.channel].add(plan.msg.provider_id)
    known: dict[tuple[str, str], Message] = {}
    table = connection.ops.quote_name(Message._meta.db_table)
    for channel, ids in by_channel.items():
        # Almost always none: a plain statement first, the rows themselves only when found.
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT id FROM {table} WHERE channel = %s"  # noqa: S608 - model metadata
                f" AND provider_id IN ({', '.join(['%s'] * len(ids))})",
                [channel, *ids],
            )
            found = [row[0] for row in cursor.fetchall()]
        if not found:
            continue
        for message in Message.objects.select_related("interaction").filter(pk__in=found):
            known[(channel, message.provider_id or "")] = message
    seen: dict[tuple[str, str], _Planned] = {}
    for plan in plans:
        if not plan.msg.provider_id:
            continue
        key = (plan.msg.channel, plan.msg.provider_id)
        plan.existing = known.get(key)
        if plan.existing is None and key in seen:  # the same id twice in one batch
            plan.error = IngestError(f"provider id {key[1]!r} twice in one batch")
        seen.setdefault(key, plan)


def _find_queues(plans: list[_Planned]) -> None:
    wanted = {(p.msg.channel, p.msg.recipient) for p in plans if p.existing is None}
    endpoints: dict[tuple[str, str], Endpoint] = {}
    if wanted:
        query = Q()
        for channel, address in wanted:
            query |= Q(channel=channel, address=address)
        found = Endpoint.objects.select_related("queue").filter(query, active=True)
        skills = _queue_skills()
        if skills is not None:
            found = found.annotate(queue_skills=skills)
        for endpoint in found.order_by("-id"):
            endpoints[(endpoint.channel, endpoint.address)] = endpoint  # the oldest wins
    for plan in plans:
        if plan.existing is not None or plan.error is not None:
            continue
        chosen = endpoints.get((plan.msg.channel, plan.msg.recipient))
        if chosen is None:
            plan.error = IngestError(
                f"no active {plan.msg.channel} endpoint for {plan.msg.recipient!r}"
            )
        else:
            plan.queue = chosen.queue
            plan.endpoint = chosen


def _queue_skills() -> RawSQL | None:
    """The endpoint's queue's required skills (``Queue.required_skills``: code -> minimum
    level), read with the endpoint in the same statement (None: no way to on this database)."""
    if connection.vendor == "postgresql":
        aggregate = "coalesce(jsonb_object_agg(s.code, qs.min_level), '{}'::jsonb)"
    elif connection.vendor == "sqlite":
        aggregate = "json_group_object(s.code, qs.min_level)"
    else:
        return None
    quote = connection.ops.quote_name
    return RawSQL(  # noqa: S611 - model metadata only, no parameter
        f"(SELECT {aggregate} FROM {quote(QueueSkill._meta.db_table)} qs"  # noqa: S608
        f" JOIN {quote(Skill._meta.db_table)} s ON s.id = qs.skill_id"
        f" WHERE qs.queue_id = {quote(Endpoint._meta.db_table)}.queue_id)",
        [],
        output_field=JSONField(),
    )


def _resolve_citizens(plans: list[_Planned]) -> None:
    by_kind: dict[str, list[_Planned]] = defaultdict(list)
    for plan in plans:
        kind = IDENTITY_KIND[plan.msg.channel]
        try:
            normalize_identity(kind, plan.msg.sender)
        except (InvalidIdentity, ContactError):
            continue  # an unparseable sender id is treated like a withheld one
        by_kind[kind].append(plan)
    for kind, group in by_kind.items():
        resolved = resolve_contacts(
            kind,
            [
                (p.queue.organisation_id, p.msg.sender, p.msg.display_name)  # type: ignore[union-attr]
                for p in group
            ],
        )
        for plan, found in zip(group, resolved, strict=True):
            plan.contact = found.contact
            plan.new_contact = found.created


def _join_open_interactions(plans: list[_Planned]) -> None:
    """The interaction each delivery continues (same thread, or its citizen's open one on the
    channel), read and locked in one statement. The citizens are locked first, in id order
    (so two batches never wait on each other in a cycle): one batch at a time per citizen, so
    two deliveries arriving together join one interaction, as :func:`_ingest` does.

    A citizen this batch created is neither locked nor looked up: no other transaction sees
    the record before this one commits, so it has no interaction but the batch's own."""
    contact_ids = sorted(
        {p.contact.pk for p in plans if p.contact is not None and not p.new_contact}
    )
    if contact_ids:
        list(
            Contact.objects.select_for_update(no_key=True)  # _CITIZEN_LOCK_NOTE
            .filter(pk__in=contact_ids)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
    refs = {p.msg.thread_ref for p in plans if p.msg.thread_ref}
    joinable = [
        p
        for p in plans
        if p.contact is not None
        and not p.new_contact
        and p.msg.channel not in CONTINUED_BY_THREAD_ONLY
    ]
    joins = {id(p) for p in joinable}
    if not refs and not joinable:
        return
    query = Q()
    if refs:
        query |= Q(external_ref__in=refs)
    if joinable:
        query |= Q(
            contact_id__in={p.contact.pk for p in joinable},  # type: ignore[union-attr]
            status__in=OPEN_STATUSES,
        )
    by_ref: dict[tuple[int, str, str], Interaction] = {}
    by_contact: dict[tuple[int, str, int], Interaction] = {}
    orgs = {p.queue.organisation_id for p in plans}  # type: ignore[union-attr]
    channels = {p.msg.channel for p in plans}
    found = (
        Interaction.objects.select_for_update()
        .filter(query, organisation_id__in=orgs, channel__in=channels)
        .order_by("id")
    )
    for interaction in found:  # newest last: the newest wins
        if interaction.external_ref:
            by_ref[(interaction.organisation_id, interaction.channel, interaction.external_ref)] = (
                interaction
            )
        if interaction.contact_id and interaction.status in OPEN_STATUSES:
            key = (interaction.organisation_id, interaction.channel, interaction.contact_id)
            by_contact[key] = interaction
    for plan in plans:
        org_id = plan.queue.organisation_id  # type: ignore[union-attr]
        if plan.msg.thread_ref:
            plan.interaction = by_ref.get((org_id, plan.msg.channel, plan.msg.thread_ref))
        if plan.interaction is None and id(plan) in joins:
            plan.interaction = by_contact.get((org_id, plan.msg.channel, plan.contact.pk))  # type: ignore[union-attr]
        if plan.interaction is not None and plan.interaction.status == Status.CLOSED:
            do_transition_interaction(
                interaction=plan.interaction, to=Status.QUEUED, reason="reopened"
            )


def _create_interactions(plans: list[_Planned], now: datetime) -> None:
    """One new interaction per citizen and channel (or per delivery: anonymous senders, calls,
    e-mail without a thread) for the deliveries that continue none; the later deliveries of the
    batch join the one the first created. Written queued, with their ``new -> queued``
    transitions, in two statements; the status-change receivers (routing, wallboard
    counters, escalation) run for each as for :func:`do_create_interaction`."""
    new: list[Interaction] = []
    opened: dict[tuple[int, str, object], Interaction] = {}
    skills: dict[int, dict[str, int]] = {}
    for plan in plans:
        if plan.interaction is not None:
            continue
        msg, queue = plan.msg, plan.queue
        assert queue is not None
        key: tuple[int, str, object] | None = None
        if msg.thread_ref:
            key = (queue.organisation_id, msg.channel, ("ref", msg.thread_ref))
        elif plan.contact is not None and msg.channel not in CONTINUED_BY_THREAD_ONLY:
            key = (queue.organisation_id, msg.channel, plan.contact.pk)
        if key is not None and key in opened:
            plan.interaction = opened[key]
            continue
        if queue.pk not in skills:
            read = getattr(plan.endpoint, "queue_skills", None)  # with the endpoint: _find_queues
            skills[queue.pk] = read if isinstance(read, dict) else queue.required_skills()
        interaction = Interaction(
            organisation_id=queue.organisation_id,
            channel=msg.channel,
            contact=plan.contact,
            queue=queue,
            subject=(msg.subject or msg.text[:80])[:255],
            priority=msg.priority if msg.priority is not None else queue.priority,
            required_skills={**skills[queue.pk], **(msg.required_skills or {})},
            language=msg.language or queue.language or "fr",
            external_ref=msg.thread_ref or "",
            sla_due_at=now + timedelta(seconds=queue.sla_target_seconds),
            status=Status.QUEUED,
            queued_at=now,
            queue_entered_at=now,
        )
        new.append(interaction)
        plan.interaction = interaction
        plan.new_interaction = True
        if key is not None:
            opened[key] = interaction
    if not new:
        return
    Interaction.objects.bulk_create(new)
    InteractionTransition.objects.bulk_create(
        InteractionTransition(
            interaction_id=i.pk,
            from_status=Status.NEW,
            to_status=Status.QUEUED,
            reason="arrived",
            at=now,
        )
        for i in new
    )
    # Addressed to their organisation's supervisors at once (what SUPERVISORS_GROUP resolves
    # to, kernel.events.supervisor_groups_of, without looking the new rows' organisation up).
    events: list[Event] = []
    for i in new:
        supervisors = [supervisors_group(i.organisation_id)]
        events.append(
            (
                *event_catalogue.interaction_created(interaction_id=i.pk, channel=i.channel),
                supervisors,
            )
        )
        events.append(
            (
                *event_catalogue.interaction_status(
                    interaction_id=i.pk,
                    from_status=Status.NEW,
                    to_status=Status.QUEUED,
                    reason="arrived",
                ),
                supervisors,
            )
        )
    publish_many(events)
    for i in new:
        interaction_status_changed.send(
            sender=Interaction,
            interaction=i,
            from_status=Status.NEW,
            to_status=Status.QUEUED,
            now=now,
        )


def _write_messages(plans: list[_Planned]) -> dict[int, Message]:
    """The deliveries' messages, in the batch's order, with their ``created_at`` set to when
    each was received (an agent's reply sent meanwhile still sorts after it)."""
    if not plans:
        return {}
    messages = Message.objects.bulk_create(
        Message(
            interaction=p.interaction,
            channel=p.msg.channel,
            direction="inbound",
            text=p.msg.text,
            html=p.msg.html,
            provider_id=p.msg.provider_id or None,
            attachments=p.msg.attachments or [],
        )
        for p in plans
    )
    # Dated at reception, never before the message written before it in the same conversation:
    # two SMS received within the same instant by two web processes keep the stored order.
    dated: list[tuple[Message, datetime]] = []
    latest: dict[int, datetime] = {}
    for m, p in zip(messages, plans, strict=True):
        if p.received_at is None:
            continue
        at = max(p.received_at, latest.get(m.interaction_id, p.received_at))
        latest[m.interaction_id] = at
        dated.append((m, at))
    for message, at in dated:
        message.created_at = at
    if dated:
        set_created_at([(m.pk, at) for m, at in dated])
    events: list[Event] = [
        (
            *event_catalogue.message_created(
                interaction_id=p.interaction.pk, message_id=m.pk, direction="inbound"
            ),
            [agent_group(p.interaction.assigned_agent_id)],
        )
        for m, p in zip(messages, plans, strict=True)
        if p.interaction is not None and p.interaction.assigned_agent_id
    ]
    if events:
        publish_many(events)
    return {id(p): m for m, p in zip(messages, plans, strict=True)}


def set_created_at(rows: list[tuple[int, datetime]]) -> None:
    """Set messages' ``created_at`` (``auto_now_add`` cannot be given on insert): one
    statement on PostgreSQL, ``bulk_update`` elsewhere."""
    if connection.vendor == "postgresql":
        ids, ats = zip(*rows, strict=True)
        table = connection.ops.quote_name(Message._meta.db_table)
        execute_binary(
            f"UPDATE {table} AS m SET created_at = v.at "  # noqa: S608 - model metadata
            "FROM unnest(%b::bigint[], %b::timestamptz[]) AS v(id, at) WHERE m.id = v.id",
            [list(ids), list(ats)],
        ).close()
    else:
        Message.objects.bulk_update(
            [Message(pk=pk, created_at=at) for pk, at in rows], ["created_at"]
        )
