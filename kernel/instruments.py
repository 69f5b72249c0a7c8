"""The metrics that code moves as it runs (docs/operations.md, "Metrics").

Everything here is a counter increment, a histogram observation or a gauge set: no query, no
I/O beyond prometheus_client's own (a memory write; in multi-process mode, a write to a
memory-mapped file under ``PROMETHEUS_MULTIPROC_DIR``). The figures read from the database
(waiting contacts, today's answers...) are computed when the endpoint is scraped
(:mod:`metrics.collector`), never on a hot path.

Multi-process mode. Web processes (uvicorn workers) and Celery workers each hold their own
counters. With ``PROMETHEUS_MULTIPROC_DIR`` set (before Python starts: prometheus_client reads
it when imported), every process writes its values to files in that directory and
``/metrics`` adds up the files of every process (counters and histograms summed; the console
sockets gauge kept per process, with a ``pid`` label). The files are named after the host and
the process id (``<host>-<pid>``), not the process id alone: containers sharing the directory
through a volume each number their processes from 1, and two processes writing one file would
corrupt it. Files of processes that ended stay (a counter must not go back), except the
per-process gauges' (removed when the process exits, or found dead by the next scrape on the
same host).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import glob
import os
import re
import socket
import time
from collections.abc import Callable
from typing import Any, ParamSpec, Protocol, TypeVar

from prometheus_client import Counter, Gauge, Histogram, values

MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
_HOST = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname())[:63] or "host"


def process_id() -> str:
    """This process's name in the multi-process files: ``<host>-<pid>`` (no ``_``: the
    collector splits file names on it)."""
    return f"{_HOST}-{os.getpid()}"


if MULTIPROC_DIR:
    os.makedirs(MULTIPROC_DIR, exist_ok=True)
    # Before any metric below is created: each value picks its class when it is made.
    values.ValueClass = values.MultiProcessValue(process_identifier=process_id)

# --------------------------------------------------------------------------- routing

ROUTING_PASS_SECONDS = Histogram(
    "cc_routing_pass_duration_seconds",
    "Duration of one routing pass (routing.claims.do_route_pending). outcome: idle (nothing "
    "waiting or no free agent: one index probe), planned (matched and claimed), error.",
    ["outcome"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
ROUTING_CLAIMS = Counter(
    "cc_routing_claims",
    "Interactions claimed by routing passes: kind offered (an offer to an agent) or assigned "
    "(auto-accepted channels).",
    ["kind"],
)
ROUTING_LOST_MATCHES = Counter(
    "cc_routing_lost_matches",
    "Matches a pass could not claim (agent or interaction taken by a concurrent worker, "
    "capacity gone); the next pass retries them.",
)
ROUTING_OVERFLOWS = Counter(
    "cc_routing_overflows", "Interactions moved to an overflow queue by a routing pass."
)


class _PassResult(Protocol):
    offered: int
    assigned: int
    skipped: int
    overflowed: int
    waiting: int


P = ParamSpec("P")
R = TypeVar("R", bound=_PassResult)


# The children of fixed label values, resolved once (``.labels()`` costs more than the write).
_PASS_SECONDS = {o: ROUTING_PASS_SECONDS.labels(o) for o in ("idle", "planned", "error")}
_CLAIMS = {k: ROUTING_CLAIMS.labels(k) for k in ("offered", "assigned")}


def timed_routing_pass(pass_function: Callable[P, R]) -> Callable[P, R]:
    """Wrap a routing pass: its duration, and what it claimed (counted once it returned, i.e.
    after its claim transactions committed)."""

    @functools.wraps(pass_function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        started = time.perf_counter()
        try:
            result = pass_function(*args, **kwargs)
        except BaseException:
            _PASS_SECONDS["error"].observe(time.perf_counter() - started)
            raise
        _PASS_SECONDS["planned" if result.waiting else "idle"].observe(
            time.perf_counter() - started
        )
        if result.offered:
            _CLAIMS["offered"].inc(result.offered)
        if result.assigned:
            _CLAIMS["assigned"].inc(result.assigned)
        if result.skipped:
            ROUTING_LOST_MATCHES.inc(result.skipped)
        if result.overflowed:
            ROUTING_OVERFLOWS.inc(result.overflowed)
        return result

    return wrapper


# --------------------------------------------------------------------------- provider webhooks

WEBHOOK_SECONDS = Histogram(
    "cc_webhook_duration_seconds",
    "Time to answer a provider webhook (SMS, voice), from the check of its signature to the "
    "response, whatever the answer.",
    ["provider", "webhook"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
WEBHOOK_ERRORS = Counter(
    "cc_webhook_errors",
    "Provider webhooks answered with an error. reason: method (405), too_large (413), "
    "bad_request (400: unreadable body, missing field), signature (403), exception (500).",
    ["provider", "webhook", "reason"],
)
_WEBHOOK_REASONS = {400: "bad_request", 403: "signature", 405: "method", 413: "too_large"}


_webhook_children: dict[tuple[str, str], Any] = {}


def webhook_answered(*, provider: str, webhook: str, status: int, seconds: float) -> None:
    histogram = _webhook_children.get((provider, webhook))
    if histogram is None:
        histogram = _webhook_children[provider, webhook] = WEBHOOK_SECONDS.labels(provider, webhook)
    histogram.observe(seconds)
    if status >= 400:
        reason = "exception" if status >= 500 else _WEBHOOK_REASONS.get(status, f"http_{status}")
        WEBHOOK_ERRORS.labels(provider, webhook, reason).inc()


# --------------------------------------------------------------------------- outbound sending

OUTBOUND_SENT = Counter(
    "cc_outbound_sent", "Messages handed to the provider or mail relay.", ["channel"]
)
OUTBOUND_RETRIES = Counter(
    "cc_outbound_retries",
    "Failed attempts to send a message that will be tried again (with back-off).",
    ["channel"],
)
OUTBOUND_FAILURES = Counter(
    "cc_outbound_failures",
    "Messages finally not sent. reason: exhausted (every attempt failed), permanent (refused "
    "by the provider), opted_out (the recipient sent STOP).",
    ["channel", "reason"],
)


def outbound_sent(channel: str) -> None:
    OUTBOUND_SENT.labels(channel).inc()


def outbound_retry(channel: str) -> None:
    OUTBOUND_RETRIES.labels(channel).inc()


def outbound_failed(channel: str, reason: str) -> None:
    OUTBOUND_FAILURES.labels(channel, reason).inc()


# --------------------------------------------------------------------------- console sockets

CONSOLE_SOCKETS = Gauge(
    "cc_console_sockets",
    "Agent console WebSockets open in this process (one series per web process: pid label in "
    "multi-process mode).",
    multiprocess_mode="liveall",
)


def console_sockets(count: int) -> None:
    CONSOLE_SOCKETS.set(count)


# --------------------------------------------------------------------------- process bookkeeping

_LIVE_FILE = re.compile(r"^gauge_live[a-z]+_(?P<host>.+)-(?P<pid>\d+)\.db$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def prune_dead_processes(path: str = "") -> int:
    """Remove the per-process gauge files of this host's processes that are gone (a process
    killed without running its exit hooks). Other hosts' files are left to them."""
    path = path or MULTIPROC_DIR
    if not path:
        return 0
    removed = 0
    for name in glob.glob(os.path.join(path, "gauge_live*.db")):
        found = _LIVE_FILE.match(os.path.basename(name))
        if found is None or found["host"] != _HOST or _alive(int(found["pid"])):
            continue
        with contextlib.suppress(FileNotFoundError):
            os.remove(name)
            removed += 1
    return removed


def _at_exit() -> None:
    if MULTIPROC_DIR:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(process_id(), MULTIPROC_DIR)


if MULTIPROC_DIR:
    atexit.register(_at_exit)
