"""The chaos harness's citizens and agents (bench/chaos.py): signed Twilio SMS and voice
webhooks, SMTP deliveries, chat widget sockets, and scripted agents on the console.

Every delivery the app *accepted* is written to the :class:`Ledger`: a webhook answered 2xx,
an SMTP ``250``, a chat message the server echoed back (its ``entry`` frame with our client
id). A delivery that was not accepted is retried with the same provider id (as a mail relay or
the chat widget does, and a caller told to call back later), so a retry after a lost answer
also tests that nothing is stored twice. An inbound SMS is NOT retried, as Twilio does not
retry a messaging webhook: it is posted once to the webhook URL and once to the Fallback URL
(the other web process); refused by both, it is lost at the provider and counted in
``refused_by_us`` (issue 12: the app spools SMS it cannot store, so this must stay 0). A voice
webhook answered with a hang-up (the "call back later" message while the database is down) is
not an accepted call: the caller calls back (a retry).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import smtplib
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp
import websockets
from twilio.request_validator import RequestValidator

from bench.chaos_stack import ACCOUNT, TOKEN
from interactions.channels import Channel

SMS_NUMBER = "+33900000001"
VOICE_NUMBER = "+33900000002"
EMAIL_ADDRESS = "contact@chaos.localhost"
WIDGET_KEY = "chaos-widget"
CITIZEN_ORIGIN = "http://citizen.localhost"
AGENT_PASSWORD = "Chaos-pass-2026!"  # noqa: S105 - a throwaway test account's
VALIDATOR = RequestValidator(TOKEN)


# Where the app believes it is reached (PUBLIC_BASE_URL): webhooks are signed for it, and sent
# to any web process (a load balancer in front).
class _Public:
    base = ""
    bases: tuple[str, ...] = ("",)


PUBLIC = _Public()


def configure(public_base: str, bases: list[str]) -> None:
    PUBLIC.base = public_base
    PUBLIC.bases = tuple(bases)


def _rebase(url: str, base: str) -> str:
    parts = urlsplit(url)
    return base + parts.path + (f"?{parts.query}" if parts.query else "")


def post_signed_sync(
    url: str | None, params: dict[str, str], *, path: str = "", deadline_s: float = 60.0
) -> bool:
    """POST a signed provider callback (the fake provider's thread), retried on every web
    process until answered 2xx or ``deadline_s``."""
    signed_url = url or (PUBLIC.base + path)
    signature = VALIDATOR.compute_signature(signed_url, params)
    body = urlencode(params).encode()
    deadline = time.monotonic() + deadline_s
    attempt = 0
    while time.monotonic() < deadline:
        base = PUBLIC.bases[attempt % len(PUBLIC.bases)]
        attempt += 1
        request = urllib.request.Request(  # noqa: S310 - http://127.0.0.1 only
            _rebase(signed_url, base),
            data=body,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": signature,
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                if 200 <= response.status < 300:
                    return True
        except (urllib.error.URLError, OSError, TimeoutError):
            pass
        time.sleep(0.5)
    return False


# --------------------------------------------------------------------------- the ledger
@dataclass
class Ledger:
    """What the app accepted, per channel: provider id -> monotonic time of acceptance."""

    accepted: dict[str, dict[str, float]] = field(
        default_factory=lambda: {"sms": {}, "voice": {}, "email": {}, "chat": {}}
    )
    attempts: dict[str, int] = field(
        default_factory=lambda: {"sms": 0, "voice": 0, "email": 0, "chat": 0}
    )
    refused: dict[str, int] = field(
        default_factory=lambda: {"sms": 0, "voice": 0, "email": 0, "chat": 0}
    )
    given_up: dict[str, int] = field(
        default_factory=lambda: {"sms": 0, "voice": 0, "email": 0, "chat": 0}
    )
    # SMS refused on the webhook URL and on the Fallback URL: lost at the provider.
    refused_by_us: dict[str, int] = field(default_factory=lambda: {"sms": 0})

    def accept(self, channel: str, ident: str) -> None:
        self.accepted[channel].setdefault(ident, time.time())

    def total(self) -> int:
        return sum(len(v) for v in self.accepted.values())


class Pacer:
    """Open loop at ``rate`` per second while ``running``; each tick starts ``make()``."""

    def __init__(self, rate: float, make: Callable[[int], Any]) -> None:
        self.rate = rate
        self.make = make
        self.tasks: set[asyncio.Task[Any]] = set()

    async def run(self, running: asyncio.Event) -> None:
        i = 0
        start = time.monotonic()
        while running.is_set():
            i += 1
            task = asyncio.create_task(self.make(i))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            due = start + i / self.rate
            await asyncio.sleep(max(0.0, due - time.monotonic()))

    async def drain(self, timeout: float) -> None:
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=timeout)
        for task in list(self.tasks):
            task.cancel()


# --------------------------------------------------------------------------- citizens
class Citizens:
    def __init__(self, ledger: Ledger, session: aiohttp.ClientSession, run_id: str) -> None:
        self.ledger = ledger
        self.session = session
        self.run_id = run_id
        self.senders = [f"+3367{n:07d}" for n in range(40)]
        self.chat_sockets: set[Any] = set()

    async def _post_webhook(
        self, channel: str, path: str, params: dict[str, str], *, attempts: int = 40
    ) -> bool:
        """Post until answered 2xx, at most ``attempts`` times (40: about a minute of retries,
        then the delivery is given up), alternating the two web processes."""
        signed_url = PUBLIC.base + path
        signature = VALIDATOR.compute_signature(signed_url, params)
        body = urlencode(params)
        for attempt in range(attempts):
            base = PUBLIC.bases[attempt % 2]
            self.ledger.attempts[channel] += 1
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
                    answer = await response.read()
                    # A hang-up is not a call taken: "call back later" (database down).
                    if 200 <= response.status < 300 and b"<Hangup" not in answer:
                        return True
                    self.ledger.refused[channel] += 1
            except (aiohttp.ClientError, TimeoutError, OSError):
                self.ledger.refused[channel] += 1
            if attempt + 1 < attempts:
                await asyncio.sleep(min(3.0, 0.3 * (attempt + 1)))
        self.ledger.given_up[channel] += 1
        return False

    async def sms(self, i: int) -> None:
        sid = "SM" + uuid.uuid4().hex
        params = {
            "ToCountry": "FR",
            "SmsMessageSid": sid,
            "NumMedia": "0",
            "SmsSid": sid,
            "SmsStatus": "received",
            "Body": f"Bonjour, demande {i} ({self.run_id})",
            "FromCountry": "FR",
            "To": SMS_NUMBER,
            "NumSegments": "1",
            "MessageSid": sid,
            "AccountSid": ACCOUNT,
            "From": random.choice(self.senders),
            "ApiVersion": "2010-04-01",
        }
        # Twilio does not retry an SMS webhook: the URL, then the Fallback URL, then lost.
        if await self._post_webhook("sms", "/webhooks/twilio/sms/", params, attempts=2):
            self.ledger.accept("sms", sid)
        else:
            self.ledger.refused_by_us["sms"] += 1

    async def voice(self, i: int) -> None:
        sid = "CA" + uuid.uuid4().hex
        params = {
            "CallSid": sid,
            "AccountSid": ACCOUNT,
            "From": f"+3361{i % 10000000:08d}"[:12],
            "To": VOICE_NUMBER,
            "CallStatus": "ringing",
            "Direction": "inbound",
            "ApiVersion": "2010-04-01",
            "Caller": "+33612345678",
            "Called": VOICE_NUMBER,
        }
        if await self._post_webhook("voice", "/webhooks/twilio/voice/", params):
            self.ledger.accept("voice", sid)

    def _send_mail(self, host_port: tuple[str, int], message: EmailMessage) -> int:
        with smtplib.SMTP(*host_port, timeout=15) as client:
            client.ehlo("relay.chaos.localhost")
            client.mail("citoyen@exemple.fr")
            code, _ = client.rcpt(EMAIL_ADDRESS)
            if code != 250:
                return code
            code, _ = client.data(message.as_bytes())
            return int(code)

    async def email(self, i: int, smtp_port: int) -> None:
        message_id = f"<{uuid.uuid4().hex}@exemple.fr>"
        message = EmailMessage()
        message["From"] = f"Citoyen {i} <citoyen{i % 50}@exemple.fr>"
        message["To"] = EMAIL_ADDRESS
        message["Subject"] = f"Demande {i}"
        message["Message-ID"] = message_id
        message.set_content(f"Bonjour, voici ma demande {i} ({self.run_id}).")
        loop = asyncio.get_running_loop()
        for attempt in range(30):
            self.ledger.attempts["email"] += 1
            try:
                code = await loop.run_in_executor(
                    None, self._send_mail, ("127.0.0.1", smtp_port), message
                )
                if code == 250:
                    self.ledger.accept("email", message_id.strip("<>"))
                    return
            except (OSError, smtplib.SMTPException):
                pass
            self.ledger.refused["email"] += 1
            await asyncio.sleep(min(3.0, 0.5 * (attempt + 1)))
        self.ledger.given_up["email"] += 1

    async def chat(self, i: int, messages: int = 2) -> None:
        """A citizen opens the widget, starts a chat, writes ``messages`` messages (each
        re-sent with the same id after a reconnection until echoed), waits a little for an
        agent, then ends the chat."""
        token: str | None = None
        ids = [f"{self.run_id}-{i}-{n}" for n in range(messages)]
        acked: set[str] = set()
        next_to_send = 0
        ended = False
        deadline = time.monotonic() + 120
        attempt = 0
        while time.monotonic() < deadline and not ended:
            base = PUBLIC.bases[attempt % 2].replace("http://", "ws://")
            attempt += 1
            self.ledger.attempts["chat"] += 1
            try:
                async with websockets.connect(
                    f"{base}/ws/chat/{WIDGET_KEY}/",
                    additional_headers={"Origin": CITIZEN_ORIGIN},
                    open_timeout=10,
                    ping_interval=None,
                ) as ws:
                    self.chat_sockets.add(ws)
                    try:
                        await ws.send(json.dumps({"type": "hello", "token": token, "lang": "fr"}))
                        if token is None:
                            await self._until(ws, "welcome")
                            await ws.send(
                                json.dumps({"type": "start", "name": f"Citoyen {i}", "topic": None})
                            )
                        welcome = await self._until(ws, "welcome")
                        token = welcome.get("token") or token
                        for entry in welcome.get("entries") or []:
                            if entry.get("client_id") in ids:
                                acked.add(entry["client_id"])
                        waited_for_agent = 0.0
                        while True:
                            pending = [c for c in ids if c not in acked]
                            if pending and next_to_send <= ids.index(pending[0]):
                                cid = pending[0]
                                await ws.send(
                                    json.dumps(
                                        {"type": "message", "id": cid, "text": f"Question {cid}"}
                                    )
                                )
                                next_to_send = ids.index(cid) + 1
                            try:
                                raw = await asyncio.wait_for(ws.recv(), 2.0)
                            except TimeoutError:
                                if not pending:
                                    waited_for_agent += 2.0
                                    if waited_for_agent >= 8.0:
                                        await ws.send(json.dumps({"type": "end"}))
                                        ended = True
                                        break
                                else:  # no echo within 2 s: send it again (same id)
                                    next_to_send = ids.index(pending[0])
                                continue
                            frame = json.loads(raw)
                            entry = frame.get("entry") or {}
                            if entry.get("client_id") in ids:
                                cid = entry["client_id"]
                                if cid not in acked:
                                    acked.add(cid)
                                    self.ledger.accept("chat", cid)
                            if frame.get("type") == "state" and frame.get("state") == "ended":
                                ended = True
                                break
                    finally:
                        self.chat_sockets.discard(ws)
            except (OSError, TimeoutError, websockets.WebSocketException, json.JSONDecodeError):
                self.ledger.refused["chat"] += 1
                await asyncio.sleep(min(3.0, 0.5 * attempt))
        if len(acked) < len(ids):
            self.ledger.given_up["chat"] += len(ids) - len(acked)

    async def _until(self, ws: Any, kind: str, timeout: float = 15.0) -> dict[str, Any]:
        end = time.monotonic() + timeout
        while True:
            raw = await asyncio.wait_for(ws.recv(), max(0.1, end - time.monotonic()))
            frame = json.loads(raw)
            if frame.get("type") == kind:
                return dict(frame)


# --------------------------------------------------------------------------- agents
class Agent:
    """A scripted agent: logs in over HTTP, keeps the console socket (resume by event id,
    heartbeats), accepts what is offered, replies, wraps up and closes; re-reads its state
    (``/console/snapshot/``) after any failed action, as console.js does."""

    def __init__(self, username: str, agent_id: int, stats: dict[str, int]) -> None:
        self.username = username
        self.agent_id = agent_id
        self.stats = stats
        self.jar = aiohttp.CookieJar(unsafe=True)
        self.http: aiohttp.ClientSession | None = None
        self.base_index = agent_id % 2
        self.last_event_id = 0
        self.seen_offers: dict[int, float] = {}  # offer id -> time first shown on the socket
        self.snapshot_offers: set[int] = set()  # shown only by an HTTP snapshot
        self.working: set[int] = set()
        self.done: set[int] = set()
        self.answered_offers: set[int] = set()
        self.vanished: list[tuple[float, float]] = []  # (from, to) wall-clock windows
        self.away = False
        self.ws: Any = None
        self.connected_since: float | None = None
        self.tasks: set[asyncio.Task[Any]] = set()
        self.stop = asyncio.Event()
        self.state = "offline"
        self.reason = ""
        self.decline_share = 0.05
        self.catching_up = 0.0
        self.last_frame_at = 0.0
        self.frames = 0

    def _count(self, key: str) -> None:
        self.stats[key] = self.stats.get(key, 0) + 1

    @property
    def base(self) -> str:
        return str(PUBLIC.bases[self.base_index % 2])

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._count("agent_errors")
            if self.stats["agent_errors"] <= 3:
                print(f"{self.username}: {task.exception()!r}", flush=True)

    def _csrf(self) -> str:
        for cookie in self.jar:
            if cookie.key == "csrftoken":
                return str(cookie.value)
        return ""

    def _cookie_header(self) -> str:
        return "; ".join(f"{c.key}={c.value}" for c in self.jar)

    async def _request(
        self, method: str, path: str, data: dict[str, str] | None = None, tries: int = 8
    ) -> tuple[int, Any]:
        """One console action on any web process (failover); (status, JSON or None).
        Network errors and 5xx are retried; 0 when it never got an answer."""
        assert self.http is not None
        status = 0
        for attempt in range(tries):
            base = self.base
            headers = {
                "Accept": "application/json",
                "X-CSRFToken": self._csrf(),
                "Origin": base,
                "Referer": base + "/console/",
            }
            try:
                async with self.http.request(
                    method,
                    base + path,
                    data=data,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=15),
                    allow_redirects=False,
                ) as response:
                    status = response.status
                    try:
                        body = await response.json(content_type=None)
                    except (json.JSONDecodeError, aiohttp.ContentTypeError, ValueError):
                        body = None
                    if status < 500:
                        return status, body
            except (aiohttp.ClientError, TimeoutError, OSError):
                status = 0
            self._count("http_retries")
            self.base_index += 1  # the other web process
            await asyncio.sleep(min(2.0, 0.3 * (attempt + 1)))
        return status, None

    async def login(self) -> None:
        self.http = aiohttp.ClientSession(cookie_jar=self.jar)
        for _ in range(20):
            try:
                async with self.http.get(self.base + "/accounts/login/") as response:
                    page = await response.text()
                match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
                async with self.http.post(
                    self.base + "/accounts/login/",
                    data={
                        "username": self.username,
                        "password": AGENT_PASSWORD,
                        "csrfmiddlewaretoken": match.group(1) if match else "",
                    },
                    headers={"Origin": self.base, "Referer": self.base + "/accounts/login/"},
                    allow_redirects=False,
                ) as response:
                    if response.status == 302 and any(c.key == "sessionid" for c in self.jar):
                        break
            except (aiohttp.ClientError, OSError, TimeoutError):
                pass
            self.base_index += 1
            await asyncio.sleep(1)
        else:
            raise RuntimeError(f"{self.username} could not log in")
        # The console page embeds this snapshot (shown at once, its last_event_id the socket's
        # first resume): like the page load, it counts as shown.
        status, body = await self._request("GET", "/console/snapshot/")
        if status == 200 and isinstance(body, dict):
            self._apply_snapshot(body, via_socket=True)
        await self.set_available()

    async def set_available(self) -> None:
        status, _ = await self._request("POST", "/console/state/", {"state": "available"})
        if status == 200:
            self.state, self.reason = "available", ""

    # -- the socket
    async def run(self) -> None:
        self._spawn(self._reconcile_loop())
        while not self.stop.is_set():
            if self.away:
                await asyncio.sleep(0.2)
                continue
            try:
                await self._socket()
            except (OSError, TimeoutError, websockets.WebSocketException, json.JSONDecodeError):
                pass
            except Exception as exc:  # a bug of the script itself: say it, keep the agent going
                self._count("agent_errors")
                print(f"{self.username}: {exc!r}", flush=True)
            self.connected_since = None
            if not self.stop.is_set() and not self.away:
                self._count("console_reconnects")
                self.base_index += 1
                await asyncio.sleep(0.5)

    async def _socket(self) -> None:
        url = self.base.replace("http://", "ws://") + "/ws/console/"
        async with websockets.connect(
            url,
            additional_headers={"Cookie": self._cookie_header(), "Origin": self.base},
            open_timeout=10,
            ping_interval=None,
            close_timeout=2,
        ) as ws:
            self.ws = ws
            self.catching_up = time.monotonic()  # this resume brings everything missed
            await ws.send(json.dumps({"type": "resume", "last_event_id": self.last_event_id}))
            self.connected_since = time.time()
            beating = asyncio.create_task(self._heartbeat(ws))
            try:
                async for raw in ws:
                    self.last_frame_at = time.time()
                    self.frames += 1
                    self._on_frame(json.loads(raw))
                    if self.away:
                        break
            finally:
                beating.cancel()
                self.ws = None

    async def _heartbeat(self, ws: Any) -> None:
        while True:
            await ws.send('{"type": "heartbeat"}')
            await asyncio.sleep(3)

    def _on_frame(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "snapshot":
            self.catching_up = 0.0
            self._apply_snapshot(frame.get("state") or {}, via_socket=True)
        elif kind == "replay":
            if not self.catching_up:  # not the answer to its resume: the server caught it up
                self._count("catch_ups")
            self.catching_up = 0.0
            for event in frame.get("events") or []:
                self._on_event(event)
        elif kind == "event":
            self._on_event(frame)

    def _apply_snapshot(self, state: dict[str, Any], *, via_socket: bool) -> None:
        if isinstance(state.get("last_event_id"), int) and via_socket:
            self.last_event_id = max(self.last_event_id, state["last_event_id"])
        agent = state.get("agent") or {}
        self._presence(agent.get("state"), agent.get("pause_reason", ""))
        for offer in (state.get("offers") or {}).values():
            offer_id = int(offer["offer_id"])
            if via_socket:
                self.seen_offers.setdefault(offer_id, time.time())
            elif offer_id not in self.seen_offers:
                self.snapshot_offers.add(offer_id)
            self._offer(offer_id, offer.get("channel", ""))
        for key, summary in (state.get("interactions") or {}).items():
            self._work(int(key), summary.get("channel", ""))

    def _on_event(self, message: dict[str, Any]) -> None:
        if isinstance(message.get("id"), int):
            self.last_event_id = max(self.last_event_id, message["id"])
        event = message.get("event")
        payload = message.get("payload") or {}
        if event == "offer.created":
            offer_id = int(payload["offer_id"])
            self.seen_offers.setdefault(offer_id, time.time())
            self._offer(offer_id, payload.get("channel", ""))
        elif event == "interaction.assigned":
            self._work(int(payload["interaction_id"]), payload.get("channel", ""))
        elif event == "agent.state":
            self._presence(payload.get("state"), payload.get("reason", ""))

    def _presence(self, state: str | None, reason: str) -> None:
        if not state:
            return
        self.state, self.reason = state, reason or ""
        # A real agent paused for a missed offer, or taken offline while their console was
        # cut, comes back to work.
        if ((state == "paused" and reason == "missed") or state == "offline") and not self.away:
            self._count("back_to_available")
            self._spawn(self.set_available())

    def _offer(self, offer_id: int, channel: str) -> None:
        if offer_id in self.answered_offers or self.away:
            return
        self.answered_offers.add(offer_id)
        self._spawn(self._answer(offer_id, channel))

    async def _answer(self, offer_id: int, channel: str) -> None:
        await asyncio.sleep(random.uniform(0.2, 1.0))
        if self.away:
            self.answered_offers.discard(offer_id)
            return
        verb = "decline" if random.random() < self.decline_share else "accept"
        status, body = await self._request("POST", f"/console/offers/{offer_id}/{verb}/")
        self._count(f"{verb}_{status}")
        if status == 200 and verb == "accept" and body and body.get("interaction_id"):
            self._work(int(body["interaction_id"]), channel)
        elif status != 200 and status != 409:
            await self.reconcile()

    def _work(self, interaction_id: int, channel: str) -> None:
        if interaction_id in self.working or interaction_id in self.done or self.away:
            return
        self.working.add(interaction_id)
        self._spawn(self._handle(interaction_id, channel))

    async def _handle(self, interaction_id: int, channel: str) -> None:
        try:
            await asyncio.sleep(random.uniform(0.5, 1.5))
            if channel != Channel.VOICE:
                status, _ = await self._request(
                    "POST",
                    f"/console/interactions/{interaction_id}/reply/",
                    {
                        "text": f"Bonjour, voici notre réponse ({interaction_id}).",
                        "subject": "Votre demande",
                    },
                )
                self._count(f"reply_{status}")
            else:
                await asyncio.sleep(3.5)  # the call's talk time (the fake phone hangs up)
            if self.away:
                return
            await self._request("POST", f"/console/interactions/{interaction_id}/wrap-up/")
            status, _ = await self._request(
                "POST", f"/console/interactions/{interaction_id}/close/", {"notes": "chaos"}
            )
            self._count(f"close_{status}")
            if status == 200:
                self.done.add(interaction_id)
        finally:
            self.working.discard(interaction_id)

    async def reconcile(self) -> None:
        """Read the truth (console.js's resync after a failed action)."""
        status, body = await self._request("GET", "/console/snapshot/", tries=2)
        if status == 200 and isinstance(body, dict):
            self._count("snapshots")
            self._apply_snapshot(body, via_socket=False)

    async def _reconcile_loop(self) -> None:
        while not self.stop.is_set():
            await asyncio.sleep(10 + random.uniform(0, 2))
            if not self.away:
                await self.reconcile()

    # -- faults
    async def vanish(self) -> None:
        """The console is cut off: no close frame, no logout, nothing more from this agent."""
        self.away = True
        self.vanished.append((time.time(), float("inf")))
        ws = self.ws
        if ws is not None and ws.transport is not None:
            ws.transport.abort()

    def come_back(self) -> None:
        start, _ = self.vanished[-1]
        self.vanished[-1] = (start, time.time())
        self.away = False
        self.done.clear()
        self._spawn(self.set_available())
        self._spawn(self.reconcile())

    async def close(self) -> None:
        self.stop.set()
        self.away = True
        ws = self.ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()
        for task in list(self.tasks):
            task.cancel()
        if self.http is not None:
            await self.http.close()
