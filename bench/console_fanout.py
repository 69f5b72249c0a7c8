#!/usr/bin/env python3
"""Benchmark of the agent console's live fan-out (loopback only, bounded in time).

    .venv/bin/python bench/console_fanout.py [--consoles 5000] [--server-procs 2]
        [--client-procs 2] [--push-rate 100] [--push-seconds 20] [--no-heartbeat]
        [--gc-freeze] [--ws-deflate]

What it does:
1. (re)creates its own PostgreSQL database (``cc_bench_console``), migrates it, and writes N
   agents with their users, presence rows and login sessions straight into it (one session
   cookie per console, as a browser would hold after logging in);
2. starts the ASGI server on 127.0.0.1 as deployed (uvicorn with ``--server-procs`` worker
   processes, one per core of this 2-core machine by default, sharing the listening socket;
   WebSocket compression off) with ``REDIS_URL`` (channels-redis) and ``DATABASE_URL``
   (psycopg pool); ``rss_mb`` is the sum over all of its processes;
3. opens N console WebSockets from ``--client-procs`` client processes (bounded concurrency
   while connecting); each console sends the real heartbeat every ``CONSOLE_HEARTBEAT_SECONDS``
   (spread over the interval) unless ``--no-heartbeat``;
4. measures the server's RSS once every console is connected (and again at the end);
5. a separate pusher process publishes ``offer.created`` events to random agents through the
   project's own path (``kernel.events.publish`` in a transaction: outbox row, then the
   channel layer after commit) at ``--push-rate`` per second; every client records the delay
   between the pusher's timestamp and the event's arrival on the socket.

The last line printed is one JSON object: consoles, rss_mb, push_p50_ms, push_p99_ms (and
details). Results are recorded in docs/benchmarks.md ("Console fan-out").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import multiprocessing as mp
import os
import random
import resource
import socket
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from interactions.channels import Channel

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
DB_NAME = "cc_bench_console"
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
# BENCH_REDIS_URL, else the configured REDIS_URL; a fixed database only when neither is set
REDIS_URL = (
    os.environ.get("BENCH_REDIS_URL") or os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/4"
)
PREFIX = "benchconsole"
DEADLINE_SECONDS = 280  # the whole run stays under five minutes


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def raise_fd_limit() -> int:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 65536
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return wanted


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def django_env() -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "contactcentre.settings",
        "DATABASE_URL": f"{PG}/{DB_NAME}",
        "DATABASE_POOL": "true",
        "DATABASE_POOL_MAX_SIZE": "8",
        "REDIS_URL": REDIS_URL,
        "CHANNEL_LAYER_PREFIX": PREFIX,
        "DJANGO_SECURE": "false",
        "DJANGO_DEBUG": "false",
        "STATIC_MANIFEST": "false",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LOG_LEVEL": "WARNING",
        "DATA_DIR": os.environ.get("BENCH_DATA_DIR", "/tmp/cc_bench_console"),  # noqa: S108
    }


def psql(sql: str) -> None:
    subprocess.run(
        ["psql", PG + "/postgres", "-v", "ON_ERROR_STOP=1", "-qc", sql],
        check=True,
        capture_output=True,
    )


# --------------------------------------------------------------------------- set-up


def prepare_database(consoles: int) -> list[tuple[int, str]]:
    """Create the database, N agents and a session for each: [(agent id, session key)]."""
    env = django_env()
    psql(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
    psql(f"CREATE DATABASE {DB_NAME}")
    subprocess.run(
        [PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True
    )
    os.environ.update(env)
    import django

    django.setup()
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.auth.models import User
    from django.contrib.sessions.backends.db import SessionStore
    from django.contrib.sessions.models import Session
    from django.utils import timezone

    from agents.models import AgentPresence, AgentProfile
    from organisations.models import sole_organisation

    now = timezone.now()
    users = User.objects.bulk_create(
        User(username=f"agent{i:05d}", password="!bench", is_active=True)  # noqa: S106
        for i in range(consoles)
    )
    organisation = sole_organisation()  # bulk_create skips the model's own default
    profiles = AgentProfile.objects.bulk_create(
        AgentProfile(user=u, languages=["fr"], organisation_id=organisation) for u in users
    )
    AgentPresence.objects.bulk_create(
        AgentPresence(agent=p, state="available", state_since=now, idle_since=now) for p in profiles
    )
    store = SessionStore()
    expire = now + timedelta(hours=2)
    sessions = []
    pairs = []
    for user, profile in zip(users, profiles, strict=True):
        key = store._get_new_session_key()  # type: ignore[attr-defined]
        data = {
            SESSION_KEY: str(user.pk),
            BACKEND_SESSION_KEY: "django.contrib.auth.backends.ModelBackend",
            HASH_SESSION_KEY: user.get_session_auth_hash(),
            "cc_last_activity": time.time() + 3600,
        }
        sessions.append(
            Session(session_key=key, session_data=store.encode(data), expire_date=expire)
        )
        pairs.append((profile.pk, key))
    Session.objects.bulk_create(sessions, batch_size=1000)
    return pairs


def start_server(
    port: int, *, no_gc: bool = False, procs: int = 1, deflate: bool = False
) -> subprocess.Popen[bytes]:
    env = django_env()
    if no_gc:  # diagnostic: the server without Python's cyclic garbage collector
        site = Path(tempfile.mkdtemp(prefix="cc-bench-nogc-"))
        (site / "sitecustomize.py").write_text("import gc\ngc.disable()\n")
        env["PYTHONPATH"] = str(site)
    return subprocess.Popen(
        [
            PYTHON,
            "-m",
            "uvicorn",
            "contactcentre.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--lifespan",
            "off",
            "--log-level",
            "warning",
            "--backlog",
            "4096",
            "--ws-ping-interval",
            "0",
            "--ws-per-message-deflate",
            "true" if deflate else "false",
            "--workers",
            str(procs),
        ],
        cwd=ROOT,
        env=env,
    )


def wait_for_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("the server did not start")


def server_pids(pid: int) -> list[int]:
    """The server's processes: uvicorn itself and, with ``--workers N``, its N workers."""
    import psutil

    parent = psutil.Process(pid)
    return [pid] + [child.pid for child in parent.children(recursive=True)]


def per_process_rss(pid: int) -> list[float]:
    """Resident memory of each of the server's processes, in MB."""
    import psutil

    sizes = []
    for each in server_pids(pid):
        with contextlib.suppress(psutil.NoSuchProcess):
            sizes.append(round(psutil.Process(each).memory_info().rss / 1024 / 1024, 1))
    return sizes


def rss_mb(pid: int) -> float:
    """Resident memory of the whole server (every process of it), in MB."""
    return sum(per_process_rss(pid))


# --------------------------------------------------------------------------- clients


async def _console(
    port: int,
    session_key: str,
    heartbeat: float,
    connect_gate: asyncio.Semaphore,
    latencies: list[float],
    stop: asyncio.Event,
    connected: list[int],
    failures: list[str],
) -> None:
    import websockets

    headers = {"Cookie": f"sessionid={session_key}", "Origin": f"http://127.0.0.1:{port}"}
    try:
        async with connect_gate:
            ws = await websockets.connect(
                f"ws://127.0.0.1:{port}/ws/console/",
                additional_headers=headers,
                open_timeout=60,
                ping_interval=None,
                max_queue=None,
            )
            hello = json.loads(await asyncio.wait_for(ws.recv(), 60))
            if hello.get("type") != "hello":
                raise RuntimeError(f"unexpected first message {hello}")
    except Exception as exc:
        failures.append(f"{type(exc).__name__}: {exc}"[:200])
        return
    connected[0] += 1

    async def beat() -> None:
        await asyncio.sleep(random.uniform(0, heartbeat))
        while not stop.is_set():
            await ws.send('{"type": "heartbeat"}')
            await asyncio.sleep(heartbeat)

    beating = asyncio.create_task(beat()) if heartbeat > 0 else None
    try:
        async for raw in ws:
            received = time.time()
            message = json.loads(raw)
            if message.get("type") == "event":
                sent_at = (message.get("payload") or {}).get("sent_at")
                if isinstance(sent_at, float):
                    latencies.append((received - sent_at) * 1000)
        if not stop.is_set():
            failures.append("lost: closed by the server")
    except asyncio.CancelledError:
        pass
    except Exception as exc:
        if not stop.is_set():
            failures.append(f"lost: {type(exc).__name__}: {exc}"[:200])
    finally:
        if beating:
            beating.cancel()
        await ws.close()


def client_process(
    port: int,
    keys: list[str],
    heartbeat: float,
    conn: Any,
) -> None:
    raise_fd_limit()
    # The measuring clients must not add pauses of their own to what they measure: their
    # cyclic garbage collector, walking thousands of sockets, would (they live for minutes).
    gc.disable()

    async def main() -> None:
        latencies: list[float] = []
        failures: list[str] = []
        connected = [0]
        stop = asyncio.Event()
        gate = asyncio.Semaphore(50)
        tasks = [
            asyncio.create_task(
                _console(port, k, heartbeat, gate, latencies, stop, connected, failures)
            )
            for k in keys
        ]
        loop = asyncio.get_running_loop()
        # Report progress, and wait for the parent's "stop".
        while True:
            conn.send(("progress", connected[0], len(failures)))
            has_stop = await loop.run_in_executor(None, conn.poll, 1.0)
            if has_stop:
                conn.recv()
                break
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        conn.send(("done", latencies, failures[:20], len(failures)))

    asyncio.run(main())


def pusher_process(agent_ids: list[int], rate: float, seconds: float, conn: Any) -> None:
    os.environ.update(django_env())
    import django

    django.setup()
    from django.db import transaction

    from kernel.events import agent_group, publish

    interval = 1.0 / rate
    sent = 0
    durations: list[float] = []
    start = time.monotonic()
    next_at = start
    while time.monotonic() - start < seconds:
        agent_id = random.choice(agent_ids)
        began = time.perf_counter()
        with transaction.atomic():
            publish(
                "offer.created",
                {
                    "offer_id": sent,
                    "interaction_id": 0,
                    "channel": Channel.EMAIL,
                    "expires_at": "",
                    "sent_at": time.time(),
                },
                groups=[agent_group(agent_id)],
            )
        durations.append((time.perf_counter() - began) * 1000)
        sent += 1
        next_at += interval
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    conn.send(("pushed", sent, time.monotonic() - start, durations))


def cpu_seconds(pid: int) -> float:
    """CPU time used so far by the whole server (every process of it)."""
    total = 0.0
    for each in server_pids(pid):
        try:
            with open(f"/proc/{each}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--consoles", type=int, default=5000)
    parser.add_argument("--client-procs", type=int, default=2)
    parser.add_argument("--push-rate", type=float, default=100.0)
    parser.add_argument("--push-seconds", type=float, default=20.0)
    parser.add_argument("--heartbeat-seconds", type=float, default=15.0)
    parser.add_argument("--no-heartbeat", action="store_true")
    parser.add_argument("--connect-timeout", type=float, default=150.0)
    parser.add_argument(
        "--gc-freeze",
        action="store_true",
        help="CONSOLE_GC_FREEZE=true on the server (freeze what survives a full collection)",
    )
    parser.add_argument(
        "--server-no-gc",
        action="store_true",
        help="diagnostic: run the server with Python's cyclic GC disabled",
    )
    parser.add_argument(
        "--server-procs",
        type=int,
        default=2,
        help="uvicorn worker processes sharing the consoles (rss_mb is their sum)",
    )
    parser.add_argument(
        "--ws-deflate",
        action="store_true",
        help="keep WebSocket per-message compression on (the server's default is off)",
    )
    parser.add_argument(
        "--layer",
        choices=["core", "pubsub"],
        default="pubsub",
        help="channels_redis layer (CHANNEL_LAYER_BACKEND)",
    )
    args = parser.parse_args()
    began = time.monotonic()
    os.environ["CHANNEL_LAYER_BACKEND"] = args.layer
    os.environ["CONSOLE_GC_FREEZE"] = "true" if args.gc_freeze else "false"
    fd_limit = raise_fd_limit()
    log(f"file descriptor limit: {fd_limit}")
    log(f"preparing {args.consoles} agents and sessions ...")
    pairs = prepare_database(args.consoles)
    port = free_port()
    server = start_server(
        port, no_gc=args.server_no_gc, procs=args.server_procs, deflate=args.ws_deflate
    )
    procs: list[tuple[Any, Any]] = []
    result: dict[str, Any] = {}
    try:
        wait_for_port(port)
        if args.server_procs > 1:  # the port answers before every worker has loaded Django
            while len(server_pids(server.pid)) <= args.server_procs:
                time.sleep(0.2)
            time.sleep(5.0)
        rss_idle = rss_mb(server.pid)
        log(f"server up on port {port}, RSS {rss_idle:.0f} MB; opening consoles ...")
        heartbeat = 0.0 if args.no_heartbeat else args.heartbeat_seconds
        ctx = mp.get_context("spawn")
        for i in range(args.client_procs):
            keys = [k for _, k in pairs[i :: args.client_procs]]
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=client_process, args=(port, keys, heartbeat, child))
            proc.start()
            procs.append((proc, parent))
        progress = [0] * len(procs)
        failed = [0] * len(procs)
        connect_started = time.monotonic()
        while time.monotonic() - connect_started < args.connect_timeout:
            for i, (_, pipe) in enumerate(procs):
                while pipe.poll():
                    _kind, n, f = pipe.recv()
                    progress[i], failed[i] = n, f
            if sum(progress) + sum(failed) >= args.consoles:
                break
            time.sleep(0.5)
        connect_seconds = time.monotonic() - connect_started
        consoles = sum(progress)
        rss_connected = rss_mb(server.pid)
        log(
            f"{consoles} consoles connected in {connect_seconds:.1f} s "
            f"({sum(failed)} failed); server RSS {rss_connected:.0f} MB"
        )
        agent_ids = [a for a, _ in pairs]
        push_seconds = min(
            args.push_seconds, max(5.0, DEADLINE_SECONDS - (time.monotonic() - began))
        )
        parent, child = ctx.Pipe()
        pusher = ctx.Process(
            target=pusher_process, args=(agent_ids, args.push_rate, push_seconds, child)
        )
        pusher.start()
        rss_peak = rss_connected
        cpu_before = cpu_seconds(server.pid)
        push_started = time.monotonic()
        while pusher.is_alive() and not parent.poll(0.5):
            rss_peak = max(rss_peak, rss_mb(server.pid))
            for _, pipe in procs:
                while pipe.poll():
                    pipe.recv()
        _, pushed, push_elapsed, publish_ms = parent.recv()
        server_cpu = (cpu_seconds(server.pid) - cpu_before) / (time.monotonic() - push_started)
        pusher.join()
        time.sleep(2.0)  # the last events in flight
        rss_end = rss_mb(server.pid)
        latencies: list[float] = []
        lost_failures: list[str] = []
        for _proc, pipe in procs:
            pipe.send("stop")
        for proc, pipe in procs:
            while True:
                message = pipe.recv()
                if message[0] == "done":
                    latencies.extend(message[1])
                    lost_failures.extend(message[2])
                    break
            proc.join(timeout=30)
        result = {
            "consoles": consoles,
            "rss_mb": round(max(rss_peak, rss_end), 1),
            "push_p50_ms": round(percentile(latencies, 0.50), 2),
            "push_p99_ms": round(percentile(latencies, 0.99), 2),
            "pushed": pushed,
            "delivered": len(latencies),
            "push_rate_per_s": round(pushed / push_elapsed, 1),
            "push_max_ms": round(max(latencies), 2) if latencies else None,
            # the publishing side alone (outbox row, commit, hand-over to Redis): the rest of
            # push_*_ms is Redis -> server -> socket -> client
            "publish_p50_ms": round(percentile(publish_ms, 0.50), 2),
            "publish_p99_ms": round(percentile(publish_ms, 0.99), 2),
            "server_cpu_during_push": round(server_cpu, 2),
            "load_average_1m": round(os.getloadavg()[0], 2),
            "rss_idle_mb": round(rss_idle, 1),
            "rss_per_process_mb": per_process_rss(server.pid),
            "rss_connected_mb": round(rss_connected, 1),
            "rss_per_console_kb": round((rss_connected - rss_idle) * 1024 / consoles, 1)
            if consoles
            else None,
            "connect_seconds": round(connect_seconds, 1),
            "connect_failures": sum(failed),
            "heartbeat_seconds": heartbeat,
            "client_processes": args.client_procs,
            "server_processes": args.server_procs,
            "ws_deflate": args.ws_deflate,
            "channel_layer": args.layer,
            "server_gc": not args.server_no_gc,
            "gc_freeze": args.gc_freeze,
            "failures_sample": lost_failures[:3],
            "elapsed_s": round(time.monotonic() - began, 1),
        }
    finally:
        for proc, _ in procs:
            if proc.is_alive():
                proc.kill()
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
    print(json.dumps(result))
    return 0 if result.get("consoles") else 1


if __name__ == "__main__":
    sys.exit(main())
