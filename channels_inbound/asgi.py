"""A lean ASGI path for the inbound SMS webhook, in front of the Django application.

Provider webhooks need none of the site's middleware (sessions, CSRF, two-factor, lockouts,
static files); under ASGI that stack costs several thread hand-offs per request, which limits a
webhook burst to a few hundred requests per second on two cores. This path answers
``POST /webhooks/<provider>/sms/`` itself with exactly the same checks and the same action as
the Django view (:func:`channels_inbound.sms.views.sms_inbound`):

- anything but POST: 405; a body above ``TELEPHONY_WEBHOOK_MAX_BYTES``: 413 (not read past it);
- the provider adapter checks the signature against ``PUBLIC_BASE_URL`` + path: 403;
- the adapter parses the fields (400 naming the missing ones);
- :func:`channels_inbound.sms.actions.do_receive_sms` stores it once (one INSERT ... ON CONFLICT
  DO NOTHING) in a worker thread, and wakes the ingestion task; while the database is
  unreachable the delivery is spooled to disk instead and answered 200
  (:mod:`channels_inbound.sms.spool`, which this process drains: its drainer thread starts
  with this application).

Every other request goes to the wrapped application unchanged. ``contactcentre/asgi.py`` wraps
the HTTP application with it::

    application = ProtocolTypeRouter({"http": with_fast_webhooks(django_asgi_app), ...})
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections
from django.http import QueryDict
from django.utils import timezone
from django.utils.datastructures import CaseInsensitiveMapping

from kernel import instruments
from kernel.logs import asgi_request

if TYPE_CHECKING:
    from channels_inbound.providers.base import InboundSms

logger = logging.getLogger("channels_inbound.webhooks")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SMS_PATH = re.compile(r"^/webhooks/(?P<provider>[a-z0-9_]+)/sms/$")


async def _respond(send: Send, status: int, body: str, content_type: str) -> None:
    payload = body.encode("utf-8")
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(payload)).encode()),
    ]
    if status == 405:
        headers.append((b"allow", b"POST"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


async def _plain(send: Send, status: int, text: str) -> None:
    await _respond(send, status, text + "\n", "text/plain; charset=utf-8")


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The request body, or None when it is larger than ``limit``."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _public_url(scope: Scope, headers: dict[str, str]) -> str:
    path = scope.get("root_path", "") + scope["path"]
    query = scope.get("query_string", b"").decode("latin-1")
    full_path = path + (f"?{query}" if query else "")
    if settings.PUBLIC_BASE_URL:
        return settings.PUBLIC_BASE_URL.rstrip("/") + full_path
    host = headers.get("host", "")
    return f"{scope.get('scheme', 'http')}://{host}{full_path}"


def _receive_sms(provider_name: str, sms: InboundSms, received_at: datetime) -> str:
    """The synchronous part (in a worker thread): store once (or spool), render the answer."""
    from channels_inbound.providers import get_provider
    from channels_inbound.sms.spool import receive_sms

    provider = get_provider(provider_name)
    try:
        received = receive_sms(sms=sms, provider=provider.name, received_at=received_at)
        return provider.render_sms_reply(received.reply)
    finally:
        close_old_connections()


# Spool writes have their own threads: the shared executor's may all be waiting on the database.
_spool_executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="webhook-spool-write")


def _forget(task: asyncio.Future[Any]) -> None:
    """A storing attempt given up on (spooled meanwhile): its outcome is not needed."""
    if not task.cancelled() and task.exception() is not None:
        logger.warning("SMS insert given up on ended with %r", task.exception())


async def _store_or_spool(provider_name: str, sms: InboundSms) -> str | None:
    """Store the SMS (or spool it on a connection error); when the database does not answer
    within ``WEBHOOK_SPOOL_WAIT_SECONDS`` (a pool waiting for a server that is down), spool it
    and answer without waiting more: the provider's own timeout (Twilio: 15 s) must not expire.
    The abandoned insert may still succeed later: the spooled copy then inserts nothing (the
    same idempotent insert). None when it could be neither stored nor spooled."""
    from channels_inbound.providers import get_provider
    from channels_inbound.sms import spool

    received_at = timezone.now()
    work = asyncio.ensure_future(
        sync_to_async(_receive_sms, thread_sensitive=False)(provider_name, sms, received_at)
    )
    try:
        return await asyncio.wait_for(asyncio.shield(work), settings.WEBHOOK_SPOOL_WAIT_SECONDS)
    except TimeoutError:
        work.add_done_callback(_forget)
    spool.note_outage(f"no answer within {settings.WEBHOOK_SPOOL_WAIT_SECONDS} s")
    loop = asyncio.get_running_loop()
    try:
        await loop.run_in_executor(
            _spool_executor,
            functools.partial(
                spool.spool_or_raise, sms=sms, provider=provider_name, received_at=received_at
            ),
        )
    except OSError:
        return None
    return get_provider(provider_name).render_sms_reply(None)


class FastWebhooks:
    """Routes the inbound SMS webhook to the lean path, everything else to ``app``."""

    def __init__(self, app: ASGIApp) -> None:
        from channels_inbound.sms.spool import start_drainer

        self.app = app
        # The web process drains its own webhook spool (a first attempt now, at start-up).
        start_drainer()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = SMS_PATH.match(scope.get("path", "")) if scope["type"] == "http" else None
        if match is None:
            await self.app(scope, receive, send)
            return
        from channels_inbound.providers import PROVIDERS

        provider_name = match.group("provider")
        if provider_name not in PROVIDERS:
            await self.app(scope, receive, send)
            return
        # The request id in and out, and its one log line, as RequestLogMiddleware does.
        with asgi_request(scope, send) as (logged_send, _line):
            await self._timed_sms(scope, receive, logged_send, provider_name)

    async def _timed_sms(
        self, scope: Scope, receive: Receive, send: Send, provider_name: str
    ) -> None:
        """Timed and counted as the Django view's webhooks are (``cc_webhook_*``, one series:
        webhook ``sms_inbound``)."""
        started = time.perf_counter()
        status = 500  # an exception before the answer

        async def noted_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._sms(scope, receive, noted_send, provider_name)
        finally:
            instruments.webhook_answered(
                provider=provider_name,
                webhook="sms_inbound",
                status=status,
                seconds=time.perf_counter() - started,
            )

    async def _sms(self, scope: Scope, receive: Receive, send: Send, provider_name: str) -> None:
        from channels_inbound.providers import get_provider
        from channels_inbound.providers.base import WebhookError

        if scope["method"] != "POST":
            await _plain(send, 405, "POST only")
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        limit = settings.TELEPHONY_WEBHOOK_MAX_BYTES
        try:
            declared = int(headers.get("content-length") or 0)
        except ValueError:
            await _plain(send, 400, "bad Content-Length")
            return
        if declared > limit:
            await _plain(send, 413, f"body larger than {limit} bytes")
            return
        body = await _read_body(receive, limit)
        if body is None:
            await _plain(send, 413, f"body larger than {limit} bytes")
            return
        params = QueryDict(body, encoding="utf-8")
        provider = get_provider(provider_name)
        if not provider.validate_request(
            url=_public_url(scope, headers), params=params, headers=CaseInsensitiveMapping(headers)
        ):
            logger.warning("bad or missing signature on %s", scope["path"])
            await _plain(send, 403, "invalid signature")
            return
        try:
            sms = provider.parse_sms(params)
        except WebhookError as exc:
            await _plain(send, 400, str(exc))
            return
        reply = await _store_or_spool(provider_name, sms)
        if reply is None:
            await _plain(send, 500, "temporarily unavailable")
            return
        await _respond(send, 200, reply, f"{provider.voice_content_type}; charset=utf-8")


def with_fast_webhooks(app: ASGIApp) -> ASGIApp:
    return FastWebhooks(app)
