#!/usr/bin/env python3
"""Benchmark of the SMS ingest webhook on the real stack (loopback only, bounded in time).

    .venv/bin/python bench/ingest.py [--seconds-per-step 5] [--paced-seconds 20]

What it does:
1. (re)creates its own PostgreSQL database (``cc_bench_ingest``) and migrates it, with one SMS
   endpoint and its queue;
2. starts the ASGI server (uvicorn, 2 workers; ``--app`` picks the application: by default
   ``contactcentre.asgi:application``, whose HTTP side answers SMS webhooks on the lean path,
   or ``contactcentre.asgi:django_asgi_app`` for the plain Django stack) on
   127.0.0.1 with ``DATABASE_URL`` and ``REDIS_URL``, the webhooks signed for ``PUBLIC_BASE_URL``;
3. ramp (after the paced phase below): open-loop load of signed Twilio SMS webhooks
   (form-encoded, ``X-Twilio-Signature`` from the official RequestValidator) at rising rates
   until p99 degrades, a request fails or the server falls behind the offered rate; the highest
   clean step is ``sustained_per_s``;
4. paced: 300 requests/s for ``--paced-seconds``, 10 % of them replays of an already sent
   MessageSid (some sent twice at once); p50/p99 latencies of the webhook (``p50_ms``,
   ``p99_ms``); then the Celery worker (at nice 10) is started and 300/s are sent for 10 s more
   while it ingests the backlog (``p50_ms_with_worker``, ``p99_ms_with_worker``);
5. waits for the worker to drain, then counts rows per MessageSid in the database:
   ``duplicates`` is the number of extra rows (inbound SMS and messages) beyond one per SID.

The last line printed is one JSON object: sustained_per_s, p50_ms, p99_ms, duplicates (and
details). Results are recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
from twilio.request_validator import RequestValidator

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
DB_NAME = "cc_bench_ingest"
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
# BENCH_REDIS_URL, else the configured REDIS_URL; a fixed database only when neither is set
REDIS_URL = (
    os.environ.get("BENCH_REDIS_URL") or os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/3"
)
TOKEN = "b" * 32
ACCOUNT = "AC" + "0" * 31 + "1"
OUR_NUMBER = "+33900000001"
PATH = "/webhooks/twilio/sms/"
RAMP = [300, 500, 700, 900, 1100, 1300, 1500, 1800]
P99_LIMIT_MS = 250.0
# The ingestion worker yields the CPU to the web server (one shared 2-core box here; in
# production it runs on its own cores or hosts): the webhook answers first, ingestion follows.
WORKER_NICENESS = 10
# The queues of the two workers started (every queue of contactcentre/celery.py is consumed).
WORKER_QUEUES = ("ingest", "route,celery,outbound,reports")


def log(text: str) -> None:
    print(text, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env(port: int, conn_max_age: int) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "contactcentre.settings",
        "DATABASE_URL": f"{PG}/{DB_NAME}",
        "DATABASE_POOL": "true",
        "DATABASE_POOL_MAX_SIZE": str(conn_max_age),
        "REDIS_URL": REDIS_URL,
        "CHANNEL_LAYER_PREFIX": "bench-ingest",
        "DJANGO_DEBUG": "false",
        "DJANGO_SECURE": "false",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "TWILIO_AUTH_TOKEN": TOKEN,
        "TWILIO_ACCOUNT_SID": ACCOUNT,
        "TELEPHONY_BACKEND": "channels_inbound.providers.dev.ConsoleBackend",
        "LOG_LEVEL": "WARNING",
        "DATA_DIR": str(Path(tempfile.gettempdir()) / "cc_bench_ingest"),
    }


def psql(sql: str, db: str = "postgres") -> str:
    out = subprocess.run(
        ["psql", f"{PG}/{db}", "-v", "ON_ERROR_STOP=1", "-tAc", sql],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def prepare_database(env: dict[str, str]) -> None:
    psql(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
    psql(f"CREATE DATABASE {DB_NAME}")
    subprocess.run(
        [PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True
    )
    setup = (
        "import django; django.setup();"
        "from configuration.models import Queue; from channels_inbound.models import Endpoint;"
        "q = Queue.objects.create(code='bench', name='Bench', sla_target_seconds=3600);"
        f"Endpoint.objects.create(channel='sms', address='{OUR_NUMBER}', name='Bench', queue=q)"
    )
    subprocess.run([PYTHON, "-c", setup], cwd=ROOT, env=env, check=True)


def wait_for_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"the server did not listen on {port} within {timeout} s")


class Load:
    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}{PATH}"
        self.validator = RequestValidator(TOKEN)
        self.counter = 0
        self.sent: list[tuple[str, bytes, str]] = []  # (sid, body, signature) for replays
        self.senders = [f"+336{n:08d}" for n in range(5000)]

    def request(self, replay: bool = False) -> tuple[bytes, str]:
        if replay and self.sent:
            _sid, body, signature = random.choice(self.sent[-2000:])
            return body, signature
        self.counter += 1
        sid = f"SM{self.counter:032x}"
        params = {
            "ToCountry": "FR",
            "SmsMessageSid": sid,
            "NumMedia": "0",
            "SmsSid": sid,
            "SmsStatus": "received",
            "Body": f"Bonjour, message {self.counter} 👋🏽 \u200fمرحبا",
            "FromCountry": "FR",
            "To": OUR_NUMBER,
            "NumSegments": "1",
            "MessageSid": sid,
            "AccountSid": ACCOUNT,
            "From": random.choice(self.senders),
            "ApiVersion": "2010-04-01",
        }
        signature = self.validator.compute_signature(self.url, params)
        body = urlencode(params).encode()
        self.sent.append((sid, body, signature))
        return body, signature

    async def run(
        self, session: aiohttp.ClientSession, rate: float, seconds: float, replay_share: float = 0.0
    ) -> dict[str, Any]:
        """Open-loop: request i is due at start + i/rate, whatever the server's pace."""
        latencies: list[float] = []
        errors = 0
        late = 0
        total = int(rate * seconds)
        start = time.perf_counter()
        tasks: list[asyncio.Task[None]] = []
        semaphore = asyncio.Semaphore(512)

        async def one(body: bytes, signature: str) -> None:
            nonlocal errors
            async with semaphore:
                t0 = time.perf_counter()
                try:
                    async with session.post(
                        self.url,
                        data=body,
                        headers={
                            "Content-Type": "application/x-www-form-urlencoded",
                            "X-Twilio-Signature": signature,
                        },
                    ) as response:
                        await response.read()
                        if response.status != 200:
                            errors += 1
                except (aiohttp.ClientError, TimeoutError):
                    errors += 1
                latencies.append((time.perf_counter() - t0) * 1000)

        for i in range(total):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -0.05:
                late += 1
            body, signature = self.request(replay=random.random() < replay_share)
            tasks.append(asyncio.create_task(one(body, signature)))
            if replay_share and random.random() < replay_share / 4:  # a concurrent duplicate
                tasks.append(asyncio.create_task(one(body, signature)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
        latencies.sort()
        n = len(latencies)
        return {
            "offered_per_s": rate,
            "requests": n,
            "achieved_per_s": round(n / elapsed, 1),
            "errors": errors,
            "late_sends": late,
            "p50_ms": round(latencies[n // 2], 2) if n else None,
            "p99_ms": round(latencies[min(n - 1, int(n * 0.99))], 2) if n else None,
        }


def start_workers(env: dict[str, str], ingest_processes: int) -> list[subprocess.Popen[bytes]]:
    """The default worker set-up (docker-compose.yml): a worker on the ``ingest`` queue with
    ``ingest_processes`` processes, and one for the other queues (routing passes, sweeps,
    outbound, reports), here with one process since no agent is logged in."""

    def worker(queues: str, concurrency: int, name: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                "nice",
                "-n",
                str(WORKER_NICENESS),
                PYTHON,
                "-m",
                "celery",
                "-A",
                "contactcentre",
                "worker",
                "-Q",
                queues,
                "--concurrency",
                str(concurrency),
                "--loglevel",
                "WARNING",
                "--hostname",
                f"bench-{name}-{os.getpid()}@%h",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            cwd=ROOT,
            env={**env, "CELERY_TASK_ALWAYS_EAGER": "false"},
            stdout=subprocess.DEVNULL,
        )

    ingest, others = WORKER_QUEUES
    return [worker(ingest, ingest_processes, "ingest"), worker(others, 1, "other")]


def count(sql: str) -> int:
    return int(psql(sql, DB_NAME) or 0)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    env = server_env(port, args.conn_max_age)
    t0 = time.monotonic()
    log(f"preparing database {DB_NAME} ...")
    prepare_database(env)
    # Purge what an earlier, interrupted run may have left in the broker.
    subprocess.run(
        [PYTHON, "-m", "celery", "-A", "contactcentre", "purge", "-f"],
        cwd=ROOT,
        env=env,
        check=False,
        capture_output=True,
    )
    server = subprocess.Popen(
        [
            PYTHON,
            "-m",
            "uvicorn",
            args.app,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(args.workers),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    workers: list[subprocess.Popen[bytes]] = []
    try:
        wait_for_port(port)
        load = Load(port)
        connector = aiohttp.TCPConnector(limit=args.connections)
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            await load.run(session, 300, 5)  # warm-up: connections, pools, imports, caches
            log(f"paced 300/s for {args.paced_seconds} s, 10 % replays (webhook only)")
            paced = await load.run(session, 300, args.paced_seconds, replay_share=0.10)
            log(f"  {json.dumps(paced)}")
            log("ramp (open-loop, webhook only: ingestion waits in the database)")
            sustained = 0
            ramp = []
            for rate in RAMP:
                step = await load.run(session, rate, args.seconds_per_step)
                ramp.append(step)
                clean = (
                    step["errors"] == 0
                    and step["p99_ms"] is not None
                    and step["p99_ms"] <= P99_LIMIT_MS
                    and step["achieved_per_s"] >= 0.95 * rate
                )
                log(f"  {json.dumps(step)}{'' if clean else '  <- degraded'}")
                if not clean:
                    break
                sustained = rate
            backlog = count("SELECT count(*) FROM channels_sms_inboundsms WHERE state='received'")
            log(
                f"workers started ({args.ingest_processes} ingest processes): paced 300/s for "
                f"10 s while they ingest the backlog of {backlog}"
            )
            workers = start_workers(env, args.ingest_processes)
            drain_start = time.monotonic()
            with_worker = await load.run(session, 300, 10, replay_share=0.10)
            log(f"  {json.dumps(with_worker)}")
        sids = len(load.sent)
        log(f"waiting for the workers to drain {sids} distinct SMS ...")
        # Throughput of ingestion itself, from the first poll that sees rows processed (the
        # workers' start-up is not ingestion time) to the one that sees none waiting.
        done_sql = (
            "SELECT count(*) FROM channels_sms_inboundsms WHERE state IN ('ingested', 'failed')"
        )
        first: tuple[float, int] | None = None
        last = (time.monotonic(), 0)
        while time.monotonic() - drain_start < args.drain_seconds:
            pending = count("SELECT count(*) FROM channels_sms_inboundsms WHERE state='received'")
            processed = count(done_sql)
            last = (time.monotonic(), processed)
            if first is None and processed:
                first = last
            if pending == 0:
                break
            await asyncio.sleep(0.5)
        drain_seconds = round(time.monotonic() - drain_start, 1)
        first = first or last
        ingest_span = max(last[0] - first[0], 0.001)
        ingested = last[1] - first[1]
        failed = count("SELECT count(*) FROM channels_sms_inboundsms WHERE state='failed'")
        inbound = count("SELECT count(*) FROM channels_sms_inboundsms")
        dup_inbound = count(
            "SELECT coalesce(sum(c - 1), 0) FROM (SELECT count(*) c FROM channels_sms_inboundsms"
            " GROUP BY message_sid HAVING count(*) > 1) d"
        )
        messages = count("SELECT count(*) FROM interactions_message WHERE channel='sms'")
        dup_messages = count(
            "SELECT coalesce(sum(c - 1), 0) FROM (SELECT count(*) c FROM interactions_message"
            " WHERE channel='sms' GROUP BY provider_id HAVING count(*) > 1) d"
        )
        pending = count("SELECT count(*) FROM channels_sms_inboundsms WHERE state='received'")
        # Order per citizen: in each conversation, the messages as stored (id) and as shown
        # (created_at, id) follow the order the SMS were received (the rows' ids).
        order_violations = count(
            "SELECT count(*) FROM (SELECT"
            " row_number() OVER (PARTITION BY m.interaction_id ORDER BY i.id) rx,"
            " row_number() OVER (PARTITION BY m.interaction_id ORDER BY m.created_at, m.id) sh,"
            " row_number() OVER (PARTITION BY m.interaction_id ORDER BY m.id) st"
            " FROM channels_sms_inboundsms i JOIN interactions_message m ON m.id = i.message_id"
            " WHERE m.provider_id = i.message_sid) t WHERE rx <> sh OR rx <> st"
        )
        # One conversation per citizen (nobody answers in this bench, so none was closed).
        split_conversations = count(
            "SELECT count(*) FROM (SELECT i.sender FROM channels_sms_inboundsms i"
            " JOIN interactions_message m ON m.id = i.message_id GROUP BY i.sender"
            " HAVING count(DISTINCT m.interaction_id) > 1) s"
        )
        log(
            f"distinct SIDs sent {sids}; inbound rows {inbound}; messages {messages}; "
            f"still pending {pending} after {drain_seconds} s of drain; "
            f"{ingested} processed in {ingest_span:.1f} s ({ingested / ingest_span:.0f}/s); "
            f"order violations {order_violations}; split conversations {split_conversations}"
        )
        return {
            "sustained_per_s": sustained,
            "p50_ms": paced["p50_ms"],
            "p99_ms": paced["p99_ms"],
            "duplicates": dup_inbound + dup_messages,
            "paced_errors": paced["errors"],
            "p50_ms_with_worker": with_worker["p50_ms"],
            "p99_ms_with_worker": with_worker["p99_ms"],
            "ingested_per_s": round(ingested / ingest_span, 1),
            "ingest_processes": args.ingest_processes,
            "drained": pending == 0,
            "order_violations": order_violations,
            "split_conversations": split_conversations,
            "failed": failed,
            "backlog_at_worker_start": backlog,
            "paced_requests": paced["requests"],
            "distinct_sids": sids,
            "inbound_rows": inbound,
            "messages": messages,
            "pending_after_drain": pending,
            "drain_seconds": drain_seconds,
            "app": args.app,
            "worker_niceness": WORKER_NICENESS,
            "uvicorn_workers": args.workers,
            "db_pool_per_process": args.conn_max_age,
            "ramp": ramp,
            "total_seconds": round(time.monotonic() - t0, 1),
        }
    finally:
        for process in (*workers, server):
            try:
                if process is server:
                    os.killpg(process.pid, signal.SIGTERM)
                else:
                    process.terminate()
                process.wait(timeout=15)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                process.kill()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds-per-step", type=float, default=5.0)
    parser.add_argument("--paced-seconds", type=float, default=20.0)
    parser.add_argument("--drain-seconds", type=float, default=600.0)
    parser.add_argument(
        "--ingest-processes",
        type=int,
        default=2,
        help="processes of the ingest worker (docker-compose.yml's worker-ingest: 2)",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--app",
        default="contactcentre.asgi:application",
        help="ASGI application: the project (lean webhook path, default), or "
        "contactcentre.asgi:django_asgi_app for the plain Django stack",
    )
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--pool-size", dest="conn_max_age", type=int, default=10)
    result = asyncio.run(main(parser.parse_args()))
    print(json.dumps(result), flush=True)
