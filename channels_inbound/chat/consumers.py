"""The citizen's WebSocket: ``/ws/chat/<widget key>/``.

Embedded on other sites, this socket is not behind the console's ``AllowedHostsOriginValidator``
(see ``contactcentre/asgi.py``): it accepts a connection only from the widget's configured
origins (or from this site's own pages), and only sessions proven by a signed visitor token.
It never carries a Django session or cookie.

Protocol (JSON frames):

- citizen → server: ``hello {token?, lang}`` (first), ``start {name, topic}``,
  ``choose {key, node}``, ``message {text, id}``, ``typing {typing}``, ``transcript {email}``,
  ``end {}``;
- server → citizen: ``welcome {token, state, entries, ask, queue, agent, ...}`` (the snapshot),
  then ``entry``, ``ask``, ``state``, ``queue``, ``typing``, ``transcript``, ``error {code}``.

Close codes: 4401 bad or expired token (the widget forgets it and starts afresh), 4403 origin
not allowed, 4404 unknown or inactive widget, 4429 flood.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any
from urllib.parse import urlsplit

from channels.db import database_sync_to_async
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DatabaseError
from django.http.request import split_domain_port, validate_host
from uvicorn.protocols.utils import ClientDisconnected

from kernel import event_catalogue
from kernel.clientip import client_ip_for_scope
from kernel.consumers import JsonConsumer
from kernel.events import agent_group

from . import actions, ratelimit, selectors
from .events import chat_group, send_now
from .models import ChatSession, ChatWidget, origin_matches
from .strings import widget_language
from .tokens import InvalidToken, VisitorClaim, make_token, read_token
from .transcript import address_key

logger = logging.getLogger(__name__)

# Frames that cost a token of the visitor's and the IP's buckets (typing is throttled apart).
LIMITED = frozenset({"hello", "start", "choose", "message", "transcript", "end"})
# After this many refused frames in a row, the socket is closed.
MAX_REFUSED_IN_A_ROW = 20
TYPING_MIN_INTERVAL = 1.0  # seconds between two "typing: true" forwarded to the agent


def client_ip(scope: dict[str, Any]) -> str:
    """The citizen's address for the rate limits: X-Forwarded-For only from TRUSTED_PROXIES."""
    return client_ip_for_scope(scope) or "unknown"


def _header(scope: dict[str, Any], name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return ""


def origin_allowed(origins: tuple[str, ...], origin: str, host: str) -> bool:
    """The widget's configured origins, or a page of this very site (the demo page)."""
    if not origin:
        return False
    if any(origin_matches(origin, allowed) for allowed in origins):
        return True
    parts = urlsplit(origin)
    domain, _port = split_domain_port(host)
    return bool(host) and parts.netloc == host and validate_host(domain, settings.ALLOWED_HOSTS)


@database_sync_to_async
def _widget_info(key: str) -> selectors.WidgetInfo | None:
    return selectors.widget_info(key)


@database_sync_to_async
def _session_for(claim: VisitorClaim, widget_id: int) -> ChatSession | None:
    try:
        return (
            ChatSession.objects.select_related("widget__endpoint")
            .filter(pk=claim.session_id, widget_id=widget_id, visitor_id=claim.visitor_id)
            .first()
        )
    except ValidationError:  # not a UUID (only a token we signed gets here)
        return None


@database_sync_to_async
def _snapshot(session_id: str) -> dict[str, Any]:
    session = ChatSession.objects.select_related("widget__endpoint").get(pk=session_id)
    actions.do_touch_chat(session_id=session_id)
    return selectors.snapshot(session)


@database_sync_to_async
def _start(
    widget_id: int, content: dict[str, Any], visitor_id: str | None, lang: str
) -> tuple[str, str]:
    widget = ChatWidget.objects.select_related("endpoint__queue").get(pk=widget_id)
    topic = content.get("topic")
    topic_id: int | None = None
    if isinstance(topic, int | str) and not isinstance(topic, bool) and str(topic).isdigit():
        topic_id = int(topic)
    name = content.get("name")
    session = actions.do_start_chat(
        widget=widget,
        name=name if isinstance(name, str) else "",
        topic_id=topic_id,
        language=lang,
        visitor_id=visitor_id,
    )
    return str(session.pk), session.visitor_id


@database_sync_to_async
def _live_status(session_id: str, touch: bool) -> selectors.LiveStatus | None:
    if touch:
        actions.do_touch_chat(session_id=session_id)
    return selectors.live_status(session_id)


@database_sync_to_async
def _assigned(session_id: str) -> tuple[int, int] | None:
    """(interaction id, agent id) of a chat an agent is handling."""
    row = (
        ChatSession.objects.filter(
            pk=session_id,
            interaction__status="assigned",
            interaction__assigned_agent__isnull=False,
        )
        .values_list("interaction_id", "interaction__assigned_agent_id")
        .first()
    )
    return (int(row[0]), int(row[1])) if row else None


class ChatVisitorConsumer(JsonConsumer):
    widget: selectors.WidgetInfo | None = None
    session_id: str | None = None
    visitor_id: str | None = None
    group: str | None = None
    language: str = "fr"
    ip: str = "unknown"
    refused_in_a_row: int = 0
    last_typing_sent: float = 0.0
    refresh_task: asyncio.Task[None] | None = None
    poke: asyncio.Event | None = None

    # --- Connection -----------------------------------------------------------------------
    async def connect(self) -> None:
        self.ip = client_ip(self.scope)
        verdict = await ratelimit.take(
            "connect-ip", self.ip, ratelimit.limit_from_settings("CHAT_RATE_LIMIT_CONNECT_IP")
        )
        if not verdict.allowed:
            await self.close(code=4429)
            return
        key = str(self.scope["url_route"]["kwargs"]["widget_key"])
        try:
            widget = await _widget_info(key)
        except DatabaseError as exc:  # PostgreSQL unreachable: the widget reconnects later
            logger.warning("chat widget %s: socket refused, database unavailable: %s", key, exc)
            await self.close(code=1013)
            return
        if widget is None:
            await self.close(code=4404)
            return
        origin = _header(self.scope, b"origin")
        if not origin_allowed(widget.origins, origin, _header(self.scope, b"host")):
            logger.info("chat widget %s: origin %r refused", key, origin)
            await self.close(code=4403)
            return
        self.widget = widget
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if self.refresh_task is not None:
            self.refresh_task.cancel()
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)
        if self.session_id:
            with contextlib.suppress(Exception):
                await database_sync_to_async(actions.do_touch_chat)(session_id=self.session_id)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data is None or len(text_data) > settings.CHAT_MAX_FRAME_BYTES:
            await self.close(code=1009)
            return
        try:
            content = json.loads(text_data)
        except ValueError:
            content = None
        if not isinstance(content, dict):
            await self._error("bad_frame")
            return
        await self.receive_json(content)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if self.widget is None:
            return
        kind = content.get("type")
        if kind == "typing":
            await self._typing(bool(content.get("typing")))
            return
        if kind not in LIMITED:
            await self._error("bad_frame")
            return
        if not await self._within_limits(self._message_ref(kind, content)):
            return
        if kind != "hello" and self.visitor_id is None and kind != "start":
            await self._error("not_now")
            return
        try:
            await getattr(self, f"_on_{kind}")(content)
        except actions.ChatError as exc:
            await self._error(exc.code, self._message_ref(kind, content))
        except DatabaseError as exc:
            # PostgreSQL stopped, restarting, or our connection terminated: nothing was stored.
            # A message is answered "not sent" (the widget keeps it and sends it again); any
            # other frame closes with 1013 "try again later" and the widget reconnects.
            logger.warning(
                "chat %s: %s frame not handled, database unavailable: %s",
                self.session_id or "-",
                kind,
                str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
            )
            if kind == "message":
                await self._error("not_sent", self._message_ref(kind, content))
            else:
                await self.close(code=1013)

    async def _within_limits(self, ref: str | None = None) -> bool:
        ident = self.visitor_id or self.channel_name
        checks = [
            ("visitor", ident, "CHAT_RATE_LIMIT_VISITOR"),
            ("ip", self.ip, "CHAT_RATE_LIMIT_IP"),
        ]
        for bucket, who, setting in checks:
            verdict = await ratelimit.take(bucket, who, ratelimit.limit_from_settings(setting))
            if not verdict.allowed:
                self.refused_in_a_row += 1
                if self.refused_in_a_row > MAX_REFUSED_IN_A_ROW:
                    await self.close(code=4429)
                else:
                    frame: dict[str, Any] = {
                        "type": "error",
                        "code": "rate_limited",
                        "retry_after": round(verdict.retry_after, 1),
                    }
                    if ref:
                        frame["id"] = ref
                    await self.send_json(frame)
                return False
        self.refused_in_a_row = 0
        return True

    async def _error(self, code: str, ref: str | None = None) -> None:
        """``ref``: the client id of the message the error is about (the widget marks it)."""
        frame: dict[str, Any] = {"type": "error", "code": code}
        if ref:
            frame["id"] = ref
        await self.send_json(frame)

    @staticmethod
    def _message_ref(kind: Any, content: dict[str, Any]) -> str | None:
        ref = content.get("id") if kind == "message" else None
        return ref if isinstance(ref, str) and actions.CLIENT_ID_RE.match(ref) else None

    # --- Frames ---------------------------------------------------------------------------
    async def _on_hello(self, content: dict[str, Any]) -> None:
        assert self.widget is not None
        self.language = widget_language(content.get("lang"))
        token = content.get("token")
        if not token:
            await self.send_json({"type": "welcome", "token": None, "state": "prechat"})
            return
        try:
            claim = read_token(token, widget_key=self.widget.key)
        except InvalidToken as exc:
            logger.info("chat widget %s: token refused (%s)", self.widget.key, exc)
            await self._error("invalid_token")
            await self.close(code=4401)
            return
        session = await _session_for(claim, self.widget.id)
        if session is None:
            await self._error("invalid_token")
            await self.close(code=4401)
            return
        self.visitor_id = claim.visitor_id
        await self._bind(str(session.pk))

    async def _on_start(self, content: dict[str, Any]) -> None:
        assert self.widget is not None
        if self.session_id is not None:
            current = await _live_status(self.session_id, False)
            if current is not None and current.state != "ended":
                await self._error("not_now")
                return
        session_id, self.visitor_id = await _start(
            self.widget.id, content, self.visitor_id, self.language
        )
        await self._bind(session_id)

    async def _on_choose(self, content: dict[str, Any]) -> None:
        session_id = self._require_session()
        node = content.get("node")
        await database_sync_to_async(actions.do_choose_option)(
            session_id=session_id,
            key=str(content.get("key", "")),
            node=str(node) if node is not None else None,
        )

    async def _on_message(self, content: dict[str, Any]) -> None:
        session_id = self._require_session()
        client_id = content.get("id")
        received = await database_sync_to_async(actions.do_receive_citizen_message)(
            session_id=session_id,
            text=content.get("text", ""),
            client_id=str(client_id) if client_id is not None else None,
        )
        if received.entry is not None and not received.created:
            # Sent again (its echo was lost, or the socket dropped before it came): stored
            # once, acknowledged to this socket so the widget stops re-sending it.
            await self.send_json({"type": "entry", "entry": received.entry})
            return
        await self._typing(False)

    async def _on_transcript(self, content: dict[str, Any]) -> None:
        """A confirmation link goes to the address; the conversation follows once the citizen
        confirms it there (transcript.py). One address per conversation, and a few e-mails per
        address and hour whoever asks."""
        session_id = self._require_session()
        raw = content.get("email")
        email = actions.transcript_address(raw if isinstance(raw, str) else "")
        key = address_key(email)
        bound = await ratelimit.claim(
            "transcript-address", session_id, key, settings.CHAT_TOKEN_MAX_AGE_SECONDS
        )
        if bound != key:
            raise actions.ChatError("transcript_address")
        verdict = await ratelimit.take(
            "transcript-address",
            key,
            ratelimit.limit_from_settings("CHAT_RATE_LIMIT_TRANSCRIPT_ADDRESS"),
        )
        if not verdict.allowed:
            raise actions.ChatError("transcript_address_limit")
        await database_sync_to_async(actions.do_request_transcript)(
            session_id=session_id, email=email, site_url=self._site_url()
        )
        await self.send_json({"type": "transcript", "ok": True, "pending": True, "email": email})

    def _site_url(self) -> str:
        """Our public origin, for links in e-mails: PUBLIC_BASE_URL, else the Host the widget
        connected to when it is one of ALLOWED_HOSTS (never an arbitrary Host header)."""
        if settings.PUBLIC_BASE_URL:
            return str(settings.PUBLIC_BASE_URL).rstrip("/")
        host = _header(self.scope, b"host")
        domain, _port = split_domain_port(host)
        if not host or not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
            logger.warning("chat transcript: set PUBLIC_BASE_URL (Host %r not allowed)", host)
            raise actions.ChatError("unavailable", "no public address for the link")
        secure = self.scope.get("scheme") == "wss" or settings.SESSION_COOKIE_SECURE
        return f"{'https' if secure else 'http'}://{host}"

    async def _on_end(self, content: dict[str, Any]) -> None:
        session_id = self._require_session()
        await database_sync_to_async(actions.do_end_chat)(session_id=session_id)

    def _require_session(self) -> str:
        if self.session_id is None:
            raise actions.ChatError("not_now")
        return self.session_id

    async def _typing(self, typing: bool) -> None:
        """The citizen's typing indicator goes to the assigned agent's consoles (throttled;
        "stopped typing" always passes)."""
        if self.session_id is None:
            return
        now = time.monotonic()
        if typing and now - self.last_typing_sent < TYPING_MIN_INTERVAL:
            return
        self.last_typing_sent = now if typing else 0.0
        assigned = await _assigned(self.session_id)
        if assigned is None:
            return
        interaction_id, agent_id = assigned
        await send_now(
            [agent_group(agent_id)],
            *event_catalogue.chat_typing_to_agent(interaction_id=interaction_id, typing=typing),
        )

    # --- Session binding, events and the queue loop ----------------------------------------
    async def _bind(self, session_id: str) -> None:
        assert self.widget is not None
        assert self.visitor_id is not None
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)
        self.session_id = session_id
        self.group = chat_group(session_id)
        # Join first, then read: an event between the two is applied twice at worst, and the
        # widget ignores entries it already shows (same id).
        await self.channel_layer.group_add(self.group, self.channel_name)
        snapshot = await _snapshot(session_id)
        token = make_token(VisitorClaim(self.visitor_id, session_id, self.widget.key))
        await self.send_json({"type": "welcome", "token": token, **snapshot})
        self._follow_queue(snapshot["state"])

    def _follow_queue(self, state: str) -> None:
        if state != "waiting":
            return
        if self.poke is None:
            self.poke = asyncio.Event()
        if self.refresh_task is None or self.refresh_task.done():
            self.refresh_task = asyncio.create_task(self._queue_loop())
        else:
            self.poke.set()

    async def _queue_loop(self) -> None:
        """While the citizen waits: position and estimated wait, pushed when they change, at
        least every ``CHAT_QUEUE_REFRESH_SECONDS``; it also notices a move the router made
        without an event (auto-accept). The database unreachable for a while skips those
        refreshes (logged as a warning) and the loop goes on once it is back; the citizen's
        socket closing ends it quietly (closing the widget is not an error)."""
        assert self.poke is not None
        last: dict[str, Any] | None = None
        last_touch = 0.0
        session_id = self.session_id
        try:
            while session_id == self.session_id and session_id is not None:
                touch = time.monotonic() - last_touch > settings.CHAT_TOUCH_SECONDS
                try:
                    status = await _live_status(session_id, touch)
                except DatabaseError as exc:
                    logger.warning("chat %s: queue status not read: %s", session_id, exc)
                else:
                    if status is None:
                        return
                    if touch:
                        last_touch = time.monotonic()
                    if status.state != "waiting":
                        await self.send_json(
                            {"type": "state", "state": status.state, "agent": status.agent}
                        )
                        return
                    frame = {"type": "queue", **(status.queue or {})}
                    if frame != last:
                        await self.send_json(frame)
                        last = frame
                self.poke.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self.poke.wait(), timeout=settings.CHAT_QUEUE_REFRESH_SECONDS
                    )
        except asyncio.CancelledError:
            raise
        except ClientDisconnected:  # the citizen closed the widget or the tab: nothing to tell
            logger.debug("chat %s: queue updates ended, the citizen's socket closed", session_id)
        except Exception:
            logger.exception("chat %s: queue updates stopped", session_id)

    async def cc_event(self, message: dict[str, Any]) -> None:
        """An event of this chat session (``kernel.events``): forwarded to the widget."""
        event = str(message["event"]).removeprefix("chat.")
        payload = message.get("payload") or {}
        await self.send_json({"type": event, **payload})
        if event == "state":
            self._follow_queue(str(payload.get("state", "")))
