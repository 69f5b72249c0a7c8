"""The chaos harness's short run (bench/chaos.py --short): the whole production-like stack on its
own PostgreSQL and Redis servers, all four channels under load, one fault of each kind, and
nothing lost, doubled, over capacity, stuck or unseen, each fault healed within 10 s.

Self-contained: it starts its own servers (initdb, redis-server), so it does not use the test
database or DATABASE_URL. Without the server binaries it is skipped, except under CI=true where
it fails.

Losses, doubles, over-capacity and stuck contacts always fail the test; so does a recovery over
10 s, except (reported as an expected failure, with the figures) when it waited only for offers
to be shown. Unseen offers fail it too, except those the agent saw only by re-reading the
console's snapshot over HTTP: the open gap of the catch-up (docs/benchmarks.md, "Chaos"): a
console is told only the newest event id of its agent, so an event lost live and followed by
one delivered live (Redis restarting between the two) is replayed at the next reconnection
only. Empty these exceptions once that gap is closed.
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


def _known_slow(figures: dict[str, Any]) -> bool:
    """A recovery over 10 s that waited, last, only for offers to be shown (the catch-up gap of
    the module docstring). Celery workers exiting on a Redis restart is fixed (celery < 5.7):
    a slow Redis recovery now fails."""
    waited = set(figures.get("last_wait") or {})  # what the recovery waited for, last
    return waited <= {"offers_unseen"}


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
    for key in ("lost", "doubled", "over_capacity", "stuck"):
        assert result[key] == 0, f"{key}: {result['samples'].get(key)}{context}"
    unseen = result["offers_unseen"]
    assert unseen <= result["offers_only_in_http_snapshot"], (
        f"offers never shown: {result['samples'].get('offers_unseen')}{context}"
    )
    assert result["crash_restarts"] == {}, f"processes exited by themselves{context}"
    faults = {k: v for k, v in result["per_fault"].items() if "recovery_s" in v}
    assert len(faults) == 9, context
    assert run.returncode == 0, context
    assert result["max_recovery_s"] is not None, f"a fault never healed{context}"
    slow = {k: v for k, v in faults.items() if v["recovery_s"] > 10}
    if unseen:
        pytest.xfail(
            f"{unseen} offer(s) shown only by the HTTP snapshot (the catch-up gap of the "
            f"module docstring): {result['samples'].get('offers_unseen')}"
        )
    if slow and all(_known_slow(v) for v in slow.values()):
        pytest.xfail(
            "recovery over 10 s, only for the open bugs of the module docstring: "
            + ", ".join(
                f"{k} {v['recovery_s']} s waiting last on {v['last_wait']}" for k, v in slow.items()
            )
        )
    assert not slow, (
        f"recovery over 10 s: { {k: v['recovery_s'] for k, v in slow.items()} }{context}"
    )
