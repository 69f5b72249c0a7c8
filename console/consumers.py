"""The agent console's WebSocket: one per open console.

Protocol (JSON both ways; docs/console.md):

- server → ``{"type": "hello", "agent_id"}`` once accepted;
- console → ``{"type": "resume", "last_event_id": N}``: the server answers with the events after
  ``N`` (``{"type": "replay", "events": [...]}``) or, when they are gone, a fresh snapshot
  (``{"type": "snapshot", "state": {...}}``); then live events follow as
  ``{"type": "event", "id", "event", "payload", "at"}``;
- console → ``{"type": "heartbeat"}`` every ``CONSOLE_HEARTBEAT_SECONDS``: presence's proof of
  life, answered ``{"type": "heartbeat.ack"}`` (written to the database in batches, and the
  session re-checked periodically: ``console/live.py``);
- catching up without reconnecting: the server itself pushes, as a ``replay``, any event of
  the agent that has been in the outbox for a round and that this console was never sent (live
  or replayed): ``console/live.py``. Event ids come from one sequence shared by all agents, so
  a gap between two live ids is normal and proves nothing; the comparison with the outbox is
  what finds a missed event, even one older than events already delivered;
- console → ``{"type": "typing", "interaction_id"}`` while the agent types a chat reply;
- console → ``{"type": "action", "ref", "action": "accept" | "decline", "offer_id"}`` or
  ``{"type": "action", "ref", "action": "close", "interaction_id", "code", "notes"}``: the
  agent's most frequent actions without a request through the whole middleware chain each
  (``console/answers.py``: the same checks and answers as the HTTP endpoints). The server
  answers ``{"type": "answer", "ref", "status", "ok", "message", ...}`` with the console's
  ``ref``, the HTTP status and body the endpoint would have given. Each action first checks
  that the socket's session and account are still valid (401 and the socket closed if not),
  and the user's changes are theirs in the audit log (``kernel.audit.acting_as``).

Close codes: 4401 not logged in / session over, 4403 not an agent or second factor missing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from types import SimpleNamespace
from typing import Any

from channels.db import DatabaseSyncToAsync, database_sync_to_async
from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase
from django.utils import translation
from django.utils.translation import gettext as _
from redis.exceptions import RedisError

from agents.models import AgentProfile
from agents.second_factor import agent_admission
from kernel import logs
from kernel.asgi_limits import django_work, django_work_executor
from kernel.audit import acting_as
from kernel.consumers import JsonConsumer
from kernel.errors import ApplicationError
from kernel.events import agent_group
from kernel.second_factor import session_device_confirmed
from kernel.socket_groups import session_group, user_group

from . import answers, live, outbox, replies
from .answers import Answer
from .middleware import idle_seconds_left
from .state import build_snapshot

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403


@database_sync_to_async
def _admit(user: Any, session: SessionBase | None) -> tuple[int | None, int | None, int]:
    """(agent id, organisation id, close code) for the socket's user: one query, two for
    second-factor users."""
    if not user or not user.is_authenticated or not user.is_active:
        return None, None, CLOSE_UNAUTHENTICATED
    left = idle_seconds_left(session) if session is not None else None
    if left is not None and left <= 0:
        return None, None, CLOSE_UNAUTHENTICATED
    row = agent_admission(user.pk)
    if row is None:
        return None, None, CLOSE_FORBIDDEN
    expected = (
        user.is_staff
        or user.is_superuser
        or row["remote"]
        or row["privileged"]
        or row["has_device"]
    )
    if expected and not session_device_confirmed(user, session):
        return None, row["organisation_id"], CLOSE_FORBIDDEN
    return row["pk"], row["organisation_id"], 0


@database_sync_to_async
def _resume(agent_id: int, last_event_id: int) -> dict[str, Any]:
    events = outbox.events_after(agent_id, last_event_id)
    if events is None:
        agent = AgentProfile.objects.get(pk=agent_id)
        return {"type": "snapshot", "state": build_snapshot(agent)}
    return {"type": "replay", "events": events}


# How long a socket keeps who acts (the user, their agent profile, their authorisations)
# between two of its actions before reading them again: what the periodic session check
# re-reads (console/live.py). The session and the account are checked at every action.
def _actor_ttl() -> float:
    return float(settings.CONSOLE_SESSION_CHECK_SECONDS)


def _socket_language(scope: Any) -> str:
    """The language the console's page is in: the one Django's LocaleMiddleware picks for a
    request with the socket's cookies and ``Accept-Language`` header."""
    headers = dict(scope.get("headers") or ())
    shim = SimpleNamespace(
        COOKIES=scope.get("cookies") or {},
        META={"HTTP_ACCEPT_LANGUAGE": headers.get(b"accept-language", b"").decode("latin-1")},
        path_info=scope.get("path", ""),
    )
    return translation.get_language_from_request(shim)  # type: ignore[arg-type]


_ACTIONS = ("accept", "decline", "close")


def _int_field(content: dict[str, Any], name: str) -> int | None:
    value = content.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return None
    return value


def _perform(console: AgentConsoleConsumer, content: dict[str, Any]) -> tuple[Answer, bool]:
    """Run one of the console's actions for the socket's agent: (the answer, whether the
    session is over)."""
    with translation.override(console.language):
        if live.invalid_sessions([(console.user_id, console.session_key)]):
            return Answer(401, _("Your session has ended.")), True
        action = content.get("action")
        if action not in _ACTIONS:
            return Answer(400, _("Unknown action.")), False
        key = "offer_id" if action in ("accept", "decline") else "interaction_id"
        target = _int_field(content, key)
        if target is None:
            return Answer(400, _("This action needs the id of what it acts on.")), False
        agent = console.acting_agent()
        with acting_as(console.user_id):
            try:
                if action == "accept":
                    return answers.accept(agent, target), False
                if action == "decline":
                    return answers.decline(agent, target), False
                code, notes = content.get("code") or "", content.get("notes") or ""
                if not isinstance(code, str) or not isinstance(notes, str):
                    return Answer(400, _("The wrap-up code and notes are text.")), False
                return answers.close(agent.user, agent, target, code, notes), False
            except answers.NotInScope:
                return Answer(404, _("Not found.")), False
            except ApplicationError as exc:
                return answers.refused(exc), False


class AgentConsoleConsumer(JsonConsumer):
    agent_id: int | None = None
    groups_joined: list[str]
    # What this console has: every id of its agent up to applied_up_to (None until its first
    # resume is answered), and the ids above it sent since (console/live.py catches it up).
    applied_up_to: int | None = None
    sent_ids: set[int]
    acting: set[asyncio.Task[None]]  # its actions under way (console → {"type": "action"})
    connected_at: float | None = None
    closing = False
    language = "fr"
    # who acts through this socket, and when it was read (monotonic seconds)
    _actor: tuple[AgentProfile, float] | None = None

    def acting_agent(self) -> AgentProfile:
        """The socket's agent profile with its user, read again after ``_actor_ttl()``
        (called in the database thread)."""
        assert self.agent_id is not None
        now = time.monotonic()
        if self._actor is None or now - self._actor[1] > _actor_ttl():
            agent = AgentProfile.objects.select_related("user").get(pk=self.agent_id)
            self._actor = (agent, now)
        return self._actor[0]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        except (RedisError, OSError, TimeoutError, RuntimeError) as exc:
            # Closed while Redis is down: the layer's pending read fails as the consumer stops
            # (channels re-raises it over StopConsumer). A warning, not a traceback.
            if not self.closing:
                raise
            logger.warning("console closed, channel layer unavailable: %r", exc)

    async def connect(self) -> None:
        self.acting = set()
        self.groups_joined = []
        self.sent_ids = set()
        user = self.scope.get("user")
        session = self.scope.get("session")
        # Every line of this socket carries its id, user, agent and organisation.
        logs.bind(
            request_id=logs.scope_request_id(self.scope),
            user_id=user.pk if user is not None and user.is_authenticated else None,
        )
        agent_id, organisation_id, code = await _admit(user, session)
        logs.bind(agent_id=agent_id, organisation_id=organisation_id)
        if agent_id is None:
            logs.socket_event("console", "refused", code=code)
            await self.close(code=code)
            return
        self.agent_id = agent_id
        self.user_id = user.pk
        self.language = _socket_language(self.scope)
        self.session_key = getattr(session, "session_key", None)
        groups = [agent_group(agent_id), user_group(self.user_id)]
        if self.session_key:
            groups.append(session_group(self.session_key))
        for group in groups:
            await self.channel_layer.group_add(group, self.channel_name)
        self.groups_joined = groups
        await self.accept()
        live.register(self)  # its heartbeats and session checks are batched per process
        self.connected_at = time.monotonic()
        logs.socket_event("console", "connect")
        await self.send_json({"type": "hello", "agent_id": agent_id})

    async def disconnect(self, code: int) -> None:
        self.closing = True
        logs.socket_closed("console", self.connected_at, code)
        live.unregister(self)
        if self.agent_id is not None:  # gone for good? checked after the window plus grace
            from routing.timers import schedule_console_check

            await database_sync_to_async(schedule_console_check)(self.agent_id)
        try:
            for group in self.groups_joined:
                await self.channel_layer.group_discard(group, self.channel_name)
        except (RedisError, OSError, TimeoutError, RuntimeError) as exc:
            # Redis down: nothing to undo (the layer's group memberships expire by themselves),
            # and the socket is gone anyway; a warning, not a traceback. RuntimeError: uvloop's
            # "unable to perform operation on <TCPTransport closed=True>" when Redis died under
            # a pooled connection (seen in bench/chaos.py's Redis restart).
            logger.warning("console groups not left, channel layer unavailable: %r", exc)
        self.groups_joined = []

    async def end(self, reason: str) -> None:
        """Close this console (session over, logout, account disabled)."""
        await self.send_json({"type": "closed", "reason": reason})
        await self.close(code=CLOSE_UNAUTHENTICATED)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if self.agent_id is None or not isinstance(content, dict):
            return
        kind = content.get("type")
        if kind == "heartbeat":
            live.beat(self)
            await self.send_json({"type": "heartbeat.ack"})
        elif kind == "resume":
            last = content.get("last_event_id")
            last_id = last if isinstance(last, int) and not isinstance(last, bool) else 0
            answer = await self._answer_resume(last_id)
            logs.socket_event(
                "console",
                "resume",
                last_event_id=last_id,
                answer=answer["type"],
                events=len(answer["events"]) if answer["type"] == "replay" else None,
            )
        elif kind == "action":
            # Its own task: this console's live events keep flowing while the action runs, and
            # another action of the same console need not wait for it.
            task = asyncio.create_task(self._act(content))
            self.acting.add(task)
            task.add_done_callback(self.acting.discard)
        elif kind == "typing":
            interaction_id = content.get("interaction_id")
            if isinstance(interaction_id, int):
                await database_sync_to_async(replies.send_typing)(
                    interaction_id=interaction_id, agent_id=self.agent_id
                )

    async def _act(self, content: dict[str, Any]) -> None:
        assert self.agent_id is not None
        ref = content.get("ref")
        if not isinstance(ref, (int, str)) or isinstance(ref, bool) or len(str(ref)) > 64:
            ref = None
        started = time.monotonic()
        try:
            # Django work like a request's: in the process's slots shared with the HTTP
            # requests (WEB_DJANGO_CONCURRENCY), in threads of its own (not the one thread every
            # consumer's database calls share), connections given back to the pool after.
            async with django_work().held():
                answer, session_over = await DatabaseSyncToAsync(
                    _perform, thread_sensitive=False, executor=django_work_executor()
                )(self, content)
        except Exception:
            # What a request would have answered 500: the console re-reads its state (the
            # action's transaction rolled back, or committed and its events tell).
            logger.exception("console socket: action %r failed", content.get("action"))
            with translation.override(self.language):
                answer = Answer(500, _("Something went wrong. Try again."))
            session_over = False
        logs.socket_event(
            "console",
            "action",
            action=str(content.get("action"))[:20],
            status=answer.status,
            ms=round((time.monotonic() - started) * 1000, 1),
        )
        if self.closing:
            return  # the socket went away meanwhile: the action stands, the answer is moot
        await self.send_json(
            {"type": "answer", "ref": ref, "status": answer.status, **answer.as_json()}
        )
        if session_over:
            await self.end("session")

    async def rejoin_groups(self) -> None:
        """Join this console's groups again (the channel layer's Redis lost them)."""
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)

    async def _answer_resume(self, last_id: int) -> dict[str, Any]:
        assert self.agent_id is not None
        answer = await _resume(self.agent_id, last_id)
        if answer["type"] == "replay":
            up_to = last_id
            self.sent_ids.update(e["id"] for e in answer["events"])
        else:
            up_to = answer["state"]["last_event_id"]
        self.applied_up_to = max(self.applied_up_to or 0, up_to)
        await self.send_json(answer)
        return answer

    async def push_missed(self, events: list[dict[str, Any]]) -> None:
        """Events of this agent the console was never sent (``console/live.py``)."""
        self.sent_ids.update(e["id"] for e in events)
        await self.send_json({"type": "replay", "events": events})

    async def resync(self) -> None:
        """Too far behind to be caught up event by event: what a resume from the newest id it
        is known to have gives (a replay, or a snapshot when that is too much)."""
        await self._answer_resume(self.applied_up_to or 0)

    async def cc_event(self, message: dict[str, Any]) -> None:
        event_id = message.get("id")
        if isinstance(event_id, int):
            self.sent_ids.add(event_id)
        await self.send_json(
            {
                "type": "event",
                "id": message.get("id"),
                "event": message["event"],
                "payload": message["payload"],
                "at": message.get("at"),
            }
        )

    async def cc_force_close(self, message: dict[str, Any]) -> None:
        await self.end(message.get("reason", ""))
