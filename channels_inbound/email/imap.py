"""The IMAP poller: reads an existing mailbox (IMAPClient) into the same ingest path.

Per mailbox folder, :class:`ImapMailboxState` remembers UIDVALIDITY and the last UID read. A new
UIDVALIDITY (the folder was rebuilt, restored or migrated) means the old UIDs mean nothing: the
folder is read again from the start, and the Message-ID deduplication turns the messages already
recorded into no-ops. A message is flagged ``\\Seen`` (or moved to ``IMAP_PROCESSED_FOLDER``)
and the last UID advanced only after it is committed; a temporary failure stops the pass so the
next one starts again at that message.

A message over ``EMAIL_MAX_MESSAGE_BYTES`` is not downloaded: its headers are recorded with a
note, and the sender (unless machine-sent) gets the refused-attachments notice.
"""

from __future__ import annotations

import email.policy
import logging
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from django.conf import settings
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from imapclient import IMAPClient
from imapclient.imapclient import SEEN

from channels_inbound.ingest import IngestError

from .inbound import EmailRefused, do_ingest_email
from .models import ImapMailboxState
from .outbound import megabytes

logger = logging.getLogger(__name__)

STUB_HEADERS = (
    "From",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "Auto-Submitted",
    "Precedence",
    "List-Id",
    "List-Unsubscribe",
    "X-Auto-Response-Suppress",
    "Return-Path",
)


@dataclass(frozen=True)
class ImapSettings:
    host: str
    port: int
    user: str
    password: str
    ssl: bool = True
    folder: str = "INBOX"
    processed_folder: str = ""  # empty: flag \Seen; else move processed messages there
    endpoint_address: str = ""  # our address this mailbox receives for

    @property
    def key(self) -> str:
        return f"{self.user}@{self.host}:{self.port}/{self.folder}"[:255]

    @classmethod
    def from_settings(cls) -> ImapSettings | None:
        if not settings.IMAP_HOST or not settings.IMAP_USER:
            return None
        endpoint = settings.IMAP_ENDPOINT_ADDRESS or (
            settings.IMAP_USER if "@" in settings.IMAP_USER else ""
        )
        return cls(
            host=settings.IMAP_HOST,
            port=settings.IMAP_PORT,
            user=settings.IMAP_USER,
            password=settings.IMAP_PASSWORD,
            ssl=settings.IMAP_SSL,
            folder=settings.IMAP_FOLDER,
            processed_folder=settings.IMAP_PROCESSED_FOLDER,
            endpoint_address=endpoint.lower(),
        )


@dataclass
class PollOutcome:
    ingested: int = 0
    duplicates: int = 0
    failed: int = 0
    rescanned: bool = False
    last_uid: int = 0


def oversized_stub(header_bytes: bytes, size: int) -> bytes:
    """A small message carrying the original headers and a note, for a message too large to
    download."""
    original = BytesParser(policy=email.policy.default).parsebytes(header_bytes, headersonly=True)
    stub = EmailMessage()
    for name in STUB_HEADERS:
        for value in original.get_all(name) or []:
            try:
                stub[name] = str(value)
            except (ValueError, TypeError):
                continue
    notes = []
    for language in ("fr", "en"):
        with translation.override(language):
            notes.append(
                _(
                    "[This message (%(size)s MB) was not imported: it is over the limit of "
                    "%(max)s MB.]"
                )
                % {"size": megabytes(size), "max": megabytes(settings.EMAIL_MAX_MESSAGE_BYTES)}
            )
    stub.set_content("\n".join(notes))
    return stub.as_bytes()


def _connect(config: ImapSettings) -> IMAPClient:
    client = IMAPClient(config.host, port=config.port, ssl=config.ssl, timeout=60)
    client.login(config.user, config.password)
    return client


def _mark_processed(client: IMAPClient, uid: int, config: ImapSettings) -> None:
    if not config.processed_folder:
        client.add_flags([uid], [SEEN], silent=True)
        return
    if client.has_capability("MOVE"):
        client.move([uid], config.processed_folder)
    else:
        client.copy([uid], config.processed_folder)
        client.delete_messages([uid], silent=True)
        client.uid_expunge([uid]) if client.has_capability("UIDPLUS") else client.expunge()


def _fetch(client: IMAPClient, uid: int, size: int) -> tuple[bytes, list[dict[str, Any]]]:
    if size > settings.EMAIL_MAX_MESSAGE_BYTES:
        data = client.fetch([uid], ["BODY.PEEK[HEADER]"]).get(uid, {})
        header = data.get(b"BODY[HEADER]", b"")
        refused = {
            "name": "message.eml",
            "content_type": "message/rfc822",
            "declared_type": "message/rfc822",
            "size": size,
            "inline": False,
            "refused": "message_too_large",
        }
        return oversized_stub(header, size), [refused]
    data = client.fetch([uid], ["BODY.PEEK[]"]).get(uid, {})
    return bytes(data.get(b"BODY[]", b"")), []


def poll_mailbox(config: ImapSettings) -> PollOutcome:
    """One pass over the folder: every message after the last UID read, oldest first."""
    outcome = PollOutcome()
    state, _created = ImapMailboxState.objects.get_or_create(key=config.key)
    client = _connect(config)
    try:
        if config.processed_folder and not client.folder_exists(config.processed_folder):
            client.create_folder(config.processed_folder)
        selected = client.select_folder(config.folder)
        uidvalidity = int(selected[b"UIDVALIDITY"])
        if state.uidvalidity != uidvalidity:
            if state.uidvalidity is not None:
                outcome.rescanned = True
                state.rescans += 1
                logger.warning(
                    "IMAP %s: UIDVALIDITY changed (%s -> %s): reading the folder again",
                    config.key,
                    state.uidvalidity,
                    uidvalidity,
                )
            state.uidvalidity = uidvalidity
            state.last_uid = 0
            state.save(update_fields=["uidvalidity", "last_uid", "rescans"])
        # "N:*" always matches the newest message, even below N: filter on our side.
        uids = sorted(
            u for u in client.search(["UID", f"{state.last_uid + 1}:*"]) if u > state.last_uid
        )
        sizes = (
            {
                uid: int(data.get(b"RFC822.SIZE", 0))
                for uid, data in client.fetch(uids, ["RFC822.SIZE"]).items()
            }
            if uids
            else {}
        )
        recipients = [config.endpoint_address] if config.endpoint_address else []
        for uid in uids:
            raw, refused = _fetch(client, uid, sizes.get(uid, 0))
            try:
                result = do_ingest_email(raw, recipients=recipients, extra_refused=refused)
            except (IngestError, EmailRefused) as exc:
                # Permanent: nothing to retry. Left unseen in the mailbox for a person to see.
                outcome.failed += 1
                logger.error("IMAP %s: message UID %s not recorded: %s", config.key, uid, exc)
            else:
                if result.created:
                    outcome.ingested += 1
                else:
                    outcome.duplicates += 1
                _mark_processed(client, uid, config)
            state.last_uid = uid
            state.save(update_fields=["last_uid"])
        outcome.last_uid = state.last_uid
        state.last_polled_at = timezone.now()
        state.last_error = ""
        state.save(update_fields=["last_polled_at", "last_error"])
    except Exception as exc:
        ImapMailboxState.objects.filter(pk=state.pk).update(last_error=repr(exc)[:255])
        raise
    finally:
        try:
            client.logout()
        except Exception:  # the connection may already be gone
            logger.debug("IMAP logout failed", exc_info=True)
    return outcome
