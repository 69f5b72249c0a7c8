"""Provider media (MMS pictures, voicemail recordings): fetched with the account's credentials
once the message is recorded, checked, stored like e-mail attachments, served to agents by the
console's attachment route.

A provider does not send the media in its webhook, only an address on its API
(``MediaUrl{i}``, ``RecordingUrl``) that answers only to the account's credentials (Twilio:
HTTP Basic with the Account SID and Auth Token, ``TWILIO_ACCOUNT_SID`` / ``TWILIO_AUTH_TOKEN``),
then redirects to a temporary storage address. The ingest paths record each medium on the
message (``Message.attachments``) with ``"fetch": "pending"`` and the provider's address, and ask
for :func:`request_fetch` after their commit. The task ``channels_media.fetch`` (on the
``outbound`` queue: it calls the provider) then, for each pending entry:

- sends the credentials only to the provider's own origins (``PROVIDER_MEDIA_ORIGINS`` and the
  origin of ``TWILIO_API_BASE_URL``), follows its redirects without them, with the connect and
  read timeouts of every provider call (``PROVIDER_CONNECT_TIMEOUT_S`` / ``_READ_TIMEOUT_S``);
- refuses a medium larger than ``MEDIA_MAX_BYTES`` (stops reading past it), of a type outside
  ``MEDIA_ALLOWED_TYPES``, or whose bytes are not what its type says;
- stores it under ``MEDIA_ROOT/PROVIDER_MEDIA_DIR`` with the default storage, as e-mail
  attachments are (``storage_path``, ``size``, ``sha256``, ``content_type``): the console's
  route ``/console/messages/<id>/attachments/<index>/`` serves it;
- retries transient failures (unreachable, stalled, 5xx, 429, and a recording not yet available)
  with the outbound SMS back-off, ``OUTBOUND_MAX_ATTEMPTS`` attempts counted on the entry (with
  a broker the task schedules its retry; run eagerly, the sweep runs it once due); after the
  last one, or at once on a permanent failure, the entry is marked ``"fetch": "unavailable"``
  with a reason code the console shows ("media unavailable: ...").

Idempotent: the message row is locked during a fetch (a second copy of the task skips it) and
only pending entries are fetched, so a redelivered task stores nothing twice. The beat entry
``provider-media-sweep`` queues again the messages whose task was lost.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.template.defaultfilters import filesizeformat
from django.utils import timezone, translation
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from channels_inbound.providers import outbound_retry_countdown as retry_countdown
from interactions.channels import PHONE_CHANNELS
from interactions.models import Message

logger = logging.getLogger(__name__)

PENDING, STORED, UNAVAILABLE = "pending", "stored", "unavailable"
MAX_REDIRECTS = 5
CHUNK = 64 * 1024
SWEEP_GRACE_S = 60  # a pending medium this late past its due attempt is queued again
SWEEP_WINDOW = timedelta(days=2)  # messages older than this are no longer swept
RECORDING_EXTENSION = ".mp3"  # Twilio serves a recording as MP3 when ".mp3" is appended

EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "audio/mpeg": ".mp3",
    "audio/wav": ".wav",
    "audio/x-wav": ".wav",
    "audio/ogg": ".ogg",
    "audio/amr": ".amr",
    "audio/mp4": ".m4a",
    "application/pdf": ".pdf",
}
TYPE_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg", "audio/mp3": "audio/mpeg"}

# Why a medium is unavailable, as the console says it (after "media unavailable: ").
REASONS = {
    "unauthorized": _("the provider refused our credentials (HTTP %(status)s)"),
    "not_found": _("the provider no longer has it"),
    "refused": _("the provider refused the request (HTTP %(status)s)"),
    "unreachable": _("the provider could not be reached after %(attempts)s attempts"),
    "too_large": _("larger than the %(limit)s limit"),
    "type_not_allowed": _("files of type %(type)s are not accepted"),
    "type_mismatch": _("its content is not the %(type)s it claims to be"),
    "untrusted_url": _("its address is not on the provider's API"),
    "no_credentials": _("no provider credentials are configured"),
}


def _sniffers() -> dict[str, Any]:
    def riff(kind: bytes) -> Any:
        return lambda b: b[:4] == b"RIFF" and b[8:12] == kind

    def mp3(b: bytes) -> bool:
        return b[:3] == b"ID3" or (len(b) > 1 and b[0] == 0xFF and b[1] & 0xE0 == 0xE0)

    return {
        "image/jpeg": lambda b: b[:3] == b"\xff\xd8\xff",
        "image/png": lambda b: b[:8] == b"\x89PNG\r\n\x1a\n",
        "image/gif": lambda b: b[:6] in (b"GIF87a", b"GIF89a"),
        "image/webp": riff(b"WEBP"),
        "audio/mpeg": mp3,
        "audio/wav": riff(b"WAVE"),
        "audio/x-wav": riff(b"WAVE"),
        "audio/ogg": lambda b: b[:4] == b"OggS",
        "audio/amr": lambda b: b[:6] == b"#!AMR\n",
        "audio/mp4": lambda b: b[4:8] == b"ftyp",
        "application/pdf": lambda b: b[:5] == b"%PDF-",
    }


# What each accepted type's bytes start with: a medium whose bytes say otherwise is refused (a
# type the table does not know is refused too: it cannot be checked).
SNIFFERS = _sniffers()


def normalise_type(declared: str) -> str:
    value = (declared or "").split(";")[0].strip().lower()
    return TYPE_ALIASES.get(value, value)


# --- Entries -----------------------------------------------------------------------------------
def pending_entry(
    *, name: str, url: str, content_type: str = "", recording: bool = False, **extra: Any
) -> dict[str, Any]:
    """The ``Message.attachments`` entry of a provider medium not fetched yet."""
    entry: dict[str, Any] = {
        "name": name,
        "content_type": normalise_type(content_type),
        "url": url,
        "fetch": PENDING,
        "attempts": 0,
        **extra,
    }
    if recording:
        entry["recording"] = True
    return entry


def is_pending(entry: Any) -> bool:
    return isinstance(entry, dict) and entry.get("fetch") == PENDING


def unavailable_text(entry: dict[str, Any]) -> str:
    """ "media unavailable: <reason>" in the active language ("" when it is not unavailable)."""
    if entry.get("fetch") != UNAVAILABLE:
        return ""
    template = REASONS.get(str(entry.get("unavailable", "")))
    params = dict(entry.get("unavailable_params") or {})
    if "limit" in params:
        params["limit"] = filesizeformat(params["limit"])
    reason = str(template) % params if template is not None else str(entry.get("error", ""))
    return gettext("media unavailable: %(reason)s") % {"reason": reason}


def pending_text(entry: dict[str, Any]) -> str:
    return gettext("being fetched from the provider") if is_pending(entry) else ""


# --- Fetching ----------------------------------------------------------------------------------
class MediaUnavailable(Exception):
    """A permanent failure: retrying cannot help (refused, too large, wrong type...)."""

    def __init__(self, code: str, detail: str, **params: Any) -> None:
        self.code = code
        self.params = params
        super().__init__(detail)


class MediaRetryable(Exception):
    """A transient failure: the provider may answer later (unreachable, 5xx, 429, not ready)."""


@dataclass(frozen=True)
class Fetched:
    content: bytes
    content_type: str


def trusted_origins() -> set[str]:
    origins = {o.rstrip("/").lower() for o in settings.PROVIDER_MEDIA_ORIGINS if o}
    if settings.TWILIO_API_BASE_URL:
        parts = urlsplit(settings.TWILIO_API_BASE_URL)
        origins.add(f"{parts.scheme}://{parts.netloc}".lower())
    return origins


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _credentials() -> tuple[str, str]:
    sid, token = settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN
    if not sid or not token:
        raise MediaUnavailable("no_credentials", "TWILIO_ACCOUNT_SID/TWILIO_AUTH_TOKEN not set")
    return sid, token


def media_url(entry: dict[str, Any]) -> str:
    """The address to download: a recording's address with the format appended."""
    url = str(entry.get("url", ""))
    if entry.get("recording") and not url.lower().endswith((".mp3", ".wav")):
        return url + RECORDING_EXTENSION
    return url


def download(url: str, *, recording: bool = False) -> Fetched:
    """GET a provider medium: credentials to the provider's origin only, redirects followed
    (without them) up to :data:`MAX_REDIRECTS`, size capped while reading."""
    if _origin(url) not in trusted_origins():
        raise MediaUnavailable("untrusted_url", f"{_origin(url)} is not a provider origin")
    auth = _credentials()
    timeout = (float(settings.PROVIDER_CONNECT_TIMEOUT_S), float(settings.PROVIDER_READ_TIMEOUT_S))
    limit = int(settings.MEDIA_MAX_BYTES)
    current = url
    with requests.Session() as session:
        session.trust_env = False  # no proxy or .netrc credentials from the environment
        for _hop in range(MAX_REDIRECTS + 1):
            send_auth = _origin(current) in trusted_origins()
            try:
                response = session.get(
                    current,
                    auth=auth if send_auth else None,
                    stream=True,
                    allow_redirects=False,
                    timeout=timeout,
                )
            except requests.RequestException as exc:
                raise MediaRetryable(f"provider unreachable: {exc}") from exc
            with response:
                if response.is_redirect:
                    location = response.headers.get("Location", "")
                    current = urljoin(current, location)
                    if urlsplit(current).scheme not in ("http", "https"):
                        raise MediaUnavailable("refused", f"redirect to {current!r}", status=0)
                    continue
                return _read(response, recording=recording, limit=limit, provider=send_auth)
    raise MediaUnavailable("refused", "too many redirects", status=response.status_code)


def _read(response: requests.Response, *, recording: bool, limit: int, provider: bool) -> Fetched:
    """The final answer: from the provider's API itself (``provider``) or its storage."""
    status = response.status_code
    if status in (401, 403) and not provider:
        # The temporary storage address expired: the next attempt gets a fresh one.
        raise MediaRetryable(f"storage address refused (HTTP {status})")
    if status in (401, 403):
        raise MediaUnavailable("unauthorized", f"HTTP {status}", status=status)
    if status == 404 and recording:
        # A recording may not be available yet when the provider posts its address.
        raise MediaRetryable("recording not available yet (HTTP 404)")
    if status == 404 or status == 410:
        raise MediaUnavailable("not_found", f"HTTP {status}")
    if status >= 500 or status == 429:
        raise MediaRetryable(f"provider failing (HTTP {status})")
    if status != 200:
        raise MediaUnavailable("refused", f"HTTP {status}", status=status)
    content_type = normalise_type(response.headers.get("Content-Type", ""))
    allowed = {normalise_type(t) for t in settings.MEDIA_ALLOWED_TYPES}
    if content_type not in allowed:
        raise MediaUnavailable(
            "type_not_allowed", f"type {content_type!r}", type=content_type or "?"
        )
    too_large = MediaUnavailable("too_large", f"over {limit} bytes", limit=limit)
    try:
        if int(response.headers.get("Content-Length") or 0) > limit:
            raise too_large
    except ValueError:
        pass
    chunks, size = [], 0
    try:
        for chunk in response.iter_content(CHUNK):
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
    except requests.RequestException as exc:
        raise MediaRetryable(f"download interrupted: {exc}") from exc
    content = b"".join(chunks)
    sniff = SNIFFERS.get(content_type)
    if sniff is None or not sniff(content):
        raise MediaUnavailable("type_mismatch", f"bytes are not {content_type}", type=content_type)
    return Fetched(content, content_type)


def _store(entry: dict[str, Any], fetched: Fetched, index: int) -> dict[str, Any]:
    today = timezone.localdate()
    suffix = EXTENSIONS.get(fetched.content_type, "")
    path = f"{settings.PROVIDER_MEDIA_DIR}/{today:%Y/%m}/{uuid.uuid4().hex}{suffix}"
    stem = "voicemail" if entry.get("recording") else "media"
    return {
        **entry,
        "name": f"{stem}-{index + 1}{suffix}",
        "content_type": fetched.content_type,
        "size": len(fetched.content),
        "sha256": hashlib.sha256(fetched.content).hexdigest(),
        "storage_path": default_storage.save(path, ContentFile(fetched.content)),
        "fetch": STORED,
        "fetched_at": timezone.now().isoformat(),
    }


class FetchRetryLater(Exception):
    """Some media failed transiently with attempts left: retry after ``countdown`` seconds."""

    def __init__(self, reason: str, countdown: float) -> None:
        self.countdown = countdown
        super().__init__(reason)


def do_fetch_message_media(*, message_id: int, retry: bool = True) -> Message | None:
    """Fetch the pending provider media of a message (the task's body). Returns the message, or
    None when there was nothing to do (no pending media, or another worker holds it).

    Raises :class:`FetchRetryLater` when a medium failed transiently and has attempts left (of
    ``OUTBOUND_MAX_ATTEMPTS``, and ``retry``); it then stays pending with the last error."""
    stored: list[str] = []
    try:
        with transaction.atomic():
            message = (
                Message.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("interaction")
                .filter(pk=message_id)
                .first()
            )
            if message is None:
                return None
            entries = list(message.attachments or [])
            todo = [i for i, entry in enumerate(entries) if is_pending(entry)]
            if not todo:
                return None
            later: FetchRetryLater | None = None
            for index in todo:
                entries[index], wait = _attempt(dict(entries[index]), index, retry=retry)
                if entries[index].get("storage_path"):
                    stored.append(entries[index]["storage_path"])
                if wait is not None:
                    later = FetchRetryLater(str(entries[index]["error"]), max(wait, 0))
            Message.objects.filter(pk=message.pk).update(attachments=entries)
            message.attachments = entries
            _publish(message)
    except BaseException:
        for path in stored:  # rolled back: the files this run wrote are nobody's
            default_storage.delete(path)
        raise
    if later is not None:
        raise later
    return message


def _attempt(entry: dict[str, Any], index: int, *, retry: bool) -> tuple[dict[str, Any], Any]:
    """One attempt at one entry: (the entry updated, seconds before the next attempt or None)."""
    entry["attempts"] = int(entry.get("attempts") or 0) + 1
    entry["attempted_at"] = timezone.now().isoformat()
    try:
        fetched = download(media_url(entry), recording=bool(entry.get("recording")))
    except MediaUnavailable as exc:
        logger.warning("provider medium %s unavailable: %s", entry.get("url"), exc)
        return _unavailable(entry, exc.code, str(exc), exc.params), None
    except MediaRetryable as exc:
        last = entry["attempts"] >= settings.OUTBOUND_MAX_ATTEMPTS
        logger.warning(
            "provider medium %s, attempt %s: %s", entry.get("url"), entry["attempts"], exc
        )
        if retry and not last:
            entry["error"] = str(exc)[:500]
            return entry, retry_countdown(entry["attempts"])
        return _unavailable(entry, "unreachable", str(exc), {"attempts": entry["attempts"]}), None
    return _store(entry, fetched, index), None


def _unavailable(
    entry: dict[str, Any], code: str, detail: str, params: dict[str, Any]
) -> dict[str, Any]:
    return {
        **entry,
        "fetch": UNAVAILABLE,
        "unavailable": code,
        "unavailable_params": params,
        "error": detail[:500],
    }


def _publish(message: Message) -> None:
    """Tell the assigned agent's consoles and the supervisors the message's media changed."""
    from kernel import event_catalogue
    from kernel.events import SUPERVISORS_GROUP, agent_group, publish

    groups = [SUPERVISORS_GROUP]
    if message.interaction.assigned_agent_id:
        groups.append(agent_group(message.interaction.assigned_agent_id))
    with translation.override(settings.LANGUAGE_CODE):
        media = [
            {
                "index": i,
                "state": entry.get("fetch", ""),
                "reason": unavailable_text(entry),
            }
            for i, entry in enumerate(message.attachments)
            if isinstance(entry, dict) and "fetch" in entry
        ]
    publish(
        *event_catalogue.message_media(
            message_id=message.pk, interaction_id=message.interaction_id, media=media
        ),
        groups=groups,
    )


# --- Queueing ----------------------------------------------------------------------------------
def request_fetch(message_id: int) -> None:
    """Queue the fetch of a message's provider media once the current transaction commits (a
    lost task is queued again by the sweep)."""

    def send() -> None:
        from .tasks import fetch_provider_media

        try:
            fetch_provider_media.delay(message_id)
        except Exception:  # the broker is down: the sweep queues it again
            logger.warning("could not queue the media of message #%s; the sweep will", message_id)

    transaction.on_commit(send)


def _due(entry: dict[str, Any], created_at: datetime, now: datetime) -> bool:
    attempts = int(entry.get("attempts") or 0)
    since = parse_datetime(str(entry.get("attempted_at") or "")) or created_at
    wait = retry_countdown(attempts) if attempts else 0
    return (now - since).total_seconds() >= wait + SWEEP_GRACE_S


def do_sweep_media(*, now: datetime | None = None) -> int:
    """Queue again the messages with provider media still pending past their due attempt plus
    a grace (their task was lost with the broker or a worker; run eagerly, the retries
    themselves). Returns how many."""
    now = now or timezone.now()
    rows = (
        Message.objects.filter(
            channel__in=PHONE_CHANNELS, direction="inbound", created_at__gte=now - SWEEP_WINDOW
        )
        .exclude(attachments=[])
        .values_list("pk", "attachments", "created_at")
    )
    due = [
        pk
        for pk, entries, created_at in rows
        if any(is_pending(e) and _due(e, created_at, now) for e in entries or [])
    ]
    for pk in due:
        request_fetch(pk)
    return len(due)
