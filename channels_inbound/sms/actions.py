"""SMS writes: receiving (idempotent, fast), opting out, sending and delivery statuses.

The webhook request does the minimum: one insert guarded by the unique ``MessageSid``
constraint, the opt-out keywords, and a task queued after the commit. The task runs the shared
ingest path in batches (:func:`channels_inbound.ingest.do_ingest_batch`).
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, InterfaceError, OperationalError, connection, transaction
from django.db.models import F
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from channels_inbound.hooks import acknowledgement_lines
from channels_inbound.ingest import (
    InboundMessage,
    IngestError,
    IngestResult,
    do_ingest_batch,
    do_ingest_message,
    set_created_at,
)
from channels_inbound.media import pending_entry, request_fetch
from channels_inbound.models import Endpoint
from channels_inbound.providers import base, get_backend
from channels_inbound.providers import outbound_retry_countdown as retry_countdown
from channels_inbound.providers.webhooks import absolute
from contacts.actions import phone_or_none
from contacts.models import ContactIdentity
from interactions.actions import do_record_message
from interactions.channels import Channel
from interactions.models import Interaction, Message
from kernel import event_catalogue, instruments
from kernel.errors import ApplicationError, ErrorKind
from kernel.events import SUPERVISORS_GROUP, agent_group, publish
from kernel.pg import execute_binary
from kernel.triggers import CoalescedTrigger

from .models import STATUS_RANK, InboundSms, OutboundSms, SmsOptOut, SmsStatusEvent

logger = logging.getLogger(__name__)

# Single-word messages that opt out or back in (Twilio's standard words and French ones);
# compared without accents, case or surrounding punctuation.
STOP_KEYWORDS = frozenset(
    {"STOP", "STOPALL", "ARRET", "ARRETER", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "DESABONNER"}
)
START_KEYWORDS = frozenset({"START", "UNSTOP", "DEMARRER", "REPRENDRE"})


class SmsError(ApplicationError):
    """An SMS cannot be sent; ``code`` says why (``empty``, ``too_long``, ``no_recipient``,
    ``no_number``, ``opted_out``) and the message says it to the person who wrote it."""

    kind = ErrorKind.CONFLICT
    kinds = {"empty": ErrorKind.INVALID, "too_long": ErrorKind.INVALID}
    messages = {
        "empty": gettext_lazy("The SMS is empty."),
        "no_recipient": gettext_lazy("There is no phone number to send this SMS to."),
        "no_number": gettext_lazy("No SMS number is active for this conversation's queue."),
        "opted_out": gettext_lazy(
            "This citizen replied STOP: no SMS can be sent until they send START."
        ),
    }


class SmsOptedOut(SmsError):
    """The citizen sent STOP: nothing may be sent until they send START."""

    def __init__(self) -> None:
        super().__init__("opted_out")


class SmsTooLong(SmsError):
    """Over the provider's limit (``SMS_MAX_OUTBOUND_CHARS``): it would refuse the message."""

    def __init__(self, length: int, limit: int) -> None:
        self.length = length
        self.limit = limit
        super().__init__(
            "too_long",
            _(
                "An SMS can have at most %(limit)s characters and this message has %(length)s: "
                "shorten it, or send it in several SMS."
            )
            % {"limit": limit, "length": length},
        )


def sms_length(text: str) -> int:
    """Characters as providers (and the console's counter) count them: UTF-16 code units, so
    an emoji counts two."""
    return len(text.encode("utf-16-le")) // 2


def opt_keyword(body: str) -> str | None:
    text = unicodedata.normalize("NFKD", body.strip().strip(".!").upper())
    word = "".join(c for c in text if not unicodedata.combining(c))
    if word in STOP_KEYWORDS:
        return "stop"
    if word in START_KEYWORDS:
        return "start"
    return None


def is_opted_out(phone: str) -> bool:
    return SmsOptOut.objects.filter(phone=phone, active=True).exists()


@dataclass(frozen=True)
class ReceivedSms:
    created: bool  # False: this MessageSid was already stored (a replay or a concurrent copy)
    reply: str | None = None


_INSERT_RECEIVED = (
    "INSERT INTO {table} (provider, message_sid, account_sid, sender, recipient, body, media,"
    " state, error, received_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, '', %s)"
    " ON CONFLICT (provider, message_sid) DO NOTHING RETURNING id"
)


def do_receive_sms(
    *, sms: base.InboundSms, provider: str, received_at: datetime | None = None
) -> ReceivedSms:
    """Store a delivery once and have it ingested after the commit.

    The hot path is one statement in autocommit, ``INSERT ... ON CONFLICT DO NOTHING`` on the
    (provider, MessageSid) unique constraint: a replay or a concurrent duplicate inserts nothing
    and still gets its 200. The ingestion itself runs in a task (:func:`request_ingest`).
    ``received_at``: when the webhook came (a delivery spooled during a database outage is
    stored later, dated then: channels_inbound/sms/spool.py)."""
    received_at = received_at or timezone.now()
    keyword = opt_keyword(sms.body)
    phone = phone_or_none(sms.sender) if keyword else None
    if keyword and phone:
        return _receive_opt_keyword(sms, provider, keyword, phone, received_at)
    with connection.cursor() as cursor:
        cursor.execute(
            _INSERT_RECEIVED.format(table=connection.ops.quote_name(InboundSms._meta.db_table)),
            [
                provider,
                sms.sid,
                sms.account_sid,
                sms.sender,
                sms.recipient,
                sms.body,
                connection.ops.adapt_json_value(sms.media, None),
                InboundSms.State.RECEIVED,
                connection.ops.adapt_datetimefield_value(received_at),
            ],
        )
        created = cursor.fetchone() is not None
    if created:
        request_ingest()
    return ReceivedSms(created)


def _receive_opt_keyword(
    sms: base.InboundSms, provider: str, keyword: str, phone: str, received_at: datetime
) -> ReceivedSms:
    state = InboundSms.State.OPT_OUT if keyword == "stop" else InboundSms.State.OPT_IN
    now = timezone.now()
    try:
        with transaction.atomic():
            InboundSms.objects.create(
                received_at=received_at,
                provider=provider,
                message_sid=sms.sid,
                account_sid=sms.account_sid,
                sender=sms.sender,
                recipient=sms.recipient,
                body=sms.body,
                media=sms.media,
                state=state,
                processed_at=now,
            )
            SmsOptOut.objects.update_or_create(
                phone=phone,
                defaults={
                    "active": state == InboundSms.State.OPT_OUT,
                    "keyword": sms.body.strip()[:20],
                    "changed_at": now,
                },
            )
    except IntegrityError:
        return ReceivedSms(False)
    reply = None
    if settings.SMS_OPT_OUT_REPLY and state == InboundSms.State.OPT_OUT:
        reply = _("You will no longer receive SMS from us. Send START to receive them again.")
    elif settings.SMS_OPT_OUT_REPLY:
        reply = _("You will receive our SMS again. Send STOP to stop them.")
    return ReceivedSms(True, reply)


INGEST_QUEUED_KEY = "channels_sms:ingest-queued"


def _queue_ingestion() -> None:
    from .tasks import ingest_pending_sms

    ingest_pending_sms.delay()


# While an ingestion task is queued and not yet started, more requests add nothing (it will see
# their rows). The flag expires after 2 s: a lost task delays ingestion by 2 s at most, and the
# periodic sweep covers the rest (kernel.triggers).
INGEST_TRIGGER = CoalescedTrigger(
    key=INGEST_QUEUED_KEY, queued_ms=2000, enqueue=_queue_ingestion, what="SMS ingestion"
)


def request_ingest() -> None:
    """Wake the ingestion task once the current transaction commits (coalesced)."""
    INGEST_TRIGGER.request()


def ingest_started() -> None:
    """Called by the task as it starts: SMS stored from now on queue a new task."""
    INGEST_TRIGGER.started()


INGEST_BATCH = 200  # received SMS written per transaction (set-based: a few statements each)
# Namespace of the per-sender advisory locks (``pg_try_advisory_xact_lock(ns, hashtext(from))``).
SENDER_LOCK_NAMESPACE = 7_104_121

MESSAGE = "message"
# What a received SMS is, asked before it becomes a message: each classifier returns the kind
# of a handler in INBOUND_HANDLERS, or None (not its kind). Apps register theirs when they load
# (e.g. a reply to a satisfaction survey).
INBOUND_CLASSIFIERS: list[Callable[[InboundSms], str | None]] = []
# Handlers for received SMS that are not an ordinary message, by kind: each is called with the
# row inside the batch's transaction (in its own savepoint, with the sender's ingestion lock
# held) and records what the SMS means; the row is then marked ingested (with the message the
# handler returns, if any) or failed with the handler's exception.
INBOUND_HANDLERS: dict[str, Callable[[InboundSms], Message | None]] = {}


def classify_inbound(inbound: InboundSms) -> str:
    """What a received SMS is, decided in this one place before it becomes a message:
    ``MESSAGE`` (recorded on the citizen's interaction, in a batch) or the kind the first
    classifier of :data:`INBOUND_CLASSIFIERS` that claims it gives (handled by
    :data:`INBOUND_HANDLERS`). STOP and START are classified earlier, in the webhook request:
    they never wait for ingestion."""
    for classifier in INBOUND_CLASSIFIERS:
        kind = classifier(inbound)
        if kind is not None and kind in INBOUND_HANDLERS:
            return kind
    return MESSAGE


def _lock_senders(senders: list[str]) -> list[str]:
    """Take these senders' ingestion locks until the transaction ends, without waiting, in one
    statement; return those taken, in order (the others are being ingested by another worker,
    which keeps their order). SQLite serialises writers, so there is nothing to take there."""
    if connection.vendor != "postgresql" or not senders:
        return senders
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT s FROM unnest(%s::text[]) WITH ORDINALITY AS t(s, n)"
            " WHERE pg_try_advisory_xact_lock(%s, hashtext(s)) ORDER BY n",
            [senders, SENDER_LOCK_NAMESPACE],
        )
        return [row[0] for row in cursor.fetchall()]


# The senders of the oldest waiting rows (but the busy ones), each with its number of those
# rows, and whether its lock was taken: one statement on PostgreSQL. (The rows themselves are
# read by the next statement, whose snapshot is taken after the locks.)
_PICK_AND_LOCK_SENDERS = (
    "WITH pending AS MATERIALIZED ("
    " SELECT sender, received_at FROM {table} WHERE state = %s AND NOT (sender = ANY(%s::text[]))"
    " ORDER BY received_at LIMIT %s),"
    " senders AS MATERIALIZED ("
    " SELECT sender, min(received_at) AS first, count(*) AS n FROM pending GROUP BY sender)"
    " SELECT sender, n, pg_try_advisory_xact_lock(%s, hashtext(sender)) FROM senders"
    " ORDER BY first, sender"
)


def _pick_senders(busy: set[str], size: int) -> tuple[list[str], list[str], int]:
    """(senders of the oldest waiting rows but ``busy`` ones, in order; those of them whose
    ingestion lock this transaction now holds; how many waiting rows were looked at)."""
    if connection.vendor != "postgresql":
        pending = list(
            InboundSms.objects.filter(state=InboundSms.State.RECEIVED)
            .exclude(sender__in=busy)
            .order_by("received_at")  # the pending rows' index: no scan of the ingested ones
            .values_list("sender", flat=True)[:size]
        )
        senders = list(dict.fromkeys(pending))
        return senders, _lock_senders(senders), len(pending)
    with connection.cursor() as cursor:
        cursor.execute(
            _PICK_AND_LOCK_SENDERS.format(
                table=connection.ops.quote_name(InboundSms._meta.db_table)
            ),
            [str(InboundSms.State.RECEIVED), sorted(busy), size, SENDER_LOCK_NAMESPACE],
        )
        found = cursor.fetchall()
    return (
        [sender for sender, _n, _locked in found],
        [sender for sender, _n, locked in found if locked],
        sum(n for _sender, n, _locked in found),
    )


def _take_batch(busy: set[str], size: int) -> tuple[list[InboundSms] | None, bool]:
    """The next batch of waiting SMS this worker may ingest, oldest first: the senders of the
    oldest waiting rows (but ``busy`` ones), locked, then up to ``size`` of their rows. ``None``
    when no row outside ``busy`` waits; senders another worker holds are added to ``busy``.
    The flag says whether every row waiting outside ``busy`` when it looked is in the batch."""
    senders, locked, looked_at = _pick_senders(busy, size)
    if not senders:
        return None, True
    busy.update(set(senders) - set(locked))
    if not locked:
        return [], False
    # Read after the locks: rows a previous holder ingested are no longer waiting.
    rows = list(
        InboundSms.objects.filter(state=InboundSms.State.RECEIVED, sender__in=locked).order_by(
            "id"
        )[:size]
    )
    return rows, looked_at < size and len(rows) < size and len(locked) == len(senders)


def do_ingest_pending_sms(*, limit: int = 10_000) -> int:
    """Ingest the received SMS waiting in the database, oldest first. Returns how many.

    Work is partitioned by citizen: a sender's SMS are ingested by one worker at a time (a
    transaction-scoped advisory lock per sender, taken without waiting), in the order they were
    received, so several workers ingest at once without reordering a conversation. Each batch
    of up to :data:`INGEST_BATCH` rows is one transaction, written with set-based statements
    (:func:`channels_inbound.ingest.do_ingest_batch`); a delivery that cannot be recorded is
    marked failed with the reason and the rest of the batch commits. A database error on the
    connection stops the run (the sweep retries). Events and routing requests go out when a
    batch commits, so routing starts on the first batch while later ones are written.

    The run ends with a batch that held every row waiting when it looked (and no sender left to
    another worker): a row stored after that look asks for its own run once stored (the
    webhook's :func:`request_ingest`, made after this run started), so looking once more would
    find, at best, what that run will take. That later run may find the row's sender held by
    this one: it then waits for the holder's batch to end (:func:`_wait_for_senders`) and looks
    again, rather than end with the row waiting for the periodic sweep.

    With a broker, a run that finds more than one batch waiting asks for another run at once,
    so the other worker processes join in (each takes other senders)."""
    done = waits = 0
    busy: set[str] = set()  # senders another worker is ingesting: left to it
    retried = fanned_out = False
    while done < limit:
        with transaction.atomic():
            rows, complete = _take_batch(busy, min(INGEST_BATCH, limit - done))
            if rows:
                done += _ingest_rows(rows)
        if rows is None:
            if not busy:
                break
            if not retried:  # their holders may have finished meanwhile
                retried = True
            elif waits >= _MAX_WAITS or not _wait_for_senders(busy):
                _ask_for_another_run()
                break
            else:
                waits += 1
            busy.clear()
            continue
        if rows and len(rows) >= INGEST_BATCH and not fanned_out:
            fanned_out = True
            _ask_for_another_run()
        if complete and not busy:
            break
    return done


# A run that finds only senders held by other workers waits for their batches this long at
# most, this many times (each wait ends with the holder's transaction: a batch, well under a
# second), before it leaves them to a new run.
_LOCK_WAIT_MS = 5000
_MAX_WAITS = 20


def _wait_for_senders(senders: set[str]) -> bool:
    """Wait until the workers holding these senders' ingestion locks end their batches (take
    each lock in turn, waiting, in a fixed order so two waiters cannot deadlock; let go at
    once). False if a holder kept one past ``_LOCK_WAIT_MS``."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT set_config('lock_timeout', %s, true)", [f"{_LOCK_WAIT_MS}ms"])
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s, hashtext(s)) FROM unnest(%s::text[]) AS s",
                [SENDER_LOCK_NAMESPACE, sorted(senders)],
            )
    except OperationalError:
        logger.warning("SMS ingestion: %s sender(s) still held by another worker", len(senders))
        return False
    return True


def _ask_for_another_run() -> None:
    """More than a batch waits: queue another run for a free worker process (a broker only:
    run eagerly it would nest in this one)."""
    if not settings.CELERY_TASK_ALWAYS_EAGER:
        request_ingest()


def _inbound_message(inbound: InboundSms) -> InboundMessage:
    # Media are fetched with the account's credentials after the commit (channels_inbound.media).
    attachments = [
        pending_entry(
            name=f"media-{i + 1}", url=m.get("url", ""), content_type=m.get("content_type", "")
        )
        for i, m in enumerate(inbound.media)
    ]
    return InboundMessage(
        channel=Channel.SMS,
        sender=inbound.sender,
        recipient=phone_or_none(inbound.recipient) or inbound.recipient,
        text=inbound.body,
        provider_id=inbound.message_sid,
        attachments=attachments,
    )


_CONNECTION_ERRORS = (OperationalError, InterfaceError)


def _ingest_rows(rows: list[InboundSms]) -> int:
    """Record a batch of locked, waiting rows (in the caller's transaction); mark each ingested
    or failed. Returns how many were recorded."""
    outcomes: dict[int, Any] = {}
    batch: list[tuple[InboundSms, InboundMessage]] = []
    for inbound in rows:
        try:
            kind = classify_inbound(inbound)
            if kind != MESSAGE:
                outcomes[inbound.pk] = _handle(inbound, kind)
                continue
            batch.append((inbound, _inbound_message(inbound)))
        except _CONNECTION_ERRORS:
            raise
        except Exception as exc:
            outcomes[inbound.pk] = exc
    if batch:
        try:
            with transaction.atomic():
                results = do_ingest_batch(
                    [m for _i, m in batch], received_at=[i.received_at for i, _m in batch]
                )
        except _CONNECTION_ERRORS:
            raise
        except Exception:
            # Something in the batch broke a statement: rolled back to the savepoint, the
            # deliveries are recorded one by one, each in its own savepoint.
            logger.exception("SMS batch of %s failed; recording them one by one", len(batch))
            results = [_ingest_one(inbound, msg) for inbound, msg in batch]
        outcomes.update((inbound.pk, r) for (inbound, _m), r in zip(batch, results, strict=True))
    return _mark(rows, outcomes)


def _handle(inbound: InboundSms, kind: str) -> IngestResult | Message | Exception | None:
    try:
        with transaction.atomic():
            return INBOUND_HANDLERS[kind](inbound)
    except _CONNECTION_ERRORS:
        raise
    except Exception as exc:
        return exc


def _ingest_one(inbound: InboundSms, msg: InboundMessage) -> IngestResult | Exception:
    try:
        with transaction.atomic():
            result = do_ingest_message(msg)
            if result.created:
                set_created_at([(result.message.pk, inbound.received_at)])
            return result
    except _CONNECTION_ERRORS:
        raise
    except Exception as exc:
        return exc


def _mark(rows: list[InboundSms], outcomes: dict[int, Any]) -> int:
    """Write each row's outcome: ingested (with its message) or failed (with the reason)."""
    now = timezone.now()
    recorded = 0
    new_conversations: list[tuple[InboundSms, Interaction]] = []
    endpoints: dict[str, Endpoint] = {}  # raw recipient -> the endpoint ingestion found
    for inbound in rows:
        outcome = outcomes.get(inbound.pk)
        inbound.processed_at = now
        if isinstance(outcome, Exception):
            if isinstance(outcome, IngestError):
                logger.warning("inbound SMS %s not recorded: %s", inbound.message_sid, outcome)
                inbound.error = str(outcome)
            else:
                logger.error("inbound SMS #%s could not be ingested: %r", inbound.pk, outcome)
                inbound.error = repr(outcome)[:1000]
            inbound.state = InboundSms.State.FAILED
            continue
        message = outcome.message if isinstance(outcome, IngestResult) else outcome
        inbound.state = InboundSms.State.INGESTED
        inbound.message = message
        recorded += 1
        if isinstance(outcome, IngestResult) and outcome.created and outcome.message.attachments:
            request_fetch(outcome.message.pk)
        if isinstance(outcome, IngestResult) and outcome.new_interaction:
            new_conversations.append((inbound, outcome.interaction))
            if outcome.endpoint is not None:
                endpoints[inbound.recipient] = outcome.endpoint
    _write_outcomes(rows)
    if new_conversations:
        acknowledge_new_conversations(new_conversations, endpoints=endpoints)
    return recorded


def acknowledge_new_conversations(
    arrivals: list[tuple[InboundSms, Interaction]], *, endpoints: dict[str, Endpoint] | None = None
) -> int:
    """Send the acknowledgement SMS of each new conversation whose number asks for one
    (``Endpoint.acknowledge``, off by default: one SMS more each): received, the case
    reference when there is one, and what the channel hooks add (the "follow my request" link,
    ``channels_inbound.hooks.ACKNOWLEDGEMENT_LINES``). Never to a number that sent STOP; a
    failure to send is logged and never undoes the ingestion. Returns how many went.
    ``endpoints``: the endpoint of a number (as received), already read in this transaction
    (by the ingestion): not read again."""
    known = endpoints or {}
    acknowledging = {number: e for number, e in known.items() if e.active and e.acknowledge}
    numbers = {i.recipient for i, _x in arrivals if i.recipient not in known}
    if numbers:
        acknowledging.update(
            (e.address, e)
            for e in Endpoint.objects.filter(
                channel=Channel.SMS, address__in=numbers, active=True, acknowledge=True
            )
        )
    sent = 0
    for inbound, interaction in arrivals:
        endpoint = acknowledging.get(inbound.recipient)
        if endpoint is None:
            continue
        with translation.override(interaction.language or settings.LANGUAGE_CODE):
            case = interaction.case if interaction.case_id else None
            received = (
                _("%(name)s: your message has been received (reference %(reference)s).")
                % {"name": endpoint.name, "reference": case.reference}
                if case is not None
                else _("%(name)s: your message has been received.") % {"name": endpoint.name}
            )
            lines = [render() for render in acknowledgement_lines(interaction)]
            text = " ".join(part for part in (received, *lines) if part).strip()
        try:
            with transaction.atomic():
                do_send_sms(interaction=interaction, text=text, to=inbound.sender)
            sent += 1
        except SmsOptedOut:
            continue  # STOP is honoured, acknowledgement included
        except _CONNECTION_ERRORS:
            raise
        except Exception:
            logger.exception("acknowledgement SMS for interaction #%s not sent", interaction.pk)
    return sent


def _write_outcomes(rows: list[InboundSms]) -> None:
    """Store the rows' state, message, error and processing time: one ``UPDATE ... FROM
    unnest`` on PostgreSQL (``bulk_update``'s ``CASE`` per row costs more to build than to
    run), ``bulk_update`` elsewhere."""
    fields = ["state", "message", "error", "processed_at"]
    if connection.vendor != "postgresql":
        InboundSms.objects.bulk_update(rows, fields)
        return
    table = connection.ops.quote_name(InboundSms._meta.db_table)
    execute_binary(
        f"UPDATE {table} AS r SET state = v.state, message_id = v.message, "  # noqa: S608
        "error = v.error, processed_at = v.at FROM unnest(%b::bigint[], %b::varchar[], "
        "%b::bigint[], %b::text[], %b::timestamptz[]) AS v(id, state, message, error, at) "
        "WHERE r.id = v.id",
        [
            [r.pk for r in rows],
            [str(r.state) for r in rows],
            [r.message_id for r in rows],
            [r.error for r in rows],
            [r.processed_at for r in rows],
        ],
    ).close()


# --- Sending -----------------------------------------------------------------------------------
def _addresses(interaction: Interaction) -> tuple[str | None, str | None]:
    """(citizen number, our number) for replying on ``interaction``."""
    last = (
        InboundSms.objects.filter(message__interaction=interaction)
        .order_by("-id")
        .values("sender", "recipient")
        .first()
    )
    if last:
        return phone_or_none(last["sender"]), phone_or_none(last["recipient"])
    citizen = None
    if interaction.contact_id:
        citizen = (
            ContactIdentity.objects.filter(contact_id=interaction.contact_id, kind="phone")
            .order_by("id")
            .values_list("value", flat=True)
            .first()
        )
    ours = (
        Endpoint.objects.filter(channel=Channel.SMS, queue=interaction.queue, active=True)
        .order_by("id")
        .values_list("address", flat=True)
        .first()
    )
    return citizen, ours


def do_send_sms(
    *,
    interaction: Interaction,
    text: str,
    author: User | None = None,
    to: str | None = None,
) -> OutboundSms:
    """Record an SMS reply on ``interaction`` and send it after the commit.

    Raises :class:`SmsOptedOut` when the citizen sent STOP, :class:`SmsTooLong` over the
    provider's limit and :class:`SmsError` when the text is empty or there is no number to
    send to or from."""
    if not text.strip():
        raise SmsError("empty")
    if sms_length(text) > settings.SMS_MAX_OUTBOUND_CHARS:
        raise SmsTooLong(sms_length(text), settings.SMS_MAX_OUTBOUND_CHARS)
    citizen, ours = _addresses(interaction)
    if to:
        citizen = phone_or_none(to)
    if not citizen:
        raise SmsError("no_recipient")
    if not ours:
        raise SmsError("no_number")
    if is_opted_out(citizen):
        raise SmsOptedOut()
    with transaction.atomic():
        recorded = do_record_message(
            interaction=interaction,
            direction="outbound",
            text=text,
            author=author,
            channel=Channel.SMS,
        )
        Message.objects.filter(pk=recorded.message.pk).update(delivery_status="pending")
        outbound = OutboundSms.objects.create(
            interaction=interaction,
            message=recorded.message,
            to=citizen,
            from_number=ours,
            body=text,
        )
        transaction.on_commit(lambda: _enqueue_send(outbound.pk))
    return outbound


def _enqueue_send(outbound_id: int) -> None:
    from .tasks import send_outbound_sms

    try:
        send_outbound_sms.delay(outbound_id)
    except Exception:  # the broker is down: the SMS stays pending, the sweep sends it
        logger.warning("could not queue outbound SMS #%s; the sweep will send it", outbound_id)


class SendRetryLater(Exception):
    """A transient failure (provider unreachable, stalled, 5xx) with attempts left: the task
    retries after ``countdown`` seconds (:func:`retry_countdown`)."""

    def __init__(self, reason: str, countdown: float) -> None:
        self.countdown = countdown
        super().__init__(reason)


def is_transient(exc: base.ProviderError) -> bool:
    """Worth retrying: unreachable or stalled (nothing known to have been done), a 5xx, or
    429 (rate limited). Any other 4xx is permanent (invalid number, refused content)."""
    if isinstance(exc, base.ProviderUnavailable) or exc.status is None:
        return True
    return exc.status >= 500 or exc.status == 429


def _reason(exc: base.ProviderError) -> str:
    """Why the provider did not take the SMS, in the centre's language (shown to agents)."""
    with translation.override(settings.LANGUAGE_CODE):
        if isinstance(exc, base.ProviderUnavailable) or exc.status is None:
            return _("the SMS provider is unreachable or does not answer")
        if exc.status >= 500 or exc.status == 429:
            return _("the SMS provider is failing (HTTP %(status)s)") % {"status": exc.status}
        return _("the SMS provider refused the message (error %(code)s: %(detail)s)") % {
            "code": exc.code or exc.status,
            "detail": str(exc),
        }


def do_deliver_outbound_sms(*, outbound_id: int, retry: bool = True) -> OutboundSms | None:
    """Hand a pending SMS to the provider (task body; does nothing once it has a provider id).

    Counts the attempt (in the row, so a task redelivered after a worker died counts too). On a
    transient failure with attempts left (of ``OUTBOUND_MAX_ATTEMPTS``, and ``retry``) the SMS
    stays ``pending`` with the reason, the agent's console is told, and :class:`SendRetryLater`
    asks the task to retry; after the last attempt, or at once on a permanent refusal, it ends
    ``failed`` with the reason (in French). The row is locked during the attempt (skipped when
    another worker holds it: a sweep's copy and a retry never send the same SMS twice)."""
    with transaction.atomic():
        outbound = (
            OutboundSms.objects.select_for_update(skip_locked=True)
            .filter(pk=outbound_id, sid__isnull=True)
            .first()
        )
        if outbound is None or outbound.status != "pending":
            return None
        outbound, later = _attempt(outbound, retry=retry)
    if later is not None:
        raise later
    return outbound


def _attempt(outbound: OutboundSms, *, retry: bool) -> tuple[OutboundSms, SendRetryLater | None]:
    from django.urls import reverse

    OutboundSms.objects.filter(pk=outbound.pk).update(attempts=F("attempts") + 1)
    outbound.attempts += 1
    try:
        sent = get_backend().send_sms(
            to=outbound.to,
            from_=outbound.from_number,
            body=outbound.body,
            status_callback=absolute(reverse("twilio-sms-status")),
        )
    except base.RecipientOptedOut as exc:
        _set_status(outbound, "refused", error_code=str(exc.code or ""), error=str(exc))
        instruments.outbound_failed(Channel.SMS, "opted_out")
        SmsOptOut.objects.update_or_create(
            phone=outbound.to, defaults={"active": True, "keyword": "provider"}
        )
        return outbound, None
    except base.ProviderError as exc:
        reason = _reason(exc)
        code = str(exc.code or "")
        last = outbound.attempts >= settings.OUTBOUND_MAX_ATTEMPTS
        if is_transient(exc) and retry and not last:
            retry_in = retry_countdown(outbound.attempts)
            with translation.override(settings.LANGUAGE_CODE):
                reason = _("attempt %(attempt)s failed: %(reason)s; retrying in %(s)s s") % {
                    "attempt": outbound.attempts,
                    "reason": reason,
                    "s": int(retry_in),
                }
            logger.warning("outbound SMS #%s: %s", outbound.pk, exc)
            _set_status(outbound, "pending", error_code=code, error=reason)
            instruments.outbound_retry(Channel.SMS)
            later = SendRetryLater(reason, retry_in)
            later.__cause__ = exc
            return outbound, later
        if is_transient(exc):
            with translation.override(settings.LANGUAGE_CODE):
                reason = _("not sent after %(attempts)s attempts: %(reason)s") % {
                    "attempts": outbound.attempts,
                    "reason": reason,
                }
        logger.error("outbound SMS #%s failed: %s", outbound.pk, exc)
        _set_status(outbound, "failed", error_code=code, error=reason)
        instruments.outbound_failed(Channel.SMS, "exhausted" if is_transient(exc) else "permanent")
        return outbound, None
    OutboundSms.objects.filter(pk=outbound.pk).update(sid=sent.sid)
    outbound.sid = sent.sid
    instruments.outbound_sent(Channel.SMS)
    _apply_status(sent.sid, sent.status, "")
    # A callback may have arrived before we knew the id: apply the furthest one recorded.
    for event in SmsStatusEvent.objects.filter(sid=sent.sid):
        _apply_status(event.sid, event.status, event.error_code)
    outbound.refresh_from_db()
    return outbound, None


OUTBOUND_SWEEP_GRACE_S = 60  # a pending SMS this late past its due attempt is sent again


def do_sweep_outbound_sms() -> int:
    """Safety net: queue again the pending SMS whose sending task was lost (broker down at the
    commit, a scheduled retry lost with its worker): never tried and older than the grace, or
    past their next attempt's time plus the grace. Returns how many were queued."""
    now = timezone.now()
    due = []
    rows = OutboundSms.objects.filter(status="pending", sid__isnull=True).values_list(
        "pk", "attempts", "created_at", "status_at"
    )
    for pk, attempts, created_at, status_at in rows:
        wait = retry_countdown(attempts) if attempts else 0
        since = status_at or created_at
        if (now - since).total_seconds() >= wait + OUTBOUND_SWEEP_GRACE_S:
            due.append(pk)
    for pk in due:
        _enqueue_send(pk)
    return len(due)


def _set_status(outbound: OutboundSms, status: str, *, error_code: str, error: str) -> None:
    OutboundSms.objects.filter(pk=outbound.pk).update(
        status=status, error_code=error_code, error=error[:1000], status_at=timezone.now()
    )
    outbound.status, outbound.error_code, outbound.error = status, error_code, error[:1000]
    _mirror(outbound, status)


def _mirror(outbound: OutboundSms, status: str) -> None:
    """Copy the status onto the interaction's message and tell the consoles (the assigned
    agent's and the supervisors') with ``message.status``: status, attempts and reason."""
    if outbound.message_id:
        Message.objects.filter(pk=outbound.message_id).update(delivery_status=status)
    groups = [SUPERVISORS_GROUP]
    agent_id = (
        Interaction.objects.filter(id=outbound.interaction_id or 0)
        .values_list("assigned_agent_id", flat=True)
        .first()
    )
    if agent_id:
        groups.append(agent_group(agent_id))
    publish(
        *event_catalogue.message_status(
            message_id=outbound.message_id,
            interaction_id=outbound.interaction_id,
            channel=Channel.SMS,
            status=status,
            attempts=outbound.attempts,
            reason=outbound.error,
        ),
        groups=groups,
    )


def _apply_status(sid: str, status: str, error_code: str) -> bool:
    """Move the SMS to ``status`` unless it is already there or further (out-of-order safe)."""
    rank = STATUS_RANK.get(status)
    if rank is None:
        return False
    behind = [name for name, r in STATUS_RANK.items() if r < rank]
    with transaction.atomic():
        updated = OutboundSms.objects.filter(sid=sid, status__in=behind).update(
            status=status, error_code=error_code, status_at=timezone.now()
        )
        if updated:
            outbound = OutboundSms.objects.get(sid=sid)
            _mirror(outbound, status)
    return bool(updated)


def do_record_sms_status(*, status: base.MessageStatus) -> bool:
    """Store a delivery-status callback once per (id, status) and apply it. Returns whether
    this callback was new."""
    try:
        with transaction.atomic():
            SmsStatusEvent.objects.create(
                sid=status.sid, status=status.status, error_code=status.error_code
            )
    except IntegrityError:
        return False
    _apply_status(status.sid, status.status, status.error_code)
    return True
