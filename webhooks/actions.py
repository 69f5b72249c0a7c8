"""Recording events for the subscriptions that want them, and delivering them.

- :func:`record_event` writes one :class:`~webhooks.models.Delivery` per active subscription
  of the event's organisation, in the caller's transaction (so the event is kept exactly when
  the change that caused it is), and queues the sending task after the commit.
- :func:`do_attempt_delivery` makes one attempt: it takes the row for the attempt (a lease),
  signs and posts the body, and logs the attempt; on failure it schedules the next one
  (exponential back-off with jitter) or gives up after ``WEBHOOK_MAX_ATTEMPTS``, and disables the
  subscription after ``WEBHOOK_DISABLE_AFTER_FAILURES`` failed attempts in a row.
- :func:`do_sweep` sends what is due and nobody is sending (a task lost with the broker or a
  worker; on the embedded default, every delivery), and prunes the old log.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import F, Q
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from . import signing, targets
from .models import TEST_EVENT, Delivery, DeliveryAttempt, Event, Subscription

logger = logging.getLogger(__name__)

USER_AGENT = "contactcentre-webhooks/1"
_jitter = random.SystemRandom()

# --------------------------------------------------------------------------- which organisations

# The organisations with at least one active subscription, read at most every
# WEBHOOK_SUBSCRIPTION_CACHE_SECONDS per process: the hot paths (every status change) skip
# the query for the others. A stale "yes" costs one query; a subscription made in another
# process is seen within that delay; this process' own saves clear it at once.
_orgs_lock = threading.Lock()
_orgs_cache: tuple[float, frozenset[int]] | None = None


def forget_subscriptions(**_: Any) -> None:
    global _orgs_cache
    with _orgs_lock:
        _orgs_cache = None


def organisations_with_subscriptions() -> frozenset[int]:
    global _orgs_cache
    now = time.monotonic()
    cached = _orgs_cache
    if cached is not None and cached[0] > now:
        return cached[1]
    orgs = frozenset(
        Subscription.objects.filter(active=True).values_list("organisation_id", flat=True)
    )
    with _orgs_lock:
        _orgs_cache = (now + settings.WEBHOOK_SUBSCRIPTION_CACHE_SECONDS, orgs)
    return orgs


# --------------------------------------------------------------------------- recording


@dataclass(frozen=True)
class Occurrence:
    organisation_id: int
    event: str
    data: dict[str, Any]
    at: datetime


def body_of(
    *, event: str, event_id: uuid.UUID, at: datetime, organisation: dict[str, Any], data: Any
) -> str:
    """The JSON body (compact, keys sorted): the bytes signed and sent on every attempt."""
    return json.dumps(
        {
            "id": str(event_id),
            "event": event,
            "created_at": at.isoformat(),
            "organisation": organisation,
            "data": data,
        },
        separators=(",", ":"),
        sort_keys=True,
        ensure_ascii=False,
    )


def record_events(occurrences: Iterable[Occurrence]) -> list[int]:
    """Write the deliveries of these events (caller's transaction); the ids written.

    Never breaks the caller's write: a failure is logged (in a savepoint) and the change
    goes on without its webhooks."""
    wanted = [o for o in occurrences if o.organisation_id in organisations_with_subscriptions()]
    if not wanted:
        return []
    try:
        with transaction.atomic():
            ids = _write(wanted)
    except DatabaseError:
        logger.exception("could not record %d webhook event(s)", len(wanted))
        return []
    if ids:
        transaction.on_commit(lambda: enqueue(ids), robust=True)
    return ids


def _write(occurrences: list[Occurrence]) -> list[int]:
    subscriptions: dict[int, list[tuple[int, list[str], str]]] = {}
    for pk, org_id, events, slug in Subscription.objects.filter(
        active=True, organisation_id__in={o.organisation_id for o in occurrences}
    ).values_list("pk", "organisation_id", "events", "organisation__slug"):
        subscriptions.setdefault(org_id, []).append((pk, list(events or []), slug))
    rows: list[Delivery] = []
    for occurrence in occurrences:
        receivers = [
            (pk, slug)
            for pk, events, slug in subscriptions.get(occurrence.organisation_id, [])
            if occurrence.event in events
        ]
        if not receivers:
            continue
        event_id = uuid.uuid4()
        body = body_of(
            event=occurrence.event,
            event_id=event_id,
            at=occurrence.at,
            organisation={"id": occurrence.organisation_id, "slug": receivers[0][1]},
            data=occurrence.data,
        )
        rows += [
            Delivery(
                subscription_id=pk,
                event=occurrence.event,
                event_id=event_id,
                body=body,
                next_attempt_at=occurrence.at,
                created_at=occurrence.at,
            )
            for pk, _slug in receivers
        ]
    if not rows:
        return []
    return [row.pk for row in Delivery.objects.bulk_create(rows)]


def enqueue(ids: list[int]) -> None:
    """Queue the sending tasks (after the commit). Eager tasks (embedded default, tests) would
    post in the middle of the request that caused the event: the sweep sends them instead."""
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return
    from .tasks import deliver

    for pk in ids:
        try:
            deliver.apply_async((pk,))
        except Exception:  # the broker is down: the row stays pending, the sweep sends it
            logger.warning("could not queue webhook delivery #%s; the sweep will send it", pk)
            return


# --------------------------------------------------------------------------- delivering


def backoff_seconds(attempt: int) -> float:
    """The wait after failed attempt number ``attempt`` (1-based): doubling from
    ``WEBHOOK_RETRY_BACKOFF_S``, capped at ``WEBHOOK_RETRY_MAX_BACKOFF_S``, then jittered
    (between half and all of it), so receivers coming back up are not hit all at once."""
    base = settings.WEBHOOK_RETRY_BACKOFF_S * 2 ** (attempt - 1)
    capped = min(float(settings.WEBHOOK_RETRY_MAX_BACKOFF_S), base)
    return capped / 2 + _jitter.uniform(0, capped / 2)


def lease_seconds() -> float:
    return settings.WEBHOOK_CONNECT_TIMEOUT_S + settings.WEBHOOK_TIMEOUT_S + 30


@dataclass(frozen=True)
class Outcome:
    delivery: Delivery
    answer: targets.Answer
    retry_in: float | None  # seconds until the next attempt, when there is one


def _take(delivery_id: int, now: datetime, *, test: bool) -> Delivery | None:
    """Take the row for one attempt (counted at once, so an attempt whose worker died counts)."""
    rows = Delivery.objects.filter(
        Q(lease_until__isnull=True) | Q(lease_until__lt=now),
        pk=delivery_id,
        status=Delivery.Status.PENDING,
    )
    if not test:
        rows = rows.filter(next_attempt_at__lte=now, subscription__active=True)
    taken = rows.update(
        attempts=F("attempts") + 1, lease_until=now + timedelta(seconds=lease_seconds())
    )
    if taken != 1:
        return None
    return Delivery.objects.select_related("subscription").get(pk=delivery_id)


def headers_for(delivery: Delivery, body: bytes, timestamp: int) -> dict[str, str]:
    return {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": USER_AGENT,
        "X-Webhook-Id": str(delivery.event_id),
        "X-Webhook-Event": delivery.event,
        "X-Webhook-Attempt": str(delivery.attempts),
        "X-Webhook-Timestamp": str(timestamp),
        signing.SIGNATURE_HEADER: signing.signature_header(
            delivery.subscription.secret, timestamp, body
        ),
    }


def do_attempt_delivery(delivery_id: int, *, now: datetime | None = None) -> Outcome | None:
    """One attempt of a due delivery (None when it is not due, done, or under way elsewhere)."""
    now = now or timezone.now()
    delivery = _take(delivery_id, now, test=False)
    if delivery is None:
        return None
    return _send(delivery)


def _send(delivery: Delivery, *, test: bool = False) -> Outcome:
    body = delivery.body.encode()
    with translation.override(settings.LANGUAGE_CODE):
        answer = targets.post(
            delivery.subscription.url, body, headers_for(delivery, body, int(time.time()))
        )
        error = answer.error
        if not answer.ok and not error and answer.status is not None:
            error = _("the receiver answered HTTP %(status)s") % {"status": answer.status}
        retry_in = _record(delivery, answer, error, test=test)
    return Outcome(delivery, answer, retry_in)


def _record(delivery: Delivery, answer: targets.Answer, error: str, *, test: bool) -> float | None:
    now = timezone.now()
    retry_in: float | None = None
    with transaction.atomic():
        DeliveryAttempt.objects.create(
            delivery=delivery,
            number=DeliveryAttempt.objects.filter(delivery=delivery).count() + 1,
            at=now,
            status_code=answer.status,
            duration_ms=answer.duration_ms,
            error=error[:500],
        )
        fields: dict[str, Any] = {
            "lease_until": None,
            "last_status_code": answer.status,
            "last_error": error[:500],
        }
        if answer.ok:
            fields.update(status=Delivery.Status.DELIVERED, delivered_at=now)
        elif test or delivery.attempts >= settings.WEBHOOK_MAX_ATTEMPTS:
            fields["status"] = Delivery.Status.FAILED
        else:
            retry_in = backoff_seconds(delivery.attempts)
            fields["next_attempt_at"] = now + timedelta(seconds=retry_in)
        Delivery.objects.filter(pk=delivery.pk).update(**fields)
        for name, value in fields.items():
            setattr(delivery, name, value)
        if not test:
            _count(delivery.subscription, ok=answer.ok, error=error, now=now)
    return retry_in


def _count(subscription: Subscription, *, ok: bool, error: str, now: datetime) -> None:
    """Failed attempts in a row, per subscription; past the limit it is switched off."""
    rows = Subscription.objects.filter(pk=subscription.pk)
    if ok:
        rows.filter(consecutive_failures__gt=0).update(consecutive_failures=0)
        return
    rows.update(consecutive_failures=F("consecutive_failures") + 1)
    failures = rows.values_list("consecutive_failures", flat=True).first() or 0
    limit = settings.WEBHOOK_DISABLE_AFTER_FAILURES
    if limit and failures >= limit:
        reason = _(
            "Disabled after %(count)d failed attempts in a row (last: %(error)s). Correct the "
            "receiver, then tick “active” again: the deliveries still pending will be sent."
        ) % {"count": failures, "error": error or "?"}
        disabled = rows.filter(active=True).update(
            active=False, disabled_at=now, disabled_reason=reason[:500]
        )
        if disabled:
            forget_subscriptions()
            logger.warning("webhook subscription #%s disabled: %s", subscription.pk, reason)


# --------------------------------------------------------------------------- test delivery


def do_send_test_delivery(subscription: Subscription) -> Outcome:
    """Send a ``webhook.test`` event to ``subscription`` now (even when it is inactive), once:
    the admin's button. Logged like any delivery; it does not count towards disabling."""
    now = timezone.now()
    event_id = uuid.uuid4()
    delivery = Delivery.objects.create(
        subscription=subscription,
        event=TEST_EVENT,
        event_id=event_id,
        body=body_of(
            event=TEST_EVENT,
            event_id=event_id,
            at=now,
            organisation={
                "id": subscription.organisation_id,
                "slug": subscription.organisation.slug,
            },
            data={"subscription_id": subscription.pk, "events": list(subscription.events or [])},
        ),
        next_attempt_at=now,
        created_at=now,
        is_test=True,
    )
    taken = _take(delivery.pk, now, test=True)
    assert taken is not None  # just created
    return _send(taken, test=True)


# --------------------------------------------------------------------------- the sweep

SWEEP_BATCH = 500
# With a broker, a delivery this late past its due time has lost its task: queued again.
SWEEP_GRACE_SECONDS = 30
# On the embedded default the sweep posts itself, and stops after this long (the next run goes
# on), so a stalled receiver does not hold the other periodic jobs.
EMBEDDED_BUDGET_SECONDS = 5.0
PRUNE_BATCH = 1000


def due_ids(now: datetime, *, grace: float) -> list[int]:
    return list(
        Delivery.objects.filter(
            Q(lease_until__isnull=True) | Q(lease_until__lt=now),
            status=Delivery.Status.PENDING,
            next_attempt_at__lte=now - timedelta(seconds=grace),
            subscription__active=True,
        )
        .order_by("next_attempt_at", "id")
        .values_list("pk", flat=True)[:SWEEP_BATCH]
    )


def do_sweep(*, now: datetime | None = None) -> int:
    """Send (embedded default) or queue again (with a broker) the due deliveries nobody is
    sending; prune the old log. Returns how many were sent or queued."""
    now = now or timezone.now()
    handled = 0
    if settings.CELERY_TASK_ALWAYS_EAGER:
        started = time.monotonic()
        for pk in due_ids(now, grace=0):
            if time.monotonic() - started > EMBEDDED_BUDGET_SECONDS:
                break
            if do_attempt_delivery(pk) is not None:
                handled += 1
    else:
        ids = due_ids(now, grace=SWEEP_GRACE_SECONDS)
        enqueue(ids)
        handled = len(ids)
    do_prune(now=now)
    return handled


def do_prune(*, now: datetime | None = None) -> int:
    """Delete delivered and failed deliveries (and their attempts) older than
    ``WEBHOOK_LOG_RETENTION_DAYS``; pending ones stay until they are sent."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.WEBHOOK_LOG_RETENTION_DAYS)
    old = list(
        Delivery.objects.filter(created_at__lt=cutoff)
        .exclude(status=Delivery.Status.PENDING)
        .values_list("pk", flat=True)[:PRUNE_BATCH]
    )
    if not old:
        return 0
    deleted, _rows = Delivery.objects.filter(pk__in=old).delete()
    return deleted


def do_retry_now(deliveries: Iterable[Delivery]) -> int:
    """The admin's "send again": failed (or waiting) deliveries are due at once, with a fresh
    count of attempts."""
    ids = [d.pk for d in deliveries if d.status != Delivery.Status.DELIVERED and not d.is_test]
    if not ids:
        return 0
    count = Delivery.objects.filter(pk__in=ids).update(
        status=Delivery.Status.PENDING, attempts=0, next_attempt_at=timezone.now(), lease_until=None
    )
    transaction.on_commit(lambda: enqueue(ids), robust=True)
    return count


def subscribed_events() -> list[str]:
    return [str(value) for value in Event.values]
