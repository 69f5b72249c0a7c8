#!/usr/bin/env python3
"""The live loop, end to end: a citizen's webhook to the ``offer.created`` frame on an agent's
console socket, on a production-like stack on loopback.

    .venv/bin/python bench/loop.py [--rate 100] [--duration 60] [--agents 500]
                                   [--baseline-rate 5 --baseline-s 10] [--layout kinds|shared]
                                   [--actions socket|http] [--keep-logs DIR]

What it does (nothing of the machine's own PostgreSQL or Redis is touched):

1. starts the chaos harness's stack (bench/chaos_stack.py): its own PostgreSQL (``initdb`` on
   a spare port, ``track_commit_timestamp=on`` so each stage's commit time can be read back),
   its own ``redis-server``, 2 uvicorn web processes, the Celery workers (``--layout kinds``:
   one worker per kind of work as docker-compose runs them, ``route,celery`` x2, ``ingest``
   x2, ``outbound,reports`` x1; ``--layout shared``: ``--workers`` processes of
   ``--concurrency`` consuming every queue), beat and a fake Twilio REST API; creates a
   queue, one endpoint per channel and ``--agents`` agents (bench/chaos.py's ``setup_data``)
   and logs every agent in (a session made with Django's own ``login``, no password hash);
2. every agent opens a real console WebSocket (``/ws/console/``, resume from event 0,
   heartbeats), goes available over HTTP, and on each ``offer.created`` frame notes the time,
   accepts the offer and closes the interaction at once (a call once its console is told the
   phone hung up: ``interaction.status`` to ``wrap_up``),
   so agents stay free: over the console socket (``{"type": "action"}``, as the console does
   while its socket is open), or with ``--actions http`` by POSTs to the endpoints;
3. citizens arrive open-loop at ``--rate`` per second for ``--duration`` seconds: signed SMS
   webhooks (the official ``twilio`` ``RequestValidator``, each from a new number so each is a
   new interaction), and a share (``--chat-share``, ``--voice-share``) of chat conversations
   (widget socket: ``start`` then a message) and voice calls (signed voice webhook);
4. after a drain, reads back, per interaction, the database's times and joins them with the
   frames the agents received.

Per interaction (times from one clock: the bench, the app and PostgreSQL run on one machine):

- ``webhook_to_row``: webhook sent -> the delivery's row stored (``InboundSms.received_at``;
  for chat and calls, which are stored with their interaction, this stage is 0 and the next
  one counts from the request);
- ``row_to_interaction``: -> the commit of the transaction that queued the interaction (the
  commit timestamp of its ``-> queued`` transition row);
- ``interaction_to_pass``: -> the routing pass that offered it started (the offer's
  ``created_at`` is the pass's clock reading);
- ``pass_to_offer``: -> the commit of the offer (commit timestamp of its ``-> offered``
  transition row);
- ``offer_to_frame``: -> the ``offer.created`` frame received on the agent's socket (the
  outbox write, the channel layer, the web process, the socket: "frame sent" on loopback).

``loop`` is webhook sent -> frame received. ``lost``: an accepted delivery (2xx, or a chat
``start`` answered) whose interaction never reached an agent's socket as ``offer.created``
within the drain. The last line printed is one JSON object: ``rate_per_s``, ``offers``,
``loop_p50_ms``, ``loop_p99_ms``, ``stage_p50_ms``, ``stage_p99_ms``, ``lost`` and details
(a ``baseline`` object when ``--baseline-rate`` is given: the same at a low rate, first, in
the same stack). Each phase also has ``cpu``: the CPU each part of the stack (web, each
worker by its queues, beat, Redis, PostgreSQL, the bench's client) used during it, per arrival
(``cpu_ms_per_arrival``) and as cores busy (``cores_busy``). Targets: ``loop_p50_ms`` <= 25,
``loop_p99_ms`` <= 100, ``lost`` 0.

With ``--pg-statements`` the stack's PostgreSQL loads ``pg_stat_statements`` (statements the
clients sent, not those run inside them such as foreign-key checks), and each phase also has
``statements``: statements and transactions per arrival, and the statements sent most often
(per arrival, with their mean time inside PostgreSQL). It is how "where does a contact's
database work go" is answered without instrumenting the app.
Results in docs/benchmarks.md ("Loop").
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import itertools
import json
import os
import random
import re
import signal
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import websockets

from bench import chaos_drivers as drivers
from bench.chaos_stack import Stack, log
from interactions.channels import Channel

CSRF = "loopcsrf" * 4  # a 32-character CSRF secret, the same in the cookie and the header
STAGES = (
    "webhook_to_row",
    "row_to_interaction",
    "interaction_to_pass",
    "pass_to_offer",
    "offer_to_frame",
)


# --------------------------------------------------------------------------- set-up (in the stack)
def make_sessions(usernames: list[str]) -> None:
    """Run inside the stack's environment: log each agent in with Django's ``login`` (the
    signals run as for a real login) and print their session keys, as JSON."""
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.test import Client

    users = get_user_model().objects.in_bulk(usernames, field_name="username")
    keys = {}
    for username in usernames:
        client = Client()
        client.force_login(users[username])
        keys[username] = client.cookies["sessionid"].value
    print(json.dumps(keys))


def collect(run_started: float) -> None:
    """Run inside the stack's environment: per interaction created since ``run_started``, the
    database's times (epoch seconds), as JSON lines."""
    import django

    django.setup()
    from django.db import connection

    from channels_inbound.chat.models import ChatSession
    from channels_inbound.sms.models import InboundSms
    from channels_inbound.voice.models import Call
    from interactions.models import Interaction, InteractionTransition, Message
    from routing.models import Offer

    def q(name: str) -> str:
        return connection.ops.quote_name(name)

    rows: dict[int, dict[str, Any]] = {}
    sql = (
        f"SELECT i.id, i.channel, extract(epoch FROM i.created_at),"
        f" (SELECT extract(epoch FROM pg_xact_commit_timestamp(t.xmin)) FROM"
        f"  {q(InteractionTransition._meta.db_table)} t WHERE t.interaction_id = i.id"
        f"  AND t.to_status = 'queued' ORDER BY t.id LIMIT 1),"
        f" (SELECT extract(epoch FROM o.created_at) FROM {q(Offer._meta.db_table)} o"
        f"  WHERE o.interaction_id = i.id ORDER BY o.id LIMIT 1),"
        f" (SELECT extract(epoch FROM pg_xact_commit_timestamp(t.xmin)) FROM"
        f"  {q(InteractionTransition._meta.db_table)} t WHERE t.interaction_id = i.id"
        f"  AND t.to_status = 'offered' ORDER BY t.id LIMIT 1)"
        f" FROM {q(Interaction._meta.db_table)} i WHERE i.created_at >= to_timestamp(%s)"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [run_started])
        for pk, channel, created, queued, pass_at, offered in cursor.fetchall():
            rows[pk] = {
                "channel": channel,
                "created": float(created),
                "queued": float(queued) if queued is not None else None,
                "pass": float(pass_at) if pass_at is not None else None,
                "offered": float(offered) if offered is not None else None,
            }
    keys: dict[str, int] = {}
    received: dict[str, float] = {}
    for sid, at in InboundSms.objects.filter(received_at__gte=_aware(run_started)).values_list(
        "message_sid", "received_at"
    ):
        received[sid] = at.timestamp()
    for provider_id, interaction_id in Message.objects.filter(
        channel=Channel.SMS, provider_id__in=list(received)
    ).values_list("provider_id", "interaction_id"):
        if provider_id:
            keys[provider_id] = interaction_id
    for sid, interaction_id in Call.objects.filter(interaction__in=list(rows)).values_list(
        "call_sid", "interaction_id"
    ):
        keys[sid] = interaction_id
    for name, interaction_id in ChatSession.objects.filter(interaction__in=list(rows)).values_list(
        "display_name", "interaction_id"
    ):
        keys[name] = interaction_id
    print(json.dumps({"interactions": rows, "keys": keys, "received": received}))


def _aware(epoch: float) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, tz=UTC)


# --------------------------------------------------------------------------- agents
@dataclass
class Frames:
    """The ``offer.created`` frames the agents received: interaction id -> first time."""

    offers: dict[int, float] = field(default_factory=dict)
    accepted: int = 0
    closed: int = 0
    refused: dict[str, int] = field(default_factory=dict)

    def count(self, key: str) -> None:
        self.refused[key] = self.refused.get(key, 0) + 1


class LoopAgent:
    """An agent's console: the socket, the offers it shows, accept and close at once."""

    def __init__(
        self, agent_id: int, session_key: str, base: str, frames: Frames, via_socket: bool = True
    ) -> None:
        self.agent_id = agent_id
        self.via_socket = via_socket  # accept and close over the console socket, as the console
        self.ws: Any = None
        self.answers: dict[int, asyncio.Future[int]] = {}
        # interactions whose close waits for their call to end, and the status it ended in
        self.call_ends: dict[int, asyncio.Event] = {}
        self.call_ended_as: dict[int, str] = {}
        self.next_ref = 0
        self.base = base
        self.frames = frames
        self.cookies = {"sessionid": session_key, "csrftoken": CSRF}
        self.http: aiohttp.ClientSession | None = None
        self.tasks: set[asyncio.Task[Any]] = set()
        self.last_event_id = 0
        self.seen: set[int] = set()
        self.connected = asyncio.Event()
        self.stop = asyncio.Event()

    def _headers(self) -> dict[str, str]:
        return {
            "Accept": "application/json",
            "X-CSRFToken": CSRF,
            "Origin": self.base,
            "Referer": self.base + "/console/",
        }

    async def post(self, path: str, data: dict[str, str] | None = None) -> int:
        assert self.http is not None
        for _attempt in range(5):
            try:
                async with self.http.post(
                    self.base + path,
                    data=data or {},
                    headers=self._headers(),
                    timeout=aiohttp.ClientTimeout(total=30),
                    allow_redirects=False,
                ) as response:
                    await response.read()
                    if response.status < 500:
                        return response.status
            except (aiohttp.ClientError, TimeoutError, OSError):
                pass
            await asyncio.sleep(0.5)
        return 0

    async def act(
        self, action: str, path: str, data: dict[str, str] | None = None, **ids: int
    ) -> int:
        """An accept or close: over the socket while it is open (what the console does), else
        a POST to ``path``. Returns the HTTP status the action answered (0: no answer). Like
        :meth:`post`, an answer of 500 or none is tried again (counted: ``socket_500``...)."""
        for _attempt in range(5):
            ws = self.ws
            if not self.via_socket or ws is None:
                return await self.post(path, data)
            self.next_ref += 1
            ref = self.next_ref
            answer: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            self.answers[ref] = answer
            message = {"type": "action", "ref": ref, "action": action, **ids, **(data or {})}
            try:
                await ws.send(json.dumps(message))
                status = await asyncio.wait_for(answer, 30)
            except (OSError, TimeoutError, websockets.WebSocketException):
                status = 0
            finally:
                self.answers.pop(ref, None)
            if 0 < status < 500:
                return status
            self.frames.count(f"socket_{status}")
            await asyncio.sleep(0.5)
        return 0

    async def start(self, connector: aiohttp.BaseConnector) -> None:
        jar = aiohttp.CookieJar(unsafe=True)
        self.http = aiohttp.ClientSession(
            connector=connector, connector_owner=False, cookie_jar=jar
        )
        jar.update_cookies(self.cookies, response_url=aiohttp.client.URL(self.base))
        self._spawn(self._run_socket())
        await asyncio.wait_for(self.connected.wait(), 300)
        status = await self.post("/console/state/", {"state": "available"})
        if status != 200:
            raise RuntimeError(f"agent {self.agent_id}: going available answered {status}")

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _run_socket(self) -> None:
        cookie = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        while not self.stop.is_set():
            try:
                async with websockets.connect(
                    self.base.replace("http://", "ws://") + "/ws/console/",
                    additional_headers={"Cookie": cookie, "Origin": self.base},
                    open_timeout=30,
                    ping_interval=None,
                    close_timeout=1,
                ) as ws:
                    await ws.send(
                        json.dumps({"type": "resume", "last_event_id": self.last_event_id})
                    )
                    self.connected.set()
                    beating = asyncio.create_task(self._heartbeat(ws))
                    self.ws = ws
                    try:
                        async for raw in ws:
                            self._on_frame(json.loads(raw), time.time())
                    finally:
                        self.ws = None
                        beating.cancel()
                        for answer in self.answers.values():  # they cannot come any more
                            if not answer.done():
                                answer.set_result(0)
            except (OSError, TimeoutError, websockets.WebSocketException):
                if self.stop.is_set():
                    return
                self.frames.count("console_reconnects")
                await asyncio.sleep(1)

    async def _heartbeat(self, ws: Any) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            await ws.send('{"type": "heartbeat"}')

    def _on_frame(self, frame: dict[str, Any], at: float) -> None:
        kind = frame.get("type")
        if kind == "answer":
            answer = self.answers.get(frame.get("ref"))  # type: ignore[arg-type]
            if answer is not None and not answer.done():
                answer.set_result(int(frame.get("status") or 0))
        elif kind == "event":
            self._on_event(frame, at)
        elif kind == "replay":
            for event in frame.get("events") or []:
                self._on_event(event, at)

    def _on_event(self, message: dict[str, Any], at: float) -> None:
        if isinstance(message.get("id"), int):
            self.last_event_id = max(self.last_event_id, message["id"])
        payload = message.get("payload") or {}
        if message.get("event") == "agent.state" and (
            payload.get("state") == "offline"
            or (payload.get("state") == "paused" and payload.get("reason") == "missed")
        ):  # taken offline (console cut) or paused for a missed offer: back to work
            self.frames.count("back_to_available")
            self._spawn(self.post("/console/state/", {"state": "available"}))
        if message.get("event") == "interaction.status":
            waiting = self.call_ends.get(payload.get("interaction_id"))  # type: ignore[arg-type]
            if waiting is not None and payload.get("to") != "assigned":
                self.call_ended_as[int(payload["interaction_id"])] = str(payload.get("to"))
                waiting.set()
        if message.get("event") != "offer.created":
            return
        offer_id = int(payload["offer_id"])
        if offer_id in self.seen:
            return
        self.seen.add(offer_id)
        self.frames.offers.setdefault(int(payload["interaction_id"]), at)
        self._spawn(self._take(offer_id, int(payload["interaction_id"])))

    async def _take(self, offer_id: int, interaction_id: int) -> None:
        status = await self.act("accept", f"/console/offers/{offer_id}/accept/", offer_id=offer_id)
        if status != 200:
            self.frames.count(f"accept_{status}")
            return
        self.frames.accepted += 1
        path = f"/console/interactions/{interaction_id}/"
        ids = {"interaction_id": interaction_id}
        ended = self.call_ends.setdefault(interaction_id, asyncio.Event())
        status = await self.act("close", path + "close/", {"notes": "loop"}, **ids)
        for _attempt in range(3):
            if status != 409:
                break
            # A call in progress: closed once the (fake) phone hung up, which the console is
            # told (interaction.status to wrap_up), as an agent would, not by asking again and
            # again. Gone elsewhere meanwhile (requeued, transferred): nothing more to do.
            try:
                await asyncio.wait_for(ended.wait(), 60)
            except TimeoutError:
                break
            if self.call_ended_as.get(interaction_id) != "wrap_up":
                break
            status = await self.act("close", path + "close/", {"notes": "loop"}, **ids)
            if status == 409:
                await asyncio.sleep(1)
        self.call_ends.pop(interaction_id, None)
        self.call_ended_as.pop(interaction_id, None)
        if status == 200:
            self.frames.closed += 1
        else:
            self.frames.count(f"close_{status}")

    async def close(self) -> None:
        self.stop.set()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.http is not None:
            await self.http.close()


HEARTBEAT_S = 20.0  # CONSOLE_HEARTBEAT_SECONDS in the stack below
# Celery workers: "kinds" as docker-compose runs them (routing never waits behind ingestion),
# with fewer processes for 2 cores; "shared": --workers processes consuming every queue.
LAYOUTS: dict[str, list[tuple[str, int]] | None] = {
    "kinds": [("route,celery", 2), ("ingest", 2), ("outbound,reports", 1)],
    "shared": None,
}


# --------------------------------------------------------------------------- citizens
class Citizens:
    """Open-loop arrivals: per arrival its key (MessageSid, CallSid or the chat's name), the
    time its request was sent and whether the app accepted it."""

    def __init__(self, session: aiohttp.ClientSession, run_id: str, bases: list[str]) -> None:
        self.session = session
        self.run_id = run_id
        self.bases = bases
        self.sent: dict[str, float] = {}
        self.channel: dict[str, str] = {}
        self.accepted: set[str] = set()
        self.refused = 0
        self.webhook_ms: list[float] = []
        self.chat_sockets: set[asyncio.Task[Any]] = set()
        self.numbers = iter(range(10_000_000))

    async def _post(self, key: str, path: str, params: dict[str, str]) -> None:
        signed_url = drivers.PUBLIC.base + path
        signature = drivers.VALIDATOR.compute_signature(signed_url, params)
        base = self.bases[hash(key) % len(self.bases)]
        body = urlencode(params)
        for attempt in range(10):
            started = time.time()
            self.sent.setdefault(key, started)
            try:
                async with self.session.post(
                    base + path,
                    data=body,
                    headers={
                        "Content-Type": "application/x-www-form-urlencoded",
                        "X-Twilio-Signature": signature,
                    },
                    timeout=aiohttp.ClientTimeout(total=10),
                ) as response:
                    await response.read()
                    if 200 <= response.status < 300:
                        self.webhook_ms.append((time.time() - started) * 1000)
                        self.accepted.add(key)
                        return
            except (aiohttp.ClientError, TimeoutError, OSError):
                pass
            self.refused += 1
            base = self.bases[(attempt + 1) % len(self.bases)]
            await asyncio.sleep(0.2 * (attempt + 1))

    def _number(self, prefix: str) -> str:
        return f"{prefix}{next(self.numbers):07d}"

    async def sms(self) -> None:
        sid = "SM" + uuid.uuid4().hex
        self.channel[sid] = "sms"
        await self._post(
            sid,
            "/webhooks/twilio/sms/",
            {
                "ToCountry": "FR",
                "SmsMessageSid": sid,
                "NumMedia": "0",
                "SmsSid": sid,
                "SmsStatus": "received",
                "Body": f"Bonjour, une question ({self.run_id})",
                "FromCountry": "FR",
                "To": drivers.SMS_NUMBER,
                "NumSegments": "1",
                "MessageSid": sid,
                "AccountSid": drivers.ACCOUNT,
                "From": self._number("+33670"),
                "ApiVersion": "2010-04-01",
            },
        )

    async def voice(self) -> None:
        sid = "CA" + uuid.uuid4().hex
        self.channel[sid] = "voice"
        await self._post(
            sid,
            "/webhooks/twilio/voice/",
            {
                "CallSid": sid,
                "AccountSid": drivers.ACCOUNT,
                "From": self._number("+33610"),
                "To": drivers.VOICE_NUMBER,
                "CallStatus": "ringing",
                "Direction": "inbound",
                "ApiVersion": "2010-04-01",
                "Caller": "+33612345678",
                "Called": drivers.VOICE_NUMBER,
            },
        )

    async def chat(self, keep_s: float) -> None:
        """Open the widget, ``start`` (which queues the interaction: the time counts from it),
        write one message, stay a while (an agent may answer), then leave."""
        name = f"Loop {self.run_id}-{next(self.numbers)}"
        self.channel[name] = "chat"
        base = self.bases[hash(name) % len(self.bases)].replace("http://", "ws://")
        try:
            async with websockets.connect(
                f"{base}/ws/chat/{drivers.WIDGET_KEY}/",
                additional_headers={"Origin": drivers.CITIZEN_ORIGIN},
                open_timeout=30,
                ping_interval=None,
                close_timeout=1,
            ) as ws:
                await ws.send(json.dumps({"type": "hello", "token": None, "lang": "fr"}))
                await _until(ws, "welcome")
                self.sent[name] = time.time()
                await ws.send(json.dumps({"type": "start", "name": name, "topic": None}))
                await _until(ws, "welcome")
                self.accepted.add(name)
                await ws.send(json.dumps({"type": "message", "id": name, "text": "Bonjour"}))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(_drain(ws), keep_s)
        except (OSError, TimeoutError, websockets.WebSocketException, json.JSONDecodeError):
            self.refused += 1


async def _until(ws: Any, kind: str, timeout: float = 30.0) -> dict[str, Any]:
    end = time.monotonic() + timeout
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), max(0.1, end - time.monotonic())))
        if frame.get("type") == kind:
            return dict(frame)


async def _drain(ws: Any) -> None:
    async for _raw in ws:
        pass


# --------------------------------------------------------------------------- figures
def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return round(ordered[index], 1)


def figures(
    citizens: Citizens,
    frames: Frames,
    db: dict[str, Any],
    keys: set[str],
    rate: float,
    duration: float,
) -> dict[str, Any]:
    """The loop and its stages for the arrivals ``keys``."""
    interactions = {int(k): v for k, v in db["interactions"].items()}
    loop: list[float] = []
    stages: dict[str, list[float]] = {s: [] for s in STAGES}
    by_channel: dict[str, list[float]] = {}
    lost: list[str] = []
    for key in keys:
        if key not in citizens.accepted:
            continue
        sent = citizens.sent[key]
        interaction_id = db["keys"].get(key)
        shown = frames.offers.get(interaction_id) if interaction_id is not None else None
        if shown is None:
            lost.append(key)
            continue
        ms = (shown - sent) * 1000
        loop.append(ms)
        by_channel.setdefault(citizens.channel[key], []).append(ms)
        row = interactions.get(interaction_id or 0, {})
        row_at = db["received"].get(key, sent)
        points = [sent, row_at, row.get("queued"), row.get("pass"), row.get("offered"), shown]
        if all(p is not None for p in points):
            for name, (a, b) in zip(STAGES, itertools.pairwise(points), strict=True):
                stages[name].append((b - a) * 1000)
    return {
        "rate_per_s": rate,
        "duration_s": duration,
        "arrivals": len(keys),
        "accepted": sum(1 for k in keys if k in citizens.accepted),
        "offers": len(loop),
        "loop_p50_ms": percentile(loop, 50),
        "loop_p90_ms": percentile(loop, 90),
        "loop_p99_ms": percentile(loop, 99),
        "loop_max_ms": percentile(loop, 100),
        "stage_p50_ms": {s: percentile(v, 50) for s, v in stages.items()},
        "stage_p99_ms": {s: percentile(v, 99) for s, v in stages.items()},
        "loop_p50_ms_by_channel": {c: percentile(v, 50) for c, v in sorted(by_channel.items())},
        "lost": len(lost),
        "lost_sample": sorted(lost)[:5],
    }


# --------------------------------------------------------------------------- statements
_TRANSACTION_CONTROL = frozenset({"BEGIN", "COMMIT", "ROLLBACK"})
# PostgreSQL's own foreign-key checks (run by its triggers for each row written): counted
# apart, they are not round trips
_FK_CHECK = re.compile(r'^SELECT \$?\d+ FROM ONLY "[^"]+"\."[^"]+" x WHERE .* FOR KEY SHARE OF x$')


def pg_statements_reset(database_url: str) -> None:
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        conn.execute("SELECT pg_stat_statements_reset()")


def pg_statements(database_url: str, arrivals: int, top: int = 12) -> dict[str, Any]:
    """What the clients sent PostgreSQL since the last reset, per arrival."""
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT s.calls, s.total_exec_time, s.query FROM pg_stat_statements s "
            "JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = current_database() "
            "AND s.query NOT LIKE '%pg_stat_statements%'"
        ).fetchall()
    per = max(1, arrivals)
    control = [(c, t, q) for c, t, q in rows if q.strip().upper() in _TRANSACTION_CONTROL]
    checks = [(c, t, q) for c, t, q in rows if _FK_CHECK.match(" ".join(q.split()))]
    work = sorted(
        (
            (c, t, q)
            for c, t, q in rows
            if q.strip().upper() not in _TRANSACTION_CONTROL
            and not _FK_CHECK.match(" ".join(q.split()))
        ),
        reverse=True,
    )
    return {
        "per_arrival": round(sum(c for c, _, _ in work) / per, 1),
        "foreign_key_checks_per_arrival": round(sum(c for c, _, _ in checks) / per, 1),
        "transactions_per_arrival": round(
            sum(c for c, _, q in control if q.strip().upper() != "BEGIN") / per, 1
        ),
        "exec_ms_per_arrival": round(sum(t for _, t, _ in work) / per, 2),
        "top": [
            [round(c / per, 2), round(t / max(1, c), 3), " ".join(q.split())[:110]]
            for c, t, q in work[:top]
        ],
    }


# --------------------------------------------------------------------------- the run
class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.stack = Stack(
            env_overrides={
                "CONSOLE_HEARTBEAT_SECONDS": str(int(HEARTBEAT_S)),
                "ROUTING_HEARTBEAT_WINDOW_SECONDS": "120",
                "ROUTING_CONSOLE_GRACE_SECONDS": "60",
                "ROUTING_OFFER_TIMEOUT_VOICE": "120",
                "ROUTING_OFFER_TIMEOUT_CHAT": "120",
                "ROUTING_OFFER_TIMEOUT_SMS": "120",
                "ROUTING_WRAP_UP_SECONDS": "1",
                "SMS_SWEEP_SECONDS": "30",
                "CHAT_SWEEP_SECONDS": "60",
                "VOICE_WAIT_LOOP_SECONDS": "120",
                "CHAT_RATE_CONNECT_IP_BURST": "1000000",
                "CHAT_RATE_IP_BURST": "1000000",
            },
            workers=args.workers,
            concurrency=args.concurrency,
            worker_queues=LAYOUTS[args.layout],
            pg_options="-c track_commit_timestamp=on"
            + (
                " -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=top"
                if args.pg_statements
                else ""
            ),
        )
        self.run_id = uuid.uuid4().hex[:6]
        self.frames = Frames()
        self.agents: list[LoopAgent] = []
        self.cpu: dict[str, Any] = {}
        self.statements: dict[str, Any] = {}

    def _in_stack(self, code: str) -> str:
        return self.stack.run_python(code)

    def prepare(self) -> tuple[list[tuple[str, int]], dict[str, str]]:
        self.stack.start()
        pairs = json.loads(
            self._in_stack(f"from bench.chaos import setup_data; setup_data({self.args.agents})")
        )
        names = [u for u, _ in pairs]
        sessions = json.loads(
            self._in_stack(f"from bench.loop import make_sessions; make_sessions({names!r})")
        )
        self.stack.start_app()
        drivers.configure(self.stack.env["PUBLIC_BASE_URL"], self.stack.web_bases())
        return [(u, int(i)) for u, i in pairs], sessions

    async def phase(
        self, citizens: Citizens, rate: float, duration: float, drain: float
    ) -> tuple[set[str], float]:
        """Arrivals at ``rate`` for ``duration`` s, then until every accepted one was offered
        or ``drain`` s passed. Returns the arrivals' keys and the phase's start (epoch)."""
        args = self.args
        before = set(citizens.channel)
        if args.pg_statements:
            pg_statements_reset(self.stack.env["DATABASE_URL"])
        cpu_before = self._cpu()
        started = time.time()
        tasks: set[asyncio.Task[Any]] = set()
        t0 = time.monotonic()
        n = 0
        chooser = random.Random(7)
        while time.monotonic() - t0 < duration:
            n += 1
            draw = chooser.random()
            if draw < args.chat_share:
                coro = citizens.chat(keep_s=args.chat_keep_s)
            elif draw < args.chat_share + args.voice_share:
                coro = citizens.voice()
            else:
                coro = citizens.sms()
            task = asyncio.create_task(coro)
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            await asyncio.sleep(max(0.0, t0 + n / rate - time.monotonic()))
        keys = set(citizens.channel) - before
        deadline = time.monotonic() + drain
        while time.monotonic() < deadline:
            await asyncio.sleep(1)
            if sum(1 for k in keys if k in citizens.accepted) < len(keys) - citizens.refused:
                continue  # requests still in flight
            db = json.loads(self._in_stack(f"from bench.loop import collect; collect({started})"))
            shown = sum(
                1
                for k in keys
                if k in citizens.accepted and self.frames.offers.get(db["keys"].get(k, -1))
            )
            if shown >= sum(1 for k in keys if k in citizens.accepted):
                break
        for task in list(tasks):  # arrivals still retrying after the drain: given up
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        cpu_after = self._cpu()
        wall = time.time() - started
        self.statements = (
            pg_statements(self.stack.env["DATABASE_URL"], len(keys)) if args.pg_statements else {}
        )
        self.cpu = {
            "wall_s": round(wall, 1),
            "cpu_ms_per_arrival": {
                k: round((cpu_after[k] - cpu_before.get(k, 0.0)) * 1000 / max(1, len(keys)), 1)
                for k in cpu_after
            },
            "cores_busy": {
                k: round((cpu_after[k] - cpu_before.get(k, 0.0)) / wall, 2) for k in cpu_after
            },
        }
        return keys, started

    def _cpu(self) -> dict[str, float]:
        """CPU seconds so far per part of the stack, and the bench's own (the client)."""
        times = os.times()
        return {**self.stack.cpu_seconds(), "bench_client": times.user + times.system}

    async def main(self, pairs: list[tuple[str, int]], sessions: dict[str, str]) -> dict[str, Any]:
        args = self.args
        bases = self.stack.web_bases()
        connector = aiohttp.TCPConnector(limit=200)
        for n, (username, agent_id) in enumerate(pairs):
            self.agents.append(
                LoopAgent(
                    agent_id,
                    sessions[username],
                    bases[n % len(bases)],
                    self.frames,
                    via_socket=args.actions == "socket",
                )
            )
        log(f"{len(self.agents)} agents opening their consoles ...")
        for start in range(0, len(self.agents), 25):
            await asyncio.gather(*(a.start(connector) for a in self.agents[start : start + 25]))
        await asyncio.sleep(2)
        result: dict[str, Any] = {}
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=400)) as session:
            citizens = Citizens(session, self.run_id, bases)
            if args.baseline_rate:
                log(f"baseline: {args.baseline_rate}/s for {args.baseline_s} s")
                keys, started = await self.phase(
                    citizens, args.baseline_rate, args.baseline_s, args.drain_s
                )
                db = json.loads(
                    self._in_stack(f"from bench.loop import collect; collect({started})")
                )
                result["baseline"] = figures(
                    citizens, self.frames, db, keys, args.baseline_rate, args.baseline_s
                )
                result["baseline"]["cpu"] = self.cpu
                if self.statements:
                    result["baseline"]["statements"] = self.statements
                log(f"baseline: {json.dumps(result['baseline'])}")
                await asyncio.sleep(3)
            log(f"load: {args.rate}/s for {args.duration} s")
            keys, started = await self.phase(citizens, args.rate, args.duration, args.drain_s)
            db = json.loads(self._in_stack(f"from bench.loop import collect; collect({started})"))
            main = figures(citizens, self.frames, db, keys, args.rate, args.duration)
            main["webhook_p50_ms"] = percentile(citizens.webhook_ms, 50)
            main["webhook_p99_ms"] = percentile(citizens.webhook_ms, 99)
            main["refused_attempts"] = citizens.refused
            main["cpu"] = self.cpu
            if self.statements:
                main["statements"] = self.statements
                log("statements sent most often (per arrival, mean ms, statement):")
                for calls, mean, query in self.statements["top"]:
                    log(f"  {calls:6.2f} {mean:8.3f}  {query}")
        for agent in self.agents:
            await agent.close()
        await connector.close()
        return {
            **main,
            **result,
            "agents": args.agents,
            "actions": args.actions,
            "workers": LAYOUTS[args.layout] or f"{args.workers}x{args.concurrency} (all queues)",
            "shares": {
                "sms": round(1 - args.chat_share - args.voice_share, 2),
                "chat": args.chat_share,
                "voice": args.voice_share,
            },
            "agent_actions": {
                "accepted": self.frames.accepted,
                "closed": self.frames.closed,
                **self.frames.refused,
            },
        }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--rate", type=float, default=100.0, help="arrivals per second")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of arrivals")
    parser.add_argument("--agents", type=int, default=500)
    parser.add_argument("--chat-share", type=float, default=0.1)
    parser.add_argument("--voice-share", type=float, default=0.1)
    parser.add_argument("--chat-keep-s", type=float, default=5.0, help="a chat stays open")
    parser.add_argument(
        "--layout", choices=sorted(LAYOUTS), default="kinds", help="Celery workers by kind or not"
    )
    parser.add_argument("--workers", type=int, default=2, help="processes (--layout shared)")
    parser.add_argument("--concurrency", type=int, default=2, help="children (--layout shared)")
    parser.add_argument("--baseline-rate", type=float, default=0.0, help="a low rate first")
    parser.add_argument("--baseline-s", type=float, default=10.0)
    parser.add_argument("--drain-s", type=float, default=90.0)
    parser.add_argument("--keep-logs", type=Path, default=None, help="copy the logs there")
    parser.add_argument(
        "--actions",
        choices=("socket", "http"),
        default="socket",
        help="the agents accept and close over their console socket (as the console does "
        "while it is open) or by POSTs to the endpoints",
    )
    parser.add_argument(
        "--pg-statements",
        action="store_true",
        help="count the statements sent to PostgreSQL per arrival (pg_stat_statements)",
    )
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.duration <= 0 or args.agents <= 0:
        parser.error("--rate, --duration and --agents must be positive")
    if not 0 <= args.chat_share + args.voice_share <= 1:
        parser.error("--chat-share + --voice-share must be between 0 and 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bench = Bench(args)

    def cleanup() -> None:
        bench.stack.close(keep_logs=args.keep_logs)

    atexit.register(cleanup)

    def on_signal(signum: int, _frame: Any) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        try:
            cleanup()
        finally:
            os._exit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    try:
        pairs, sessions = bench.prepare()
        result = asyncio.run(bench.main(pairs, sessions))
    except Exception as exc:
        log(f"bench failed: {type(exc).__name__}: {exc}")
        for name in ("web1", "worker1", "beat"):
            tail = bench.stack.log_tail(name, 1500)
            if tail.strip():
                log(f"--- {name} log tail:\n{tail}")
        raise
    print(json.dumps(result), flush=True)
    return 0 if result["lost"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
