"""The chaos harness's stack (bench/chaos.py): its own PostgreSQL and Redis servers, the app's
processes (2 web, 2 Celery workers, beat, the SMTP server) and a fake provider REST API, all on
loopback, each of which the harness can kill, stop and restart as a supervisor would.

Everything lives under one temporary directory and every process is started in a session of
its own (``kill -9`` of a "container" kills its whole process group, children included);
:meth:`Stack.close` stops all of them and removes the directory, whatever happened before.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from bench.console_fanout import wait_for_port as fanout_wait_for_port
from bench.ingest import free_port

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
TOKEN = "c" * 32
ACCOUNT = "AC" + "0" * 31 + "7"
DB_NAME = "cc_chaos"


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def wait_for_port(port: int, timeout: float = 60.0) -> bool:
    try:
        fanout_wait_for_port(port, timeout)
    except RuntimeError:
        return False
    return True


def pg_bindir() -> Path:
    """The newest PostgreSQL server binaries installed (Debian layout), or PG_BINDIR."""
    if os.environ.get("PG_BINDIR"):
        return Path(os.environ["PG_BINDIR"])
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(re.sub(r"\D", "", p.split("/")[4]) or 0),
    )
    if not found:
        raise RuntimeError("initdb not found (/usr/lib/postgresql/*/bin): install postgresql")
    return Path(found[-1]).parent


class Process:
    """One supervised service: started in its own session, killed as a group."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], logfile: Path) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.logfile = logfile
        self.popen: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        out = open(self.logfile, "ab")  # noqa: SIM115 - handed to the child
        out.write(f"\n=== start {time.strftime('%H:%M:%S')} ===\n".encode())
        out.flush()
        self.popen = subprocess.Popen(
            self.argv,
            cwd=ROOT,
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()
        self.starts += 1

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=15)

    def stop(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            # the group may still hold children of a dead leader
            self.kill(signal.SIGKILL)
            return
        self.kill(signal.SIGTERM)
        if self.popen.poll() is None:
            self.kill(signal.SIGKILL)


# --------------------------------------------------------------------------- fake provider
class FakeProvider:
    """A Twilio-compatible REST API on loopback (Messages and Calls resources, the formats of
    the API reference), with three modes the harness switches: ``normal``, ``refuse`` (nothing
    listens: connection refused) and ``stall`` (requests are read, never answered in time).

    A call update whose TwiML dials the agent's phone plays the agent's side as Twilio would:
    the whisper URL when the agent picks up, the agent leg's status callbacks, and after a
    short talk the ``<Dial action>`` result and the caller's ``completed`` status.
    """

    def __init__(self, port: int, public_base: Callable[[], list[str]], talk_s: float) -> None:
        self.port = port
        self.public_bases = public_base  # the web servers' base URLs, to post callbacks to
        self.talk_s = talk_s
        self.mode = "normal"
        self.stall_s = 30.0
        self.messages: list[dict[str, str]] = []
        self.call_updates: list[dict[str, str]] = []
        self.callback_failures = 0
        self.server: ThreadingHTTPServer | None = None
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    # -- listening
    def start(self) -> None:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                if provider.mode == "stall":
                    provider.stopping.wait(provider.stall_s)
                    with contextlib.suppress(OSError):
                        self.connection.close()
                    return
                status, body = provider.answer(self.path, form)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        ThreadingHTTPServer.daemon_threads = True
        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop_listening(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def set_mode(self, mode: str) -> None:
        if mode == "refuse":
            self.mode = "refuse"
            self.stop_listening()
            return
        if self.server is None:
            self.start()
        self.mode = mode

    def close(self) -> None:
        self.stopping.set()
        self.stop_listening()

    # -- the API
    def answer(self, path: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if m := re.search(r"/Accounts/(AC[0-9a-f]{32})/Messages\.json$", path):
            sid = "SM" + uuid.uuid4().hex
            with self.lock:
                self.messages.append({"sid": sid, **form})
            return 201, {
                "sid": sid,
                "account_sid": m.group(1),
                "to": form.get("To"),
                "from": form.get("From"),
                "body": form.get("Body", ""),
                "status": "queued",
                "direction": "outbound-api",
                "api_version": "2010-04-01",
                "num_segments": "1",
                "error_code": None,
                "error_message": None,
                "price": None,
                "uri": f"/2010-04-01/Accounts/{m.group(1)}/Messages/{sid}.json",
            }
        if m := re.search(r"/Accounts/(AC[0-9a-f]{32})/Calls/(CA[0-9a-f]{32})\.json$", path):
            sid = m.group(2)
            with self.lock:
                self.call_updates.append({"sid": sid, **form})
            twiml = form.get("Twiml", "")
            if "<Dial" in twiml:
                threading.Thread(target=self._play_bridge, args=(sid, twiml), daemon=True).start()
            return 200, {
                "sid": sid,
                "account_sid": m.group(1),
                "status": "in-progress",
                "direction": "inbound",
                "api_version": "2010-04-01",
                "uri": f"/2010-04-01/Accounts/{m.group(1)}/Calls/{sid}.json",
            }
        return 404, {
            "code": 20404,
            "message": "The requested resource was not found",
            "more_info": "https://www.twilio.com/docs/errors/20404",
            "status": 404,
        }

    # -- the agent's phone, as Twilio drives it
    def _attr(self, twiml: str, tag: str, name: str) -> str:
        m = re.search(rf"<{tag}\b[^>]*\b{name}=\"([^\"]*)\"", twiml)
        return m.group(1).replace("&amp;", "&") if m else ""

    def _play_bridge(self, parent: str, twiml: str) -> None:
        from bench.chaos_drivers import post_signed_sync

        leg = "CA" + uuid.uuid4().hex
        whisper = self._attr(twiml, "Number", "url")
        status_url = self._attr(twiml, "Number", "statusCallback")
        action = self._attr(twiml, "Dial", "action")
        number = re.search(r"<Number[^>]*>([^<]*)</Number>", twiml)
        leg_params = {
            "CallSid": leg,
            "ParentCallSid": parent,
            "AccountSid": ACCOUNT,
            "From": "+33900000002",
            "To": number.group(1) if number else "",
            "Direction": "outbound-dial",
            "ApiVersion": "2010-04-01",
        }
        time.sleep(0.5)
        ok = True
        if whisper:
            ok = post_signed_sync(whisper, {**leg_params, "CallStatus": "in-progress"})
        if status_url:
            ok = (
                post_signed_sync(
                    status_url, {**leg_params, "CallStatus": "in-progress", "SequenceNumber": "1"}
                )
                and ok
            )
        self.stopping.wait(self.talk_s)
        if status_url:
            ok = (
                post_signed_sync(
                    status_url,
                    {
                        **leg_params,
                        "CallStatus": "completed",
                        "CallDuration": str(int(self.talk_s)),
                        "SequenceNumber": "2",
                    },
                )
                and ok
            )
        if action:
            ok = (
                post_signed_sync(
                    action,
                    {
                        "CallSid": parent,
                        "AccountSid": ACCOUNT,
                        "DialCallStatus": "completed",
                        "DialCallSid": leg,
                        "DialCallDuration": str(int(self.talk_s)),
                        "CallStatus": "in-progress",
                        "From": "+33600000000",
                        "To": "+33900000002",
                    },
                )
                and ok
            )
        ok = (
            post_signed_sync(
                None,
                {
                    "CallSid": parent,
                    "AccountSid": ACCOUNT,
                    "CallStatus": "completed",
                    "CallDuration": str(int(self.talk_s) + 5),
                    "From": "+33600000000",
                    "To": "+33900000002",
                    "SequenceNumber": "9",
                },
                path="/webhooks/twilio/voice/status/",
            )
            and ok
        )
        if not ok:
            with self.lock:
                self.callback_failures += 1


# --------------------------------------------------------------------------- the stack
class Stack:
    def __init__(
        self,
        *,
        env_overrides: dict[str, str] | None = None,
        workers: int = 2,
        concurrency: int = 2,
        pg_options: str = "",
        worker_queues: list[tuple[str, int]] | None = None,
    ) -> None:
        self.workers = workers  # Celery worker processes (each with ``concurrency`` children)
        self.concurrency = concurrency
        # Instead: one worker per (queues, concurrency), as docker-compose runs them by kind.
        self.worker_queues = worker_queues
        self.pg_options = pg_options  # more ``-c name=value`` for the PostgreSQL server
        self.tmp = Path(tempfile.mkdtemp(prefix="cc-chaos-"))
        os.chmod(self.tmp, 0o755)  # noqa: S103 - the postgres user must reach its data dir
        self.logs = self.tmp / "logs"
        self.logs.mkdir()
        self.pg_port = free_port()
        self.redis_port = free_port()
        self.web_ports = [free_port(), free_port()]
        self.smtp_port = free_port()
        self.provider_port = free_port()
        self.pgdata = self.tmp / "pg"
        self.bindir = pg_bindir()
        self.redis: Process | None = None
        self.processes: dict[str, Process] = {}
        self.provider = FakeProvider(self.provider_port, self.web_bases, talk_s=2.0)
        self.env = self._env(env_overrides or {})
        self.closed = False

    def web_bases(self) -> list[str]:
        return [f"http://127.0.0.1:{p}" for p in self.web_ports]

    @property
    def database_url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.pg_port}/{DB_NAME}"

    def _env(self, overrides: dict[str, str]) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CELERY_"))}
        env = {
            **keep,
            "DJANGO_SETTINGS_MODULE": "contactcentre.settings",
            "DATABASE_URL": self.database_url,
            "DATABASE_POOL": "true",  # the production default (the test settings turn it off)
            "REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "CHANNEL_LAYER_PREFIX": "chaos",
            "DJANGO_SECRET_KEY": "chaos-" + "k" * 50,
            "DJANGO_DEBUG": "false",
            "DJANGO_SECURE": "false",
            "STATIC_MANIFEST": "false",
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{self.web_ports[0]}",
            "TWILIO_ACCOUNT_SID": ACCOUNT,
            "TWILIO_AUTH_TOKEN": TOKEN,
            "TELEPHONY_BACKEND": "channels_inbound.providers.twilio.TwilioBackend",
            "TWILIO_API_BASE_URL": f"http://127.0.0.1:{self.provider_port}",
            "PROVIDER_CONNECT_TIMEOUT_S": "1",
            "PROVIDER_READ_TIMEOUT_S": "3",
            "OUTBOUND_RETRY_BACKOFF_S": "2",
            "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
            "EMAIL_SMTP_SERVER_PORT": str(self.smtp_port),
            "EMAIL_DOMAIN": "chaos.localhost",
            "LOG_LEVEL": "WARNING",
            "DATA_DIR": str(self.tmp / "data"),
            "ROUTING_OFFER_TIMEOUT_VOICE": "15",
            "ROUTING_OFFER_TIMEOUT_CHAT": "15",
            "ROUTING_OFFER_TIMEOUT_EMAIL": "15",
            "ROUTING_OFFER_TIMEOUT_SMS": "15",
            "ROUTING_WRAP_UP_SECONDS": "3",
            "ROUTING_HEARTBEAT_WINDOW_SECONDS": "8",
            "ROUTING_CONSOLE_GRACE_SECONDS": "4",
            "CONSOLE_HEARTBEAT_SECONDS": "3",
            "CONSOLE_HEARTBEAT_FLUSH_SECONDS": "2",
            "SMS_SWEEP_SECONDS": "5",
            "CHAT_SWEEP_SECONDS": "10",
            "VOICE_DIAL_TIMEOUT_SECONDS": "6",
            "VOICE_BRIDGE_GRACE_SECONDS": "3",
            "VOICE_WAIT_LOOP_SECONDS": "30",
            "CHAT_RATE_VISITOR_BURST": "1000",
            "CHAT_RATE_VISITOR_PER_MINUTE": "6000",
            "CHAT_RATE_IP_BURST": "100000",
            "CHAT_RATE_IP_PER_MINUTE": "600000",
            "CHAT_RATE_CONNECT_IP_BURST": "100000",
            "CHAT_RATE_CONNECT_IP_PER_MINUTE": "600000",
            "AXES_FAILURE_LIMIT": "1000",
            "UVICORN_WS_PER_MESSAGE_DEFLATE": "false",
        }
        env.update(overrides)
        return env

    # -- PostgreSQL (as the postgres OS user: initdb refuses root)
    def _as_postgres(self, argv: list[str], **kw: Any) -> subprocess.CompletedProcess[bytes]:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        return subprocess.run(prefix + argv, capture_output=True, **kw)

    def pg_init(self) -> None:
        self.pgdata.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.pgdata, "postgres", "postgres")
        out = self._as_postgres(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.pgdata),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--locale=C",
            ]
        )
        if out.returncode:
            raise RuntimeError(f"initdb failed: {out.stderr.decode()[-2000:]}")

    def pg_start(self) -> None:
        opts = (
            f"-p {self.pg_port} -k {self.pgdata} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300 "
            + self.pg_options
        )
        out = self._as_postgres(
            [
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.pgdata),
                "-l",
                str(self.pgdata / "server.log"),
                "-w",
                "-t",
                "60",
                "-o",
                opts,
                "start",
            ]
        )
        if out.returncode:
            raise RuntimeError(f"pg_ctl start failed: {out.stderr.decode()[-2000:]}")

    def pg_stop(self, mode: str = "fast") -> None:
        self._as_postgres(
            [
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.pgdata),
                "-m",
                mode,
                "-w",
                "-t",
                "30",
                "stop",
            ]
        )

    def psql(self, sql: str, db: str = DB_NAME) -> str:
        out = subprocess.run(
            [
                "psql",
                f"postgres://postgres@127.0.0.1:{self.pg_port}/{db}",
                "-v",
                "ON_ERROR_STOP=1",
                "-tAc",
                sql,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()

    # -- Redis
    def redis_start(self) -> None:
        if self.redis is None:
            self.redis = Process(
                "redis",
                [
                    "redis-server",
                    "--port",
                    str(self.redis_port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.tmp),
                ],
                dict(os.environ),
                self.logs / "redis.log",
            )
        self.redis.start()
        if not wait_for_port(self.redis_port, 20):
            raise RuntimeError("redis-server did not start")

    # -- the app
    def manage(self, *args: str, timeout: float = 300) -> None:
        out = subprocess.run(
            [PYTHON, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if out.returncode:
            raise RuntimeError(f"manage.py {' '.join(args)} failed: {out.stderr[-3000:]}")

    def run_python(self, code: str, timeout: float = 600) -> str:
        """Run ``python -c code`` in the app's environment; the last line it printed."""
        out = subprocess.run(
            [PYTHON, "-c", code],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if out.returncode:
            raise RuntimeError(f"{code[:60]} failed: {out.stderr[-3000:]}")
        return out.stdout.strip().splitlines()[-1]

    def define_processes(self) -> None:
        """The commands of docker-compose.yml (web: the image's CMD), on loopback ports."""
        web_env = {**self.env, "DATABASE_CONN_MAX_AGE": "0"}
        celery = [PYTHON, "-m", "celery", "-A", "contactcentre"]
        for i, port in enumerate(self.web_ports, 1):
            web = f"uvicorn contactcentre.asgi:application --host 127.0.0.1 --port {port}"
            quiet = "--no-proxy-headers --lifespan off --no-access-log --log-level warning"
            self.processes[f"web{i}"] = Process(
                f"web{i}",
                [PYTHON, "-m", *web.split(), *quiet.split()],
                web_env,
                self.logs / f"web{i}.log",
            )
        layout = self.worker_queues or [("celery,ingest,route,outbound,reports", self.concurrency)]
        for i in range(1, (len(self.worker_queues) if self.worker_queues else self.workers) + 1):
            queues, concurrency = layout[(i - 1) % len(layout)]
            worker = f"worker -Q {queues} --hostname chaos{i}@%h"
            worker += f" -l warning --concurrency {concurrency}"
            self.processes[f"worker{i}"] = Process(
                f"worker{i}",
                [*celery, *worker.split(), "--without-gossip", "--without-mingle"],
                self.env,
                self.logs / f"worker{i}.log",
            )
        self.processes["beat"] = Process(
            "beat",
            [*celery, "beat", "-l", "warning", "--schedule", str(self.tmp / "celerybeat-schedule")],
            self.env,
            self.logs / "beat.log",
        )
        self.processes["smtp"] = Process(
            "smtp",
            [PYTHON, *f"manage.py smtp_server --host 127.0.0.1 --port {self.smtp_port}".split()],
            self.env,
            self.logs / "smtp.log",
        )

    def start_app(self) -> None:
        self.define_processes()
        for process in self.processes.values():
            process.start()
        ports = {"web1": self.web_ports[0], "web2": self.web_ports[1], "smtp": self.smtp_port}
        for name, port in ports.items():
            for _attempt in range(3):  # a process that died while starting is started again
                if wait_for_port(port, 60) and self.processes[name].alive():
                    break
                log(f"{name} did not listen on {port}: {self.log_tail(name, 800)}")
                self.restart(name)
            else:
                raise RuntimeError(f"{name} did not start; see {self.logs}")

    def restart(self, name: str) -> None:
        process = self.processes[name]
        process.stop()
        process.start()
        if name.startswith("web"):
            wait_for_port(self.web_ports[int(name[-1]) - 1], 60)

    def start(self) -> None:
        log(
            f"stack in {self.tmp}: PostgreSQL {self.bindir} on {self.pg_port}, "
            f"Redis on {self.redis_port}"
        )
        self.pg_init()
        self.pg_start()
        self.psql(f"CREATE DATABASE {DB_NAME}", db="postgres")
        self.redis_start()
        self.provider.start()
        started = time.monotonic()
        self.manage("migrate", "--noinput", "-v", "0")
        log(f"migrated in {time.monotonic() - started:.1f} s")

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time (user + system, seconds) used so far by each part of the stack, its
        processes' children included: ``web``, ``worker:<queues>``, ``beat``, ``smtp``,
        ``redis`` and ``postgres`` (the postmaster and its backends). Children that already
        exited count too (their parent's ``children_*`` times: a backend of a closed
        connection, a worker child that was replaced)."""
        import psutil

        def tree(pid: int) -> float:
            total = 0.0
            with contextlib.suppress(psutil.NoSuchProcess):
                root = psutil.Process(pid)
                for proc in [root, *root.children(recursive=True)]:
                    with contextlib.suppress(psutil.NoSuchProcess):
                        times = proc.cpu_times()
                        total += times.user + times.system
                        total += times.children_user + times.children_system
            return total

        totals: dict[str, float] = {}
        named = {**self.processes, **({"redis": self.redis} if self.redis else {})}
        for name, process in named.items():
            if process.popen is None:
                continue
            group = "web" if name.startswith("web") else name
            if name.startswith("worker") and "-Q" in process.argv:
                group = "worker:" + process.argv[process.argv.index("-Q") + 1]
            totals[group] = totals.get(group, 0.0) + tree(process.popen.pid)
        with contextlib.suppress(OSError, ValueError, IndexError):
            postmaster = int((self.pgdata / "postmaster.pid").read_text().split()[0])
            totals["postgres"] = tree(postmaster)
        return totals

    def log_tail(self, name: str, chars: int = 3000) -> str:
        path = self.logs / f"{name}.log"
        if name == "postgres":
            path = self.pgdata / "server.log"
        try:
            return path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    @staticmethod
    def _stop(processes: list[Any]) -> None:
        """SIGTERM to each, then SIGKILL to what is left after 10 s (the whole group: children
        of a leader gone too)."""
        for process in processes:
            if process.popen is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for process in processes:
            if process.popen is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
        for process in processes:
            with contextlib.suppress(Exception):
                process.kill(signal.SIGKILL)

    def close(self, keep_logs: Path | None = None) -> None:
        if self.closed:
            return
        self.closed = True
        # The app's processes first, then Redis: stopped together, the web processes' consoles
        # lost Redis while closing (a traceback per console in their logs, at every run's end).
        self._stop(list(self.processes.values()))
        if self.redis:
            self._stop([self.redis])
        with contextlib.suppress(Exception):
            self.provider.close()
        if self.pgdata.exists():
            with contextlib.suppress(Exception):
                self.pg_stop("immediate")
        if keep_logs is not None:
            with contextlib.suppress(Exception):
                shutil.copytree(self.logs, keep_logs, dirs_exist_ok=True)
                shutil.copy(self.pgdata / "server.log", keep_logs / "postgres.log")
        shutil.rmtree(self.tmp, ignore_errors=True)
