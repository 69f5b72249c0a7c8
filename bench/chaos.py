#!/usr/bin/env python3
"""Chaos harness: no citizen request is lost, doubled or left unseen under faults.

    .venv/bin/python bench/chaos.py [--short] [--keep-logs DIR]

What it does (loopback only; nothing of the machine's own PostgreSQL or Redis is touched):

1. starts its own PostgreSQL server (``initdb`` into a temporary directory, as the ``postgres``
   OS user when run as root, on a spare port) and its own ``redis-server`` (spare port, no
   persistence), migrates, and creates the organisation's queue, one endpoint per channel (SMS
   and voice numbers, an e-mail address, a chat widget) and 24 agents (``--agents``);
2. starts the production-like processes as docker-compose.yml does: 2 web processes (uvicorn,
   the project's ASGI application; the harness spreads requests over both, as a load balancer
   would), 2 Celery workers (queues ``celery,outbound``), beat and the SMTP server; plus a fake
   Twilio-compatible REST API (bench/chaos_stack.py) that can refuse or stall;
3. drives all four channels at a steady rate: signed Twilio SMS and voice webhooks (the
   official ``RequestValidator``), SMTP deliveries, chat widget sockets; the scripted agents
   log in over HTTP, keep the console socket (resume by event id, heartbeats), accept, reply,
   wrap up and close (bench/chaos_drivers.py);
4. injects in turn: ``kill -9`` of a worker, of a web process and of beat (restarted as a
   supervisor would); Redis killed and restarted (empty); ``pg_terminate_backend`` on the
   app's connections; PostgreSQL stopped 20 s; the provider API refusing, then stalling;
   agents vanishing (sockets cut without logout, back after the heartbeat window + grace);
5. after each fault, polls the checks below in the database until they are green (that time,
   from the fault's end, is its recovery time), then goes on to the next fault.

Checks (a problem is counted once, against the fault during which it appeared; a fault's
``lost`` counts deliveries still missing when its recovery window ended, the total ``lost``
those still missing at the final check):

- ``lost``: an accepted delivery (webhook answered 2xx, SMTP 250, chat message echoed to the
  citizen) with no message in the database: SMS and calls by their provider id (MessageSid,
  CallSid), e-mail by Message-ID, chat by the message's client id. While the load runs, only
  deliveries accepted more than ``--ingest-lag`` seconds ago are checked (the worker ingests
  SMS after the webhook's answer); the final check, after the load stops, checks all of them;
- ``doubled``: extra messages or interactions for one accepted delivery, and interactions with
  two live holders (two pending offers, or a pending offer while held by another agent);
- ``over_capacity``: an agent with more offered + assigned interactions on a channel than their
  capacity, or a call together with other work while calls are exclusive;
- ``stuck``: a pending offer past ``expires_at`` + one sweep (+3 s); an interaction queued for
  longer than one sweep + 5 s while an agent could take it (available, console alive, channel
  on, a free slot, no decline/expiry/failure for it); a received SMS not ingested after the
  SMS sweep + 10 s; an agent in wrap-up past its end + one sweep + 3 s; work still held by an
  agent whose console is silent past the heartbeat window + grace + one sweep + 5 s; an
  agent's SMS still pending 120 s after it was written (past every retry and the sweep);
- ``offers_unseen``: an offer to a scripted agent, created more than 4 s ago, never shown on
  that agent's console socket (as an event, in a replay or in a snapshot sent on the socket);
  offers created while the agent was deliberately gone (``agents_vanish``) are left out.

``max_recovery_s`` is the longest time from a fault's end to all checks green. The last line
printed is one JSON object: ``accepted``, ``lost``, ``doubled``, ``over_capacity``, ``stuck``,
``offers_unseen``, ``max_recovery_s`` and ``per_fault`` (the same per fault), and details.
Targets: all zeros, ``max_recovery_s`` <= 10. Results in docs/benchmarks.md ("Chaos").
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import psycopg

from bench import chaos_drivers as drivers
from bench.chaos_stack import PYTHON, ROOT, Stack, log
from interactions.channels import Channel

SWEEP_S = 5.0  # ROUTING_SWEEP_SECONDS (the settings' default)
SMS_SWEEP_S = 5.0
HEARTBEAT_WINDOW_S = 8.0  # ROUTING_HEARTBEAT_WINDOW_SECONDS in chaos_stack
GRACE_S = 4.0  # ROUTING_CONSOLE_GRACE_SECONDS
# An agent's SMS reply still "pending" after its whole retry schedule (OUTBOUND_RETRY_BACKOFF_S=2
# doubling over OUTBOUND_MAX_ATTEMPTS=5: 30 s, plus 5 provider timeouts of 4 s) and the
# outbound sweep's margin (its next attempt + 60 s, SMS_SWEEP_SECONDS=5): it was neither sent
# nor failed with a reason.
OUTBOUND_STUCK_S = 120.0
# Redis last: consoles that stay open across its restart lose their channel-layer groups (an
# open bug, docs/benchmarks.md), which would otherwise slow every later fault's recovery.
FAULTS = [
    "worker_kill",
    "web_kill",
    "beat_kill",
    "pg_terminate",
    "pg_stop",
    "provider_refuse",
    "provider_stall",
    "agents_vanish",
    "redis_restart",
]


# --------------------------------------------------------------------------- data
def setup_data(agents: int) -> None:
    """Run inside the stack's environment (a subprocess): the queue, the endpoints, the chat
    widget and the agents, with the project's own models. Prints [[username, agent id]...]."""
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import Group
    from django.utils import timezone

    from agents.models import AgentPresence, AgentProfile
    from channels_inbound.chat.models import ChatWidget
    from channels_inbound.models import Endpoint
    from configuration.models import Queue
    from kernel.roles import ensure_roles
    from organisations.models import Membership, sole_organisation

    ensure_roles()
    organisation_id = sole_organisation()
    agent_group = Group.objects.get(name="agent")

    queue = Queue.objects.create(code="chaos", name="Chaos", sla_target_seconds=60)
    Endpoint.objects.create(
        channel=Channel.SMS, address=drivers.SMS_NUMBER, name="SMS", queue=queue
    )
    Endpoint.objects.create(
        channel=Channel.VOICE, address=drivers.VOICE_NUMBER, name="Accueil", queue=queue
    )
    Endpoint.objects.create(
        channel=Channel.EMAIL, address=drivers.EMAIL_ADDRESS, name="Courriel", queue=queue
    )
    chat = Endpoint.objects.create(
        channel=Channel.CHAT, address=drivers.WIDGET_KEY, name="Chat", queue=queue
    )
    ChatWidget.objects.create(endpoint=chat, title="Mairie", allowed_origins=drivers.CITIZEN_ORIGIN)
    out = []
    users = get_user_model()
    hashed = make_password(drivers.AGENT_PASSWORD)  # one slow hash, shared
    for i in range(agents):
        user = users.objects.create(
            username=f"agent{i:02d}", password=hashed, first_name=f"Agent {i}"
        )
        user.groups.add(agent_group)
        Membership.objects.create(user=user, organisation_id=organisation_id)
        profile = AgentProfile.objects.create(
            user=user, languages=["fr", "en"], telework_phone=f"+336120{i:05d}"
        )
        now = timezone.now()
        AgentPresence.objects.filter(agent=profile).update(state_since=now, idle_since=now)
        out.append([user.username, profile.pk])
    print(json.dumps(out))


# --------------------------------------------------------------------------- checks
def _clock(at: float | None) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(at)) if at else "-"


@dataclass
class Findings:
    lost: set[str] = field(default_factory=set)
    doubled: set[str] = field(default_factory=set)
    over_capacity: set[str] = field(default_factory=set)
    stuck: set[str] = field(default_factory=set)
    offers_unseen: set[str] = field(default_factory=set)

    KEYS = ("lost", "doubled", "over_capacity", "stuck", "offers_unseen")

    def minus(self, other: Findings) -> Findings:
        return Findings(**{k: getattr(self, k) - getattr(other, k) for k in self.KEYS})

    def add(self, other: Findings) -> None:
        for k in self.KEYS:
            getattr(self, k).update(getattr(other, k))

    def counts(self) -> dict[str, int]:
        return {k: len(getattr(self, k)) for k in self.KEYS}

    def green(self) -> bool:
        return not any(self.counts().values())

    def sample(self, n: int = 5) -> dict[str, list[str]]:
        return {k: sorted(getattr(self, k))[:n] for k in self.KEYS if getattr(self, k)}


class Checker:
    def __init__(self, stack: Stack, ledger: drivers.Ledger, agents: list[drivers.Agent]) -> None:
        self.stack = stack
        self.ledger = ledger
        self.agents = {a.agent_id: a for a in agents}
        self.started_at = time.time()

    def _rows(self, conn: psycopg.Connection[Any], sql: str, *args: Any) -> list[Any]:
        return list(conn.execute(sql, args).fetchall())

    def run(self, *, ingest_lag: float, strict_before: float = 0.0) -> Findings | None:
        """One pass of every check; None when the database cannot be read. What was accepted
        (or offered) before ``strict_before`` (wall clock: a fault's end) must be there (or
        seen) now: only what came later gets ``ingest_lag`` (4 s for offers)."""
        try:
            with psycopg.connect(
                self.stack.database_url, connect_timeout=3, autocommit=True
            ) as conn:
                conn.execute("SET statement_timeout = '10s'")
                return self._run(conn, ingest_lag, strict_before)
        except psycopg.Error:
            return None

    def _run(
        self, conn: psycopg.Connection[Any], ingest_lag: float, strict_before: float
    ) -> Findings:
        f = Findings()
        now = time.time()
        # -- lost / doubled
        present: dict[str, dict[str, int]] = {}
        for channel in ("sms", "voice", "email"):
            present[channel] = dict(
                self._rows(
                    conn,
                    "SELECT provider_id, count(*) FROM interactions_message WHERE channel = %s"
                    " AND direction = 'inbound' AND provider_id IS NOT NULL GROUP BY 1",
                    channel,
                )
            )
        present["email"] = {k.strip("<>"): v for k, v in present["email"].items()}
        present["chat"] = dict(
            self._rows(
                conn,
                "SELECT substring(provider_id from '[^:]*$'), count(*) FROM interactions_message"
                " WHERE channel = 'chat' AND direction = 'inbound' AND provider_id IS NOT NULL"
                " GROUP BY 1",
            )
        )
        for channel, accepted in self.ledger.accepted.items():
            for ident, at in list(accepted.items()):
                n = present[channel].get(ident, 0)
                if n == 0 and (at <= strict_before or at < now - ingest_lag):
                    f.lost.add(f"{channel}:{ident}")
                elif n > 1:
                    f.doubled.add(f"{channel}:{ident}x{n}")
        for sid, n in self._rows(
            conn,
            "SELECT external_ref, count(*) FROM interactions_interaction WHERE channel = 'voice'"
            " AND external_ref <> '' GROUP BY 1 HAVING count(*) > 1",
        ):
            f.doubled.add(f"voice-interaction:{sid}x{n}")
        for sid, n in self._rows(
            conn,
            "SELECT message_sid, count(*) FROM channels_sms_inboundsms GROUP BY 1"
            " HAVING count(*) > 1",
        ):
            f.doubled.add(f"inbound-sms:{sid}x{n}")
        for (iid,) in self._rows(
            conn,
            "SELECT interaction_id FROM routing_offer WHERE status = 'pending' GROUP BY 1"
            " HAVING count(*) > 1",
        ):
            f.doubled.add(f"two-pending-offers:#{iid}")
        for oid, iid, status in self._rows(
            conn,
            "SELECT o.id, o.interaction_id, i.status FROM routing_offer o"
            " JOIN interactions_interaction i ON i.id = o.interaction_id"
            " WHERE o.status = 'pending' AND o.created_at < now() - interval '2 seconds'"
            " AND (i.status <> 'offered' OR i.assigned_agent_id IS DISTINCT FROM o.agent_id)",
        ):
            f.doubled.add(f"offer-vs-holder:offer#{oid}/#{iid}({status})")
        # -- over capacity
        for agent_id, channel, n, cap in self._rows(
            conn,
            "SELECT i.assigned_agent_id, i.channel, count(*),"
            " CASE i.channel WHEN 'voice' THEN p.capacity_voice WHEN 'chat' THEN p.capacity_chat"
            " WHEN 'email' THEN p.capacity_email ELSE p.capacity_sms END"
            " FROM interactions_interaction i JOIN agents_agentprofile p"
            " ON p.id = i.assigned_agent_id WHERE i.status IN ('offered', 'assigned')"
            " GROUP BY 1, 2, 4",
        ):
            if n > cap:
                f.over_capacity.add(f"agent#{agent_id}:{channel}:{n}>{cap}")
        for (agent_id,) in self._rows(
            conn,
            "SELECT i.assigned_agent_id FROM interactions_interaction i"
            " JOIN agents_agentprofile p ON p.id = i.assigned_agent_id"
            " WHERE i.status IN ('offered', 'assigned') AND p.voice_exclusive GROUP BY 1"
            " HAVING count(*) FILTER (WHERE i.channel = 'voice') > 0"
            " AND count(*) FILTER (WHERE i.channel <> 'voice') > 0",
        ):
            f.over_capacity.add(f"agent#{agent_id}:voice+other")
        # -- stuck
        for label, sql, seconds in STUCK_CHECKS:
            for (ident,) in self._rows(conn, sql, seconds):
                f.stuck.add(f"{label}:{ident}")
        for (iid,) in self._rows(conn, STUCK_QUEUED_SQL, SWEEP_S + 5, HEARTBEAT_WINDOW_S):
            f.stuck.add(f"queued-with-free-agent:#{iid}")
        for iid, agent_id in self._rows(
            conn,
            "SELECT i.id, i.assigned_agent_id FROM interactions_interaction i"
            " JOIN agents_agentpresence p ON p.agent_id = i.assigned_agent_id"
            " WHERE i.status IN ('offered', 'assigned')"
            " AND (p.last_heartbeat_at IS NULL OR"
            " p.last_heartbeat_at < now() - make_interval(secs => %s))",
            HEARTBEAT_WINDOW_S + GRACE_S + SWEEP_S + 5,
        ):
            f.stuck.add(f"held-by-gone-console:#{iid}:agent#{agent_id}")
        # -- offers never shown on the agent's socket
        ids = list(self.agents)
        for oid, agent_id, created in self._rows(
            conn,
            "SELECT id, agent_id, extract(epoch FROM created_at) FROM routing_offer"
            " WHERE agent_id = ANY(%s) AND created_at > to_timestamp(%s)"
            " AND (created_at < now() - interval '4 seconds' OR created_at <= to_timestamp(%s))",
            ids,
            self.started_at,
            strict_before,
        ):
            agent = self.agents[agent_id]
            if oid in agent.seen_offers:
                continue
            if any(a - 1 <= float(created) <= b + 2 for a, b in agent.vanished):
                continue
            f.offers_unseen.add(f"offer#{oid}:agent#{agent_id}")
        return f

    def explain_unseen(self, found: Findings) -> list[str]:
        """For unseen offers: the outbox event that carried each, and the agent's socket."""
        lines = []
        try:
            with psycopg.connect(
                self.stack.database_url, connect_timeout=3, autocommit=True
            ) as conn:
                for item in sorted(found.offers_unseen)[:8]:
                    oid = int(item.split("#")[1].split(":")[0])
                    agent_id = int(item.rsplit("#", 1)[1])
                    agent = self.agents[agent_id]
                    offer = self._rows(
                        conn,
                        "SELECT status, to_char(created_at, 'HH24:MI:SS.MS'),"
                        " to_char(responded_at, 'HH24:MI:SS.MS'), interaction_id"
                        " FROM routing_offer WHERE id = %s",
                        oid,
                    )
                    events = self._rows(
                        conn,
                        "SELECT id, event, to_char(created_at, 'HH24:MI:SS.MS')"
                        " FROM console_agentevent"
                        " WHERE agent_id = %s AND payload->>'offer_id' = %s ORDER BY id",
                        agent_id,
                        str(oid),
                    )
                    lines.append(
                        f"offer#{oid} {offer} events {events}; agent#{agent_id} last_event_id "
                        f"{agent.last_event_id}, socket to {agent.base} since "
                        f"{_clock(agent.connected_since)}, last frame {_clock(agent.last_frame_at)}"
                        f" ({agent.frames} frames), away {agent.away}"
                    )
        except psycopg.Error as exc:
            lines.append(str(exc))
        return lines

    def info(self) -> dict[str, Any]:
        try:
            with psycopg.connect(
                self.stack.database_url, connect_timeout=3, autocommit=True
            ) as conn:
                status = dict(
                    self._rows(
                        conn, "SELECT status, count(*) FROM interactions_interaction GROUP BY 1"
                    )
                )
                offers = dict(
                    self._rows(conn, "SELECT status, count(*) FROM routing_offer GROUP BY 1")
                )
                outbound = dict(
                    self._rows(
                        conn, "SELECT status, count(*) FROM channels_sms_outboundsms GROUP BY 1"
                    )
                )
                presence = dict(
                    self._rows(
                        conn,
                        "SELECT state || ':' || pause_reason, count(*)"
                        " FROM agents_agentpresence GROUP BY 1",
                    )
                )
            return {
                "interactions": status,
                "offers": offers,
                "outbound_sms": outbound,
                "presence": presence,
            }
        except psycopg.Error as exc:
            return {"error": str(exc)[:200]}


# (label, query of ids past a deadline, seconds past it): each a "stuck" kind.
STUCK_CHECKS = [
    (
        "offer-past-expiry",
        "SELECT id FROM routing_offer WHERE status = 'pending'"
        " AND expires_at < now() - make_interval(secs => %s)",
        SWEEP_S + 3,
    ),
    (
        "sms-not-ingested",
        "SELECT message_sid FROM channels_sms_inboundsms WHERE state = 'received'"
        " AND received_at < now() - make_interval(secs => %s)",
        SMS_SWEEP_S + 10,
    ),
    (
        "wrap-up-past-end:agent",
        "SELECT agent_id FROM agents_agentpresence WHERE state = 'wrap_up'"
        " AND wrap_up_until < now() - make_interval(secs => %s)",
        SWEEP_S + 3,
    ),
    (
        "outbound-sms-pending",
        "SELECT id FROM channels_sms_outboundsms WHERE status = 'pending'"
        " AND created_at < now() - make_interval(secs => %s)",
        OUTBOUND_STUCK_S,
    ),
]

# Queued past one sweep + 5 s, while an agent could take it: available, console alive (a
# heartbeat within the window), channel on, a free slot on the channel (calls exclusive), and
# no decline, expiry or failed bridge of this interaction. The queue requires no skill and every
# agent speaks the interactions' languages, so any such agent is eligible.
STUCK_QUEUED_SQL = """
WITH load AS (
    SELECT assigned_agent_id AS agent_id, channel, count(*) AS n
    FROM interactions_interaction WHERE status IN ('offered', 'assigned')
    AND assigned_agent_id IS NOT NULL GROUP BY 1, 2
), waiting AS (
    SELECT i.id, i.channel FROM interactions_interaction i
    WHERE i.status = 'queued' AND coalesce((
        SELECT max(t.at) FROM interactions_interactiontransition t
        WHERE t.interaction_id = i.id), i.queued_at) < now() - make_interval(secs => %s)
)
SELECT w.id FROM waiting w WHERE EXISTS (
    SELECT 1 FROM agents_agentpresence p JOIN agents_agentprofile a ON a.id = p.agent_id
    WHERE p.state = 'available'
    AND p.last_heartbeat_at > now() - make_interval(secs => %s)
    AND p.channels_enabled ? w.channel
    AND coalesce((SELECT n FROM load WHERE load.agent_id = a.id
                  AND load.channel = w.channel), 0)
        < CASE w.channel WHEN 'voice' THEN a.capacity_voice WHEN 'chat' THEN a.capacity_chat
          WHEN 'email' THEN a.capacity_email ELSE a.capacity_sms END
    AND NOT (a.voice_exclusive AND EXISTS (
        SELECT 1 FROM load WHERE load.agent_id = a.id AND load.n > 0
        AND (load.channel = 'voice' OR w.channel = 'voice')))
    AND NOT EXISTS (
        SELECT 1 FROM routing_offer o WHERE o.interaction_id = w.id AND o.agent_id = a.id
        AND o.status IN ('declined', 'expired', 'failed'))
)
"""


# --------------------------------------------------------------------------- the run
class Harness:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.stack = Stack(env_overrides={"CHANNEL_LAYER_BACKEND": args.layer})
        self.ledger = drivers.Ledger()
        self.agents: list[drivers.Agent] = []
        self.stats: dict[str, int] = {
            "http_retries": 0,
            "console_reconnects": 0,
            "back_to_available": 0,
            "snapshots": 0,
        }
        self.attributed = Findings()
        self.per_fault: dict[str, dict[str, Any]] = {}
        self.running = asyncio.Event()
        self.run_id = uuid.uuid4().hex[:6]
        self.held: set[str] = set()  # processes a fault keeps down (not restarted meanwhile)
        self.crashes: dict[str, int] = {}  # processes that exited by themselves

    # -- set-up
    def prepare(self) -> list[tuple[str, int]]:
        self.stack.start()
        out = subprocess.run(
            [PYTHON, "-c", f"from bench.chaos import setup_data; setup_data({self.args.agents})"],
            cwd=ROOT,
            env=self.stack.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode:
            raise RuntimeError(f"data set-up failed: {out.stderr[-3000:]}")
        pairs = json.loads(out.stdout.strip().splitlines()[-1])
        self.stack.start_app()
        drivers.configure(self.stack.env["PUBLIC_BASE_URL"], self.stack.web_bases())
        return [(u, int(i)) for u, i in pairs]

    # -- faults
    async def _sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def inject(self, fault: str) -> None:
        stack = self.stack
        loop = asyncio.get_running_loop()

        async def blocking(fn: Any, *a: Any) -> Any:
            return await loop.run_in_executor(None, fn, *a)

        if fault in ("worker_kill", "web_kill", "beat_kill"):
            name = {"worker_kill": "worker1", "web_kill": "web1", "beat_kill": "beat"}[fault]
            self.held.add(name)
            try:
                await blocking(stack.processes[name].kill)
                await self._sleep(self.args.down_s)
                await blocking(stack.restart, name)
            finally:
                self.held.discard(name)
        elif fault == "redis_restart":
            assert stack.redis is not None
            await blocking(stack.redis.kill)
            await self._sleep(self.args.down_s)
            await blocking(stack.redis_start)
        elif fault == "pg_terminate":
            await blocking(
                stack.psql,
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()",
            )
        elif fault == "pg_stop":
            await blocking(stack.pg_stop, "fast")
            await self._sleep(self.args.pg_down_s)
            await blocking(stack.pg_start)
        elif fault in ("provider_refuse", "provider_stall"):
            stack.provider.set_mode(fault.split("_")[1])
            await self._sleep(self.args.provider_down_s)
            stack.provider.set_mode("normal")
        elif fault == "agents_vanish":
            gone = random.sample(self.agents, k=max(1, len(self.agents) // 8))
            for agent in gone:
                await agent.vanish()
            # beyond the heartbeat window + grace + a sweep: their work must go back
            await self._sleep(HEARTBEAT_WINDOW_S + GRACE_S + SWEEP_S + 3)
            for agent in gone:
                agent.come_back()

    async def supervise(self) -> None:
        """docker-compose's ``restart: unless-stopped``: a process that exits on its own (not
        one a fault holds down) is started again; each such crash is counted and reported."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(0.5)
            for name, process in self.stack.processes.items():
                if name in self.held or process.alive():
                    continue
                code = process.popen.returncode if process.popen else None
                self.crashes[name] = self.crashes.get(name, 0) + 1
                log(f"    supervisor: {name} exited by itself (code {code}); restarting")
                await loop.run_in_executor(None, self.stack.restart, name)

    async def fault_round(self, fault: str, checker: Checker) -> None:
        accepted_before = self.ledger.total()
        log(f"--- fault {fault}")
        began = time.monotonic()
        await self.inject(fault)
        ended = time.monotonic()
        ended_wall = time.time()
        recovery: float | None = None
        last = Findings()
        waited_on: dict[str, int] = {}  # the largest count of each problem while recovering
        last_wait: dict[str, int] = {}  # what the last poll before green still found
        deadline = ended + self.args.recovery_timeout
        while time.monotonic() < deadline:
            found = await asyncio.get_running_loop().run_in_executor(
                None,
                lambda: checker.run(ingest_lag=self.args.ingest_lag, strict_before=ended_wall),
            )
            if found is None:
                waited_on["database_unreadable"] = 1
            else:
                last = found.minus(self.attributed)
                for key, n in last.counts().items():
                    if n:
                        waited_on[key] = max(n, waited_on.get(key, 0))
                if not last.green():
                    last_wait = {k: n for k, n in last.counts().items() if n}
                if last.green():
                    recovery = time.monotonic() - ended
                    break
            await asyncio.sleep(1.0)
        # Whatever is still wrong belongs to this fault (and is not counted again later).
        self.attributed.add(last)
        counts = last.counts()
        accepted = self.ledger.total() - accepted_before
        self.per_fault[fault] = {
            "console_groups_in_redis": self.console_groups(),
            "accepted": accepted,
            **counts,
            "recovery_s": round(recovery, 1) if recovery is not None else None,
            "fault_s": round(ended - began, 1),
            "waited_on": waited_on,
            "last_wait": last_wait,
        }
        log(
            f"    {fault}: recovered in "
            f"{f'{recovery:.1f} s' if recovery is not None else 'NEVER'}; {counts}; "
            f"accepted so far {self.ledger.total()} {self._accepted_line()}"
            + (f"; while recovering: {waited_on}" if waited_on else "")
        )
        if not last.green():
            log(f"    sample: {last.sample()}")
            for line in checker.explain_unseen(last):
                log(f"      {line}")
        await asyncio.sleep(self.args.settle_s)

    def console_groups(self) -> int:
        """How many agents' console groups the channel layer holds in Redis right now."""
        import redis

        try:
            client = redis.Redis.from_url(self.stack.env["REDIS_URL"], socket_timeout=2)
            try:
                return sum(1 for _ in client.scan_iter("chaos:group:agent*"))
            finally:
                client.close()
        except redis.RedisError:
            return -1

    def _accepted_line(self) -> str:
        return " ".join(f"{c}={len(v)}" for c, v in self.ledger.accepted.items())

    async def progress(self, checker: Checker) -> None:
        while self.running.is_set():
            await asyncio.sleep(10)
            seen = sum(len(a.seen_offers) for a in self.agents)
            log(
                f"  load: accepted {self._accepted_line()}; refused {self.ledger.refused}; "
                f"offers seen {seen}; {self.stats}"
            )

    def snapshot_only(self) -> list[str]:
        """Offers an agent was shown by an HTTP snapshot and never on its socket."""
        return [
            f"offer#{offer_id}:{agent.username}"
            for agent in self.agents
            for offer_id in sorted(agent.snapshot_offers - agent.seen_offers.keys())
        ]

    # -- main
    async def main(self, pairs: list[tuple[str, int]]) -> dict[str, Any]:
        args = self.args
        began = time.monotonic()
        for username, agent_id in pairs:
            self.agents.append(drivers.Agent(username, agent_id, self.stats))
        log(f"{len(self.agents)} agents logging in ...")
        await asyncio.gather(*(a.login() for a in self.agents))
        agent_tasks = [asyncio.create_task(a.run()) for a in self.agents]
        agent_tasks.append(asyncio.create_task(self.supervise()))
        checker = Checker(self.stack, self.ledger, self.agents)
        connector = aiohttp.TCPConnector(limit=100)
        async with aiohttp.ClientSession(connector=connector) as session:
            citizens = drivers.Citizens(self.ledger, session, self.run_id)
            smtp_port = self.stack.smtp_port
            pacers = [
                drivers.Pacer(args.sms_rate, citizens.sms),
                drivers.Pacer(args.voice_rate, citizens.voice),
                drivers.Pacer(args.email_rate, lambda i: citizens.email(i, smtp_port)),
                drivers.Pacer(args.chat_rate, citizens.chat),
            ]
            self.running.set()
            loops = [asyncio.create_task(p.run(self.running)) for p in pacers]
            loops.append(asyncio.create_task(self.progress(checker)))
            log(
                f"load running (SMS {args.sms_rate}/s, calls {args.voice_rate}/s, e-mail "
                f"{args.email_rate}/s, chats {args.chat_rate}/s); warm-up {args.warmup_s} s"
            )
            await asyncio.sleep(args.warmup_s)
            baseline = checker.run(ingest_lag=args.ingest_lag) or Findings()
            if not baseline.green():
                log(f"before any fault: {baseline.counts()} {baseline.sample()}")
            self.attributed.add(baseline)
            self.per_fault["baseline"] = {"accepted": self.ledger.total(), **baseline.counts()}
            faults = [f for f in args.only.split(",") if f in FAULTS] if args.only else FAULTS
            for _round in range(args.rounds):
                for fault in faults:
                    key = fault if args.rounds == 1 else f"{fault}#{_round + 1}"
                    await self.fault_round(fault, checker)
                    if key != fault:
                        self.per_fault[key] = self.per_fault.pop(fault)
            log("stopping the load; draining ...")
            self.running.clear()
            for loop in loops:
                loop.cancel()
            await asyncio.gather(
                *(p.drain(args.pacer_drain_s) for p in pacers), return_exceptions=True
            )
            # Final: every accepted delivery, with no ingestion lag allowed, once the work
            # in flight is done.
            final = Findings()
            everything = Findings()
            drain_deadline = time.monotonic() + args.drain_s
            while time.monotonic() < drain_deadline:
                # Every offer made so far is checked (not only those older than 4 s), and an
                # offer an agent has so far seen only in an HTTP snapshot is waited for: the
                # server's catch-up brings it to the socket within two console rounds.
                found = checker.run(ingest_lag=0, strict_before=time.time())
                if found is not None:
                    everything = found
                    final = found.minus(self.attributed)
                    if final.green() and not found.lost and not self.snapshot_only():
                        break
                await asyncio.sleep(1)
            self.attributed.add(final)
            # A delivery late during a fault but there in the end was not lost: the total
            # counts what is still missing now (the per-fault figures keep the late ones).
            self.attributed.lost = set(everything.lost)
            self.per_fault["final"] = {"accepted": self.ledger.total(), **final.counts()}
        for agent in self.agents:
            await agent.close()
        for task in agent_tasks:
            task.cancel()
        await asyncio.gather(*agent_tasks, return_exceptions=True)
        recoveries = [v["recovery_s"] for k, v in self.per_fault.items() if "recovery_s" in v]
        totals = self.attributed.counts()
        return {
            "accepted": self.ledger.total(),
            **totals,
            "max_recovery_s": (
                None if any(r is None for r in recoveries) else max(recoveries, default=0.0)
            ),
            "per_fault": self.per_fault,
            "accepted_by_channel": {c: len(v) for c, v in self.ledger.accepted.items()},
            "refused_attempts": self.ledger.refused,
            "given_up": self.ledger.given_up,
            "refused_by_us": self.ledger.refused_by_us,
            "samples": self.attributed.sample(10),
            "offers_seen": sum(len(a.seen_offers) for a in self.agents),
            "offers_only_in_http_snapshot": len(self.snapshot_only()),
            "snapshot_only_samples": self.snapshot_only()[:10],
            "agent_stats": self.stats,
            "crash_restarts": self.crashes,
            "provider": {
                "messages": len(self.stack.provider.messages),
                "call_updates": len(self.stack.provider.call_updates),
                "callback_failures": self.stack.provider.callback_failures,
            },
            "database": checker.info(),
            "elapsed_s": round(time.monotonic() - began, 1),
            "mode": "short" if args.short else "full",
            "channel_layer": args.layer,
        }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--short", action="store_true", help="one fault of each kind, small rates")
    parser.add_argument("--agents", type=int, default=24)
    parser.add_argument("--only", default="", help="comma-separated faults to run")
    parser.add_argument("--keep-logs", type=Path, default=None, help="copy the logs there")
    parser.add_argument(
        "--layer",
        choices=["core", "pubsub"],
        default="pubsub",
        help="CHANNEL_LAYER_BACKEND of the app (pubsub: the settings' default)",
    )
    parser.add_argument(
        "--rounds", type=int, default=0, help="rounds of faults (default: 1 short, 2 full)"
    )
    args = parser.parse_args(argv)
    rounds = args.rounds
    if args.short:
        defaults = {
            "sms_rate": 1.0,
            "voice_rate": 0.2,
            "email_rate": 0.3,
            "chat_rate": 0.2,
            "rounds": 1,
            "warmup_s": 4.0,
            "down_s": 2.0,
            "pg_down_s": 20.0,
            "provider_down_s": 3.0,
            "pacer_drain_s": 15.0,
            "recovery_timeout": 30.0,
            "settle_s": 0.5,
            "ingest_lag": 5.0,
            "drain_s": 30.0,
        }
    else:
        defaults = {
            "sms_rate": 4.0,
            "voice_rate": 0.5,
            "email_rate": 1.0,
            "chat_rate": 0.5,
            "rounds": 2,
            "warmup_s": 15.0,
            "down_s": 5.0,
            "pg_down_s": 20.0,
            "provider_down_s": 15.0,
            "pacer_drain_s": 60.0,
            "recovery_timeout": 60.0,
            "settle_s": 5.0,
            "ingest_lag": 5.0,
            "drain_s": 60.0,
        }
    for key, value in defaults.items():
        setattr(args, key, value)
    if rounds:
        args.rounds = rounds
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    harness = Harness(args)
    keep = args.keep_logs

    def cleanup() -> None:
        harness.stack.close(keep_logs=keep)

    atexit.register(cleanup)

    def on_signal(signum: int, _frame: Any) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # a second signal must not cut the clean-up
        try:
            cleanup()
        finally:
            os._exit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    result: dict[str, Any] = {}
    try:
        pairs = harness.prepare()
        result = asyncio.run(harness.main(pairs))
    except Exception as exc:
        log(f"harness failed: {type(exc).__name__}: {exc}")
        for name in ("web1", "worker1", "beat", "smtp", "postgres"):
            tail = harness.stack.log_tail(name, 1500)
            if tail.strip():
                log(f"--- {name} log tail:\n{tail}")
        result = {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        with contextlib.suppress(Exception):
            if result and not result.get("error"):
                for name in ("web1", "web2", "worker1", "worker2", "beat", "smtp"):
                    tail = harness.stack.log_tail(name, 100000)
                    errors = [ln for ln in tail.splitlines() if "Traceback" in ln]
                    result.setdefault("log_tracebacks", {})[name] = len(errors)
        cleanup()
    print(json.dumps(result), flush=True)
    return 0 if result and not result.get("error") else 1


if __name__ == "__main__":
    sys.exit(main())
