"""The chaos harness's short run (bench/chaos.py --short): the whole production-like stack on its
own PostgreSQL and Redis servers, all four channels under load, one fault of each kind, and
nothing lost, doubled, over capacity, stuck or unseen, each fault healed within 10 s.

Self-contained: it starts its own servers (initdb, redis-server), so it does not use the test
database or DATABASE_URL. Without the server binaries it is skipped, except under CI=true where
it fails.

Losses, doubles, over-capacity, stuck contacts and unseen offers always fail the test. A
recovery over 10 s fails it too, except (reported as an expected failure, with the figures)
when it is explained by the open bugs this harness found (docs/benchmarks.md, "Chaos"): Celery
workers exit on a Redis restart (kombu ``AttributeError`` in ``on_connection_error_after_
connected``; the supervisor restarts them, so the recovery includes a worker boot), and live
console events missed by the ``core`` channel layer (its receive stall; groups lost with a
Redis restart), which the consoles then get from the outbox catch-up, seconds late.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.chaos_stack import pg_bindir

ROOT = Path(__file__).resolve().parents[2]
CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

pytestmark = [pytest.mark.slow]


def _known_slow(fault: str, figures: dict[str, Any], result: dict[str, Any]) -> bool:
    """A recovery over 10 s explained by the open bugs: it waited only for offers to be shown
    (live events missed by the channel layer, shown by the outbox catch-up seconds later), or
    it is the Redis restart during which the workers exited (the supervisor restarts them: the
    wait includes their boot). Empty this once they are fixed."""
    waited = set(figures.get("last_wait") or {})  # what the recovery waited for, last
    if waited <= {"offers_unseen"}:
        return True
    return fault == "redis_restart" and bool(result.get("crash_restarts"))


def _missing() -> str | None:
    try:
        pg_bindir()
    except RuntimeError as exc:
        return str(exc)
    if shutil.which("redis-server") is None:
        return "redis-server not found"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "runuser not found (initdb must run as the postgres user)"
    return None


@pytest.mark.timeout(330)
def test_no_citizen_request_is_lost_doubled_or_unseen_under_faults(tmp_path: Path) -> None:
    missing = _missing()
    if missing:
        if CI:
            pytest.fail(f"the chaos harness cannot run: {missing}")
        pytest.skip(missing)
    logs = tmp_path / "logs"
    run = subprocess.run(
        [sys.executable, "bench/chaos.py", "--short", "--keep-logs", str(logs)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=320,
        check=False,
    )
    lines = [line for line in run.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no result line; stdout tail:\n{run.stdout[-4000:]}\n{run.stderr[-2000:]}"
    result = json.loads(lines[-1])
    context = f"\n{run.stdout[-6000:]}"
    assert "error" not in result, result.get("error", "") + context
    assert result["accepted"] > 50, context  # every channel carried load
    assert all(n > 0 for n in result["accepted_by_channel"].values()), context
    for key in ("lost", "doubled", "over_capacity", "stuck", "offers_unseen"):
        assert result[key] == 0, f"{key}: {result['samples'].get(key)}{context}"
    faults = {k: v for k, v in result["per_fault"].items() if "recovery_s" in v}
    assert len(faults) == 9, context
    assert run.returncode == 0, context
    assert result["max_recovery_s"] is not None, f"a fault never healed{context}"
    slow = {k: v for k, v in faults.items() if v["recovery_s"] > 10}
    if slow and all(_known_slow(k, v, result) for k, v in slow.items()):
        pytest.xfail(
            "recovery over 10 s, only for the open bugs of the module docstring: "
            + ", ".join(
                f"{k} {v['recovery_s']} s waiting last on {v['last_wait']}" for k, v in slow.items()
            )
        )
    assert not slow, (
        f"recovery over 10 s: { {k: v['recovery_s'] for k, v in slow.items()} }{context}"
    )
