"""A durable spool for signed SMS webhooks the database cannot take (issue 12).

A provider does not retry an SMS webhook answered 500 (Twilio logs error 11200 and drops the
message unless a Fallback URL is set), so while PostgreSQL is unreachable an SMS answered with
an error is lost. Instead, once the signature is checked and the fields are parsed, an insert
failing with a connection error (:data:`DATABASE_OUTAGE`: the server down or restarting, a
connection terminated, the pool's wait running out) writes the delivery to a file under
``WEBHOOK_SPOOL_DIR`` and the provider gets its normal ``200 <Response/>``:

- one file per delivery, named by provider and MessageSid (a provider's retry of the same SMS
  overwrites its own file), written atomically: a temporary file, ``fsync``, ``os.replace``,
  then the directory is synced;
- the file holds the parsed fields and the reception time (timezone-aware), so the message is
  dated when the citizen sent it, not when it was drained;
- if the file cannot be written either (disk full, read-only), the webhook answers 500 as
  before and says so in the log: the provider then shows the error.

The drain (:func:`drain_spool`) stores spooled deliveries through the webhook's own idempotent
insert (:func:`channels_inbound.sms.actions.do_receive_sms`, ``ON CONFLICT DO NOTHING``: a
delivery spooled twice, or spooled and also stored, is stored once), oldest first, which wakes
the ingestion as a live SMS does; a file is deleted only once its row is committed. It stops at
the first connection error (the database is still away) and keeps the rest.

The spool is on this host's disk, so it is drained where it is written: each web process runs a
small drainer thread (:func:`start_drainer`, started with the process by
:class:`channels_inbound.asgi.FastWebhooks` and by the first spooled delivery) that tries at
start-up, every ``WEBHOOK_SPOOL_DRAIN_SECONDS``, and at once after a live insert succeeds again
following a spooled one. The Celery beat entry ``sms-spool-drain`` (also run by the embedded
scheduler) drains the directory too from a worker that shares it (docker-compose mounts the
same volume on web and workers); a worker on another host simply finds it empty.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psycopg
from django.conf import settings
from django.db import InterfaceError, OperationalError, connections
from django.utils import timezone

from channels_inbound.providers import base
from channels_inbound.sms.actions import ReceivedSms, do_receive_sms

logger = logging.getLogger("channels_inbound.webhooks")

# What a database outage raises: Django's wrappers, and psycopg's own errors where something
# reaches the driver unwrapped (the pool's PoolTimeout is a psycopg.OperationalError).
DATABASE_OUTAGE: tuple[type[Exception], ...] = (
    OperationalError,
    InterfaceError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
)

_SAFE_SID = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
SUFFIX = ".json"


@dataclass(frozen=True)
class SpooledSms:
    provider: str
    sms: base.InboundSms
    received_at: datetime
    path: Path


def spool_dir() -> Path:
    return Path(settings.WEBHOOK_SPOOL_DIR)


def _file_name(provider: str, sid: str) -> str:
    key = sid if _SAFE_SID.match(sid) else hashlib.sha256(sid.encode()).hexdigest()
    return f"sms--{provider}--{key}{SUFFIX}"


def spool_sms(*, sms: base.InboundSms, provider: str, received_at: datetime) -> Path:
    """Write one verified delivery to the spool, durably; raises ``OSError`` when it cannot."""
    directory = spool_dir()
    directory.mkdir(parents=True, exist_ok=True)
    record = {
        "kind": "sms",
        "provider": provider,
        "received_at": received_at.isoformat(),
        "sid": sms.sid,
        "account_sid": sms.account_sid,
        "sender": sms.sender,
        "recipient": sms.recipient,
        "body": sms.body,
        "media": sms.media,
    }
    data = json.dumps(record, ensure_ascii=False).encode("utf-8")
    target = directory / _file_name(provider, sms.sid)
    # Temporary names start with a dot: the drain never reads a half-written file.
    fd, temp = tempfile.mkstemp(prefix=f".{uuid.uuid4().hex}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    _sync_directory(directory)
    return target


def _sync_directory(directory: Path) -> None:
    """Make the rename itself durable (a power cut right after must not undo it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _read(path: Path) -> SpooledSms:
    record = json.loads(path.read_text(encoding="utf-8"))
    received_at = datetime.fromisoformat(record["received_at"])
    if timezone.is_naive(received_at):
        raise ValueError("naive reception time")
    sms = base.InboundSms(
        sid=record["sid"],
        account_sid=record["account_sid"],
        sender=record["sender"],
        recipient=record["recipient"],
        body=record["body"],
        media=list(record.get("media") or []),
    )
    return SpooledSms(record["provider"], sms, received_at, path)


def spooled_files() -> list[Path]:
    directory = spool_dir()
    try:
        return [
            directory / name
            for name in os.listdir(directory)
            if name.endswith(SUFFIX) and not name.startswith(".")
        ]
    except FileNotFoundError:
        return []


def _set_aside(path: Path, exc: Exception) -> None:
    """A file the drain cannot store is kept (never deleted unread) in ``rejected/``."""
    logger.error("spooled webhook %s cannot be stored, kept in rejected/: %s", path.name, exc)
    rejected = path.parent / "rejected"
    rejected.mkdir(exist_ok=True)
    with contextlib.suppress(OSError):
        os.replace(path, rejected / path.name)


_drain_lock = threading.Lock()


def drain_spool() -> int:
    """Store the spooled deliveries, oldest first; return how many were stored (new or not).

    Stops at the first connection error: the database is still away, the rest waits for the
    next attempt. One drain at a time per process (others return 0 at once)."""
    if not _drain_lock.acquire(blocking=False):
        return 0
    drained = 0
    seen: set[Path] = set()  # tried in this run (one set aside but not movable is not retried)
    try:
        while True:
            entries: list[SpooledSms] = []
            for path in spooled_files():
                if path in seen:
                    continue
                seen.add(path)
                try:
                    entries.append(_read(path))
                except FileNotFoundError:
                    continue  # drained meanwhile by another process sharing the directory
                except (OSError, ValueError, KeyError, TypeError) as exc:
                    _set_aside(path, exc)
            if not entries:
                _pending.clear()
                return drained
            entries.sort(key=lambda e: (e.received_at, e.path.name))
            for index, entry in enumerate(entries):
                try:
                    do_receive_sms(
                        sms=entry.sms, provider=entry.provider, received_at=entry.received_at
                    )
                except DATABASE_OUTAGE as exc:
                    note_outage(exc)
                    logger.warning(
                        "webhook spool not drained, database unavailable (%s left): %s",
                        len(entries) - index,
                        exc,
                    )
                    return drained
                except Exception as exc:  # a row the database refuses: keep it aside
                    _set_aside(entry.path, exc)
                    continue
                _outage_over()
                # Committed (autocommit): only now is the file removed.
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
                drained += 1
            logger.info("webhook spool drained: %s deliveries stored", drained)
            # Loop: deliveries spooled while this ran are taken too.
    finally:
        _drain_lock.release()


# --- Receiving through the spool -------------------------------------------------------------
_pending = threading.Event()  # this process spooled something not drained yet
_wake = threading.Event()
_drainer: threading.Thread | None = None
_drainer_lock = threading.Lock()


def receive_sms(
    *, sms: base.InboundSms, provider: str, received_at: datetime | None = None
) -> ReceivedSms:
    """The webhook's action: store once, or spool while the database cannot take it.

    Spooled, the answer is the empty reply: a STOP keyword's confirmation is then not sent (its
    opt-out is recorded when the delivery is drained). Raises the database's error when the
    delivery can be neither stored nor spooled (the webhook then answers 500)."""
    received_at = received_at or timezone.now()
    if outage_suspected():
        spool_or_raise(sms=sms, provider=provider, received_at=received_at)
        return ReceivedSms(True)
    try:
        received = do_receive_sms(sms=sms, provider=provider, received_at=received_at)
    except DATABASE_OUTAGE as exc:
        note_outage(exc)
        spool_or_raise(sms=sms, provider=provider, received_at=received_at, error=exc)
        return ReceivedSms(True)
    if _pending.is_set():
        _wake.set()  # the database answers again: drain now
    return received


def spool_or_raise(
    *,
    sms: base.InboundSms,
    provider: str,
    received_at: datetime,
    error: Exception | None = None,
) -> None:
    try:
        spool_sms(sms=sms, provider=provider, received_at=received_at)
    except OSError:
        logger.exception("SMS %s neither stored nor spooled: answered 500", sms.sid)
        if error is not None:
            raise error from None
        raise
    logger.warning("database unavailable, SMS %s spooled", sms.sid)
    _pending.set()
    start_drainer()


# After a connection error (or a wait the fast path gave up on), the next deliveries are
# spooled without trying the database for WEBHOOK_SPOOL_BYPASS_SECONDS: each would otherwise
# wait for the pool's timeout (DATABASE_POOL_TIMEOUT) holding a thread. A drain that stores
# something ends it at once.
_outage_until = 0.0


def note_outage(error: object) -> None:
    global _outage_until
    if _outage_until <= time.monotonic():
        logger.warning("database unavailable for SMS webhooks, spooling: %s", error)
    _outage_until = time.monotonic() + settings.WEBHOOK_SPOOL_BYPASS_SECONDS


def outage_suspected() -> bool:
    return _outage_until > time.monotonic()


def _outage_over() -> None:
    global _outage_until
    _outage_until = 0.0


def start_drainer() -> None:
    """Start this process's drainer thread (once; not when ``WEBHOOK_SPOOL_DRAIN_SECONDS`` is
    0, e.g. in tests that drain explicitly)."""
    global _drainer
    if settings.WEBHOOK_SPOOL_DRAIN_SECONDS <= 0:
        return
    with _drainer_lock:
        if _drainer is not None and _drainer.is_alive():
            return
        _drainer = threading.Thread(target=_drain_forever, name="webhook-spool", daemon=True)
        _drainer.start()


def _drain_forever() -> None:
    while True:
        interval = settings.WEBHOOK_SPOOL_DRAIN_SECONDS
        if interval <= 0:
            return
        try:
            if spooled_files():
                drain_spool()
        except Exception:
            logger.exception("webhook spool drain failed")
        finally:
            connections.close_all()  # this thread's own connections
        _wake.wait(timeout=interval)
        _wake.clear()
