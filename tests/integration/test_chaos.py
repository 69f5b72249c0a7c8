"""The chaos harness's short run (bench/chaos.py --short): the whole production-like stack on its
own PostgreSQL and Redis servers, all four channels under load, one fault of each kind, and
nothing lost, doubled, over capacity, stuck or unseen, and every fault healed.

Self-contained: it starts its own servers (initdb, redis-server), so it does not use the test
database or DATABASE_URL. Without the server binaries it is skipped, except under CI=true where
it fails.

Losses, doubles, over-capacity, stuck contacts, offers never shown on their agent's socket
(an offer seen only by re-reading the snapshot over HTTP counts as unseen) and processes that
exited by themselves fail the test. How fast each fault heals (target: 10 s) is a figure of the
benchmark, not an assertion here: on a loaded machine a restarted web process takes longer to
boot (docs/benchmarks.md, "Chaos").
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.chaos_stack import pg_bindir

ROOT = Path(__file__).resolve().parents[2]
CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

pytestmark = [pytest.mark.slow]


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
    # an SMS answered with an error on both URLs is lost at the provider (Twilio does not
    # retry): the app spools what the database cannot take, so none is refused
    assert result["refused_by_us"] == {"sms": 0}, context
    assert result["offers_unseen"] == 0, (
        f"offers never shown on the socket: {result['samples'].get('offers_unseen')}{context}"
    )
    assert result["offers_only_in_http_snapshot"] == 0, (
        f"offers shown only by an HTTP snapshot: {result['snapshot_only_samples']}{context}"
    )
    assert result["crash_restarts"] == {}, f"processes exited by themselves{context}"
    faults = {k: v for k, v in result["per_fault"].items() if "recovery_s" in v}
    assert len(faults) == 9, context
    assert run.returncode == 0, context
    never = [k for k, v in faults.items() if v["recovery_s"] is None]
    assert not never, f"faults that never healed: {never}{context}"
