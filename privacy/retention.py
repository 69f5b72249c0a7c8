"""The retention purge: what each organisation keeps, and removing or anonymising what is due.

For each organisation and data class, rows older than the organisation's duration (its
:class:`~privacy.models.RetentionPolicy`, else :data:`DEFAULT_DAYS`) are emptied or deleted, in
batches of ``PRIVACY_PURGE_BATCH`` rows per transaction. Idempotent: a second run finds
nothing (emptied rows no longer match). Statistics keep counting: interactions, offers,
transitions, queues and timestamps are never touched, only contents.

Nothing under an open interaction goes: the age of conversation data is counted from the end
of its interaction (``closed_at``/``abandoned_at``), and only closed or abandoned ones qualify.
docs/quality-and-privacy.md ("Retention") gives the defaults and their sources.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.db.models import Model, Q, QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone

from interactions.lifecycle import Status
from kernel.audit import log_access

from .models import AccessLog, DataClass, RetentionPolicy

# Days kept by default (docs/quality-and-privacy.md, "Retention", gives each one's source).
DEFAULT_DAYS: dict[str, int] = {
    DataClass.MESSAGES: 3 * 365,
    DataClass.ATTACHMENTS: 365,
    DataClass.RECORDINGS: 183,
    DataClass.CHAT_TRANSCRIPTS: 365,
    DataClass.PROVIDER_PAYLOADS: 90,
    DataClass.CONSOLE_EVENTS: 1,
    DataClass.ACCESS_LOGS: 365,
}
ENDED = (Status.CLOSED, Status.ABANDONED)


def default_days() -> dict[str, int]:
    return {**DEFAULT_DAYS, **getattr(settings, "PRIVACY_RETENTION_DAYS", {})}


def durations(organisation_id: int | None) -> dict[str, int]:
    """The days each class is kept by this organisation (defaults where it set nothing)."""
    days = default_days()
    if organisation_id is not None:
        days.update(
            RetentionPolicy.objects.filter(organisation_id=organisation_id).values_list(
                "data_class", "days"
            )
        )
    return days


def ended_interactions(organisation_id: int | None, cutoff: datetime) -> QuerySet[Any]:
    """Interactions of the organisation closed or abandoned before ``cutoff``."""
    from interactions.models import Interaction

    qs = Interaction.objects.filter(status__in=ENDED).annotate(
        ended=Coalesce("closed_at", "abandoned_at")
    )
    if organisation_id is not None:
        qs = qs.filter(organisation_id=organisation_id)
    return qs.filter(ended__lt=cutoff).values("pk")


# --------------------------------------------------------------------------- attachments


def drop_attachments(entries: list[Any], *, recordings: bool) -> tuple[list[Any], int]:
    """The entries kept and how many went (stored files deleted): recordings (voicemails) or
    the other attachments."""
    kept, gone = [], 0
    for entry in entries:
        is_recording = isinstance(entry, dict) and bool(entry.get("recording"))
        if is_recording != recordings:
            kept.append(entry)
            continue
        gone += 1
        path = entry.get("storage_path") if isinstance(entry, dict) else None
        if path:
            with contextlib.suppress(OSError):
                default_storage.delete(path)
    return kept, gone


# --------------------------------------------------------------------------- the steps


@dataclass(frozen=True)
class Step:
    """One kind of row of a data class: which rows are due, and what happens to them."""

    label: str
    due: Callable[[int | None, datetime], QuerySet[Any]]
    apply: Callable[[QuerySet[Any]], int] | None = None  # None: delete
    changes: dict[str, Any] | None = None  # an update of these fields


def _messages(org: int | None, cutoff: datetime) -> QuerySet[Any]:
    from interactions.models import Message

    return Message.objects.filter(interaction__in=ended_interactions(org, cutoff)).filter(
        ~Q(text="") | ~Q(html="")
    )


def _with_attachments(org: int | None, cutoff: datetime) -> QuerySet[Any]:
    """Messages with attachments (which entries are recordings is read per row, in Python)."""
    from interactions.models import Message

    return Message.objects.filter(interaction__in=ended_interactions(org, cutoff)).exclude(
        attachments=[]
    )


def _apply_attachments(qs: QuerySet[Any], *, recordings: bool) -> int:
    from interactions.models import Message

    gone = 0
    for pk, entries in qs.values_list("pk", "attachments"):
        kept, dropped = drop_attachments(list(entries or []), recordings=recordings)
        if dropped:
            Message.objects.filter(pk=pk).update(attachments=kept)
            gone += dropped
    return gone


def _count_attachments(qs: QuerySet[Any], *, recordings: bool) -> int:
    return sum(
        1
        for entries in qs.values_list("attachments", flat=True)
        for entry in entries or []
        if (isinstance(entry, dict) and bool(entry.get("recording"))) == recordings
    )


def _interaction_rows(model_label: str, field: str = "interaction") -> Callable[..., Any]:
    def due(org: int | None, cutoff: datetime) -> QuerySet[Any]:
        from django.apps import apps

        model = apps.get_model(model_label)
        return model._default_manager.filter(**{f"{field}__in": ended_interactions(org, cutoff)})

    return due


def _not_empty(due: Callable[..., QuerySet[Any]], *fields: str) -> Any:
    """The rows of ``due`` where one of these text fields is not empty yet."""

    def wrapped(org: int | None, cutoff: datetime) -> QuerySet[Any]:
        keep = Q(pk__in=[])
        for name in fields:
            keep |= ~Q(**{name: ""})
        return due(org, cutoff).filter(keep)

    return wrapped


def _inbound_sms(org: int | None, cutoff: datetime) -> QuerySet[Any]:
    from channels_inbound.sms.models import InboundSms

    qs = InboundSms.objects.filter(received_at__lt=cutoff)
    open_ones = ~Q(message__interaction__status__in=ENDED) & Q(message__isnull=False)
    if org is None:
        return qs.filter(message__isnull=True)
    return qs.filter(message__interaction__organisation_id=org).exclude(open_ones)


def _sms_status(org: int | None, cutoff: datetime) -> QuerySet[Any]:
    from channels_inbound.sms.models import SmsStatusEvent

    # Delivery reports carry no organisation: the platform's defaults apply.
    if org is not None:
        return SmsStatusEvent.objects.none()
    return SmsStatusEvent.objects.filter(received_at__lt=cutoff)


def _call_events(org: int | None, cutoff: datetime) -> QuerySet[Any]:
    from channels_inbound.voice.models import CallEvent

    qs = CallEvent.objects.filter(at__lt=cutoff).exclude(data={})
    if org is None:
        return qs.filter(call__endpoint__isnull=True, call__interaction__isnull=True)
    return qs.filter(call__endpoint__organisation_id=org).exclude(
        Q(call__interaction__isnull=False) & ~Q(call__interaction__status__in=ENDED)
    )


def _chat_sessions(org: int | None, cutoff: datetime) -> QuerySet[Any]:
    from channels_inbound.chat.models import ChatSession

    ended = Q(interaction__in=ended_interactions(org, cutoff)) | Q(
        interaction__isnull=True, ended_at__lt=cutoff
    )
    qs = ChatSession.objects.filter(ended)
    if org is not None:
        qs = qs.filter(widget__organisation_id=org)
    return qs.filter(~Q(bot_log=[]) | ~Q(flow_session={}) | ~Q(display_name=""))


def _agent_events(org: int | None, cutoff: datetime) -> QuerySet[Any]:
    from agents.models import AgentProfile
    from console.models import AgentEvent

    qs = AgentEvent.objects.filter(created_at__lt=cutoff)
    agents = AgentProfile.objects.values("pk")
    if org is None:
        return qs.exclude(agent_id__in=agents)
    return qs.filter(agent_id__in=agents.filter(organisation_id=org))


def _access_logs(org: int | None, cutoff: datetime) -> QuerySet[Any]:
    rows = AccessLog.objects.filter(at__lt=cutoff)
    return (
        rows.filter(organisation__isnull=True) if org is None else rows.filter(organisation_id=org)
    )


def _calls_with_recording(org: int | None, cutoff: datetime) -> QuerySet[Any]:
    from channels_inbound.voice.models import Call

    return Call.objects.filter(interaction__in=ended_interactions(org, cutoff)).exclude(
        recording_url=""
    )


STEPS: dict[str, list[Step]] = {
    DataClass.MESSAGES: [
        Step("interactions.message", _messages, changes={"text": "", "html": ""}),
        Step(
            "channels_sms.outboundsms",
            _not_empty(_interaction_rows("channels_sms.OutboundSms"), "body"),
            changes={"body": ""},
        ),
        Step(
            "channels_email.emailthreadentry",
            _not_empty(
                _interaction_rows("channels_email.EmailThreadEntry"), "subject", "references"
            ),
            changes={"subject": "", "references": ""},
        ),
        Step(
            "interactions.interaction(subject)",
            _not_empty(_interaction_rows("interactions.Interaction", "pk"), "subject"),
            changes={"subject": ""},
        ),
        Step(
            "console.interactionwrapup",
            _not_empty(_interaction_rows("console.InteractionWrapUp"), "notes"),
            changes={"notes": ""},
        ),
    ],
    DataClass.ATTACHMENTS: [
        Step(
            "interactions.message(attachments)",
            _with_attachments,
            apply=lambda qs: _apply_attachments(qs, recordings=False),
        )
    ],
    DataClass.RECORDINGS: [
        Step(
            "interactions.message(recordings)",
            _with_attachments,
            apply=lambda qs: _apply_attachments(qs, recordings=True),
        ),
        Step("channels_voice.call", _calls_with_recording, changes={"recording_url": ""}),
    ],
    DataClass.CHAT_TRANSCRIPTS: [
        Step(
            "channels_chat.chatsession",
            _chat_sessions,
            changes={"bot_log": [], "flow_session": {}, "display_name": ""},
        )
    ],
    DataClass.PROVIDER_PAYLOADS: [
        Step("channels_sms.inboundsms", _inbound_sms),
        Step("channels_sms.smsstatusevent", _sms_status),
        Step("channels_voice.callevent", _call_events, changes={"data": {}}),
    ],
    DataClass.CONSOLE_EVENTS: [Step("console.agentevent", _agent_events)],
    DataClass.ACCESS_LOGS: [Step("privacy.accesslog", _access_logs)],
}


# --------------------------------------------------------------------------- running it


@dataclass
class Line:
    organisation_id: int | None
    data_class: str
    step: str
    days: int
    count: int


def _count(step: Step, qs: QuerySet[Any]) -> int:
    if step.label == "interactions.message(attachments)":
        return _count_attachments(qs, recordings=False)
    if step.label == "interactions.message(recordings)":
        return _count_attachments(qs, recordings=True)
    return qs.count()


@contextlib.contextmanager
def purge_transaction() -> Iterator[None]:
    """A transaction in which the access log's append-only trigger lets rows be deleted."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config('cc.retention_purge', 'on', true)")
            yield
            return
        connection.cc_retention_purge = True  # type: ignore[attr-defined]
        try:  # SQLite: read by the connection's cc_retention_purge() (privacy.triggers)
            yield
        finally:
            connection.cc_retention_purge = False  # type: ignore[attr-defined]


def _run_step(step: Step, qs: QuerySet[Any], batch: int) -> int:
    """Apply ``step`` to the rows of ``qs`` in batches (keyset order: rows a step keeps, such as
    a message left with only its recordings, are not read again)."""
    done, last = 0, None
    model: type[Model] = qs.model
    while True:
        page = qs.order_by("pk")
        if last is not None:
            page = page.filter(pk__gt=last)
        ids = list(page.values_list("pk", flat=True)[:batch])
        if not ids:
            return done
        last = ids[-1]
        rows = model._default_manager.filter(pk__in=ids)
        with purge_transaction():
            if step.apply is not None:
                done += step.apply(rows)
            elif step.changes is not None:
                done += rows.update(**step.changes)
            else:
                done += rows.delete()[1].get(model._meta.label, 0)


def organisations() -> list[int | None]:
    from organisations.models import Organisation

    return [*Organisation.objects.order_by("pk").values_list("pk", flat=True), None]


def purge(*, now: datetime | None = None, dry_run: bool = False) -> list[Line]:
    """Remove (or, with ``dry_run``, count) what is due for every organisation; one line per
    organisation, class and kind of row with something due. ``None``: rows of no organisation
    (delivery reports, SMS never recorded), under the platform's defaults."""
    now = now or timezone.now()
    batch = int(getattr(settings, "PRIVACY_PURGE_BATCH", 500))
    lines = []
    for org in organisations():
        days = durations(org)
        for data_class, steps in STEPS.items():
            cutoff = now - timedelta(days=days[data_class])
            for step in steps:
                qs = step.due(org, cutoff)
                count = _count(step, qs) if dry_run else _run_step(step, qs, batch)
                if count:
                    lines.append(Line(org, str(data_class), step.label, days[data_class], count))
    if not dry_run and lines:
        for org in {line.organisation_id for line in lines}:
            log_access(
                None,
                "purge",
                organisation_id=org,
                removed={
                    f"{ln.data_class}:{ln.step}": ln.count
                    for ln in lines
                    if ln.organisation_id == org
                },
            )
    return lines
