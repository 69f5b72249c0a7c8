"""The SMTP server the mail relay delivers to (aiosmtpd), run by ``manage.py smtp_server``, or
inside ``manage.py serve`` on the embedded default when ``EMAIL_SMTP_SERVER_EMBEDDED`` is on
(:func:`start_embedded_smtp`: on the web server's event loop, so the in-memory channel layer
carries the new e-mail's events to the open consoles).

Replies, so the relay does the right thing:

* ``250`` only once the message is committed in the database (nothing accepted is lost);
* ``550 5.1.1`` at ``RCPT`` for an address that is not one of our e-mail endpoints;
* ``552 5.3.4`` with a clear French/English text for a message over
  ``EMAIL_MAX_MESSAGE_BYTES`` (announced in ``EHLO`` as ``SIZE``) or an attachment over
  ``EMAIL_MAX_ATTACHMENT_BYTES``: the relay bounces it to the sender with that text;
* ``550 5.6.0`` for an empty message (nothing, or only blank lines), one without a sender
  address in ``From``, or one with neither a subject nor any content: nothing to route;
* ``451 4.3.0`` on any temporary failure (database down...), so the relay tries again later.

The database work runs in a small thread pool (Django's ORM is synchronous); each call closes
its connections when done. The pool's threads run through ``sync_to_async``, so the events a
call publishes after its commit go out on the server's event loop.
"""

from __future__ import annotations

import asyncio
import email.policy
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from email.parser import BytesParser
from email.utils import getaddresses
from functools import partial
from typing import Any, TypeVar

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections, connections
from django.utils.translation import gettext_noop

from channels_inbound.ingest import IngestError

from .inbound import (
    EmailRefused,
    bilingual_ascii,
    do_ingest_email,
    endpoint_among,
    too_large_message,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

UNKNOWN_RECIPIENT = "550 5.1.1 Adresse inconnue / Unknown recipient"
TEMPORARY_FAILURE = (
    "451 4.3.0 Erreur temporaire, nouvel essai plus tard / Temporary failure, try again later"
)


def _refused(message: str) -> EmailRefused:
    return EmailRefused(550, "5.6.0", bilingual_ascii(message, {}))


def content_refusal(raw: bytes) -> EmailRefused | None:
    """Why a message cannot be routed at all, if it cannot: empty (or only blank lines), no
    sender address in ``From``, or neither a subject nor any content (text or attachment)."""
    if not raw.strip():
        return _refused(gettext_noop("Message refused: it is empty."))
    msg = BytesParser(policy=email.policy.default).parsebytes(raw)
    try:
        senders = [addr for _name, addr in getaddresses(msg.get_all("From", [])) if "@" in addr]
    except (TypeError, ValueError, IndexError, AttributeError):
        senders = []
    if not senders:
        return _refused(gettext_noop("Message refused: it has no sender address (From header)."))
    try:
        subject = str(msg.get("Subject", "") or "").strip()
    except (TypeError, ValueError, IndexError, AttributeError):
        subject = ""
    has_content = False
    for part in msg.walk():
        if part.get_content_maintype() == "multipart":
            continue
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes) and payload.strip():
            has_content = True
            break
    if not subject and not has_content:
        return _refused(gettext_noop("Message refused: it has neither a subject nor any content."))
    return None


class ContactCentreSMTP(SMTP):
    """aiosmtpd's server, with our clear text instead of its generic size errors."""

    async def push(self, status: Any) -> None:
        if isinstance(status, str) and status.startswith("552 Error:"):
            status = too_large_message().smtp_reply()
        await super().push(status)


class EmailHandler:
    def __init__(self, workers: int = 4) -> None:
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="smtp-db")

    async def _db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        # sync_to_async, not a bare run_in_executor: ``async_to_sync`` in the thread (the
        # in-memory layer's publish after the commit) then runs on this event loop, the one
        # the consoles' sockets wait on, instead of a loop of its own.
        call = sync_to_async(
            partial(_db_call, fn, *args, **kwargs), thread_sensitive=False, executor=self.executor
        )
        return await call()

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        try:
            endpoint = await self._db(endpoint_among, [address])
        except Exception:
            logger.exception("SMTP: could not check a recipient")  # no address in logs
            return TEMPORARY_FAILURE
        if endpoint is None:
            return UNKNOWN_RECIPIENT
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        if isinstance(raw, str):  # pragma: no cover - decode_data is off
            raw = raw.encode("utf-8", "surrogateescape")
        loop = asyncio.get_running_loop()
        refusal = await loop.run_in_executor(self.executor, content_refusal, bytes(raw))
        if refusal is not None:
            logger.info("SMTP: refused a message: %s", refusal)  # no address in logs
            return refusal.smtp_reply()
        try:
            result = await self._db(
                do_ingest_email,
                bytes(raw),
                recipients=list(envelope.rcpt_tos),
                envelope_sender=envelope.mail_from,
                via_smtp=True,
            )
        except EmailRefused as refused:
            logger.info("SMTP: refused a message: %s", refused)
            return refused.smtp_reply()
        except IngestError:
            return UNKNOWN_RECIPIENT
        except Exception:
            logger.exception("SMTP: could not record a message")
            return TEMPORARY_FAILURE
        state = "recorded" if result.created else "already recorded"
        return f"250 2.0.0 OK: {state} (message {result.message_id})"

    def close(self) -> None:
        self.executor.shutdown(wait=True)


def _db_call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    close_old_connections()
    try:
        return fn(*args, **kwargs)
    finally:
        connections.close_all()


class SMTPServerController(Controller):
    def factory(self) -> SMTP:
        return ContactCentreSMTP(self.handler, **self.SMTP_kwargs)


def _quiet_smtp_log() -> None:
    smtp_log = logging.getLogger("mail.log")
    if smtp_log.level == logging.NOTSET:
        # aiosmtpd logs every SMTP command at INFO; LOGGING["loggers"]["mail.log"] overrides.
        smtp_log.setLevel(logging.WARNING)


def smtp_options() -> dict[str, Any]:
    """aiosmtpd's ``SMTP`` keyword arguments, the same for both ways of running the server."""
    return {
        "hostname": settings.EMAIL_SMTP_SERVER_HOSTNAME,
        "ident": "contactcentre ESMTP",
        "data_size_limit": settings.EMAIL_MAX_MESSAGE_BYTES,
        "enable_SMTPUTF8": True,
    }


def build_controller(host: str, port: int, *, workers: int = 4) -> SMTPServerController:
    """The server in a thread with an event loop of its own (``manage.py smtp_server``)."""
    _quiet_smtp_log()
    options = smtp_options()
    return SMTPServerController(
        EmailHandler(workers=workers),
        hostname=host,
        port=port,
        server_hostname=options.pop("hostname"),
        **options,
    )


class EmbeddedSMTP:
    """The server listening on the running event loop (``manage.py serve``, embedded default)."""

    def __init__(self, server: asyncio.Server, handler: EmailHandler) -> None:
        self.server = server
        self.handler = handler

    @property
    def port(self) -> int:
        return int(self.server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        self.server.close()
        await self.server.wait_closed()
        await asyncio.get_running_loop().run_in_executor(None, self.handler.close)


async def start_embedded_smtp(host: str, port: int, *, workers: int = 4) -> EmbeddedSMTP:
    """Listen on ``host:port`` on the running loop (port 0: any free port)."""
    _quiet_smtp_log()
    handler = EmailHandler(workers=workers)
    options = smtp_options()
    loop = asyncio.get_running_loop()
    try:
        server = await loop.create_server(
            lambda: ContactCentreSMTP(handler, loop=loop, **options), host, port
        )
    except Exception:
        handler.close()
        raise
    logger.info("SMTP server listening on %s:%s (in the web server's process)", host, port)
    return EmbeddedSMTP(server, handler)
