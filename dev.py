#!/usr/bin/env python3
"""The project's commands, needing nothing but Python 3.11:

    python3 dev.py run    # the whole app with demo data on the embedded default
                          # (options go to `manage.py serve`: --port, --host, --no-demo,
                          # --smtp to receive e-mail over SMTP on 127.0.0.1:2525 too)
    python3 dev.py test   # the test suite (extra arguments go to pytest)
    python3 dev.py test --fast   # the developer loop: no slow and no browser tests
    python3 dev.py lock   # regenerate requirements/*.lock from pyproject.toml (extra
                          # arguments go to `uv pip compile`: --upgrade-package NAME, --upgrade)

``run`` and ``test`` create ``.venv`` and install into it the pinned dependencies of
requirements/dev.lock, then the project itself, on first use (and again when the lock or
pyproject.toml changes). ``test`` uses the PostgreSQL and Redis on 127.0.0.1 when they answer,
and always under ``CI=true``, where a missing service is a failure, not a skip. It runs the
tests in two pytest-xdist workers where the machine has two cores or more (``TEST_WORKERS=1``,
or ``-n``/``-p no:xdist``/``--pdb`` among the arguments, runs them in one process).
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import tomllib
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PYTHON = VENV / "bin" / "python"
STAMP = VENV / ".installed"
# The pinned dependencies, with their hashes, for Python 3.11 on Linux: runtime.lock for the
# Docker image, dev.lock (runtime + the dev extra) for .venv. Written by `dev.py lock` only.
RUNTIME_LOCK = ROOT / "requirements" / "runtime.lock"
DEV_LOCK = ROOT / "requirements" / "dev.lock"
LOCK_OPTIONS = [
    "--python-version", "3.11", "--python-platform", "linux", "--generate-hashes",
    "--custom-compile-command", "python3 dev.py lock", "--quiet",
]  # fmt: skip

CI_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/contactcentre"
CI_REDIS_URL = "redis://127.0.0.1:6379/0"
# At most two workers: a worker takes eight of Redis' sixteen databases (its own and the seven
# after it, tests/support.py), contactcentre/settings_test.py.
MAX_WORKERS = 2


def _is_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _create_venv() -> None:
    if not PYTHON.exists():
        print("Creating .venv ...", flush=True)
        venv.create(VENV, with_pip=True)


def ensure_venv() -> None:
    """The dev lock's exact versions (their hashes checked), then the project, editable and
    without dependencies: the lock has them all (tests/unit/test_lockfile.py)."""
    _create_venv()
    digest = hashlib.sha256()
    for path in (ROOT / "pyproject.toml", DEV_LOCK):
        digest.update(path.read_bytes())
    wanted = digest.hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    print("Installing requirements/dev.lock and the project into .venv ...", flush=True)
    pip = [str(PYTHON), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "--require-hashes", "-r", str(DEV_LOCK)], check=True)
    subprocess.run([*pip, "--no-deps", "-e", str(ROOT)], check=True)
    STAMP.write_text(wanted)


def lock(args: list[str]) -> int:
    """Write both locks with uv (a dev dependency; installed from pyproject's range when .venv
    has none yet), then install the new dev lock. A version already pinned stays while
    pyproject.toml allows it, unless ``--upgrade`` or ``--upgrade-package NAME`` is given."""
    _create_venv()
    uv = VENV / "bin" / "uv"
    if not uv.exists():
        with (ROOT / "pyproject.toml").open("rb") as file:
            dev = tomllib.load(file)["project"]["optional-dependencies"]["dev"]
        wanted = next(r for r in dev if re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0] == "uv")
        subprocess.run([str(PYTHON), "-m", "pip", "install", "--quiet", wanted], check=True)
    for output, extras in ((RUNTIME_LOCK, []), (DEV_LOCK, ["--extra", "dev"])):
        compile_ = [str(uv), "pip", "compile", "pyproject.toml", *extras, *LOCK_OPTIONS]
        subprocess.run([*compile_, "-o", str(output.relative_to(ROOT)), *args], check=True)
        print(f"Wrote {output.relative_to(ROOT)}", flush=True)
    ensure_venv()
    return 0


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def test_environment(embedded: bool) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "contactcentre.settings_test")
    if embedded:
        env.pop("DATABASE_URL", None)
        env.pop("REDIS_URL", None)
        print("Tests on the embedded default: SQLite, in-memory channel layer.", flush=True)
        return env
    if _is_ci():
        env.setdefault("DATABASE_URL", CI_DATABASE_URL)
        env.setdefault("REDIS_URL", CI_REDIS_URL)
    else:
        if "DATABASE_URL" not in env and _answers("127.0.0.1", 5432):
            env["DATABASE_URL"] = CI_DATABASE_URL
        if "REDIS_URL" not in env and _answers("127.0.0.1", 6379):
            env["REDIS_URL"] = CI_REDIS_URL
    print(
        "Tests on: database {}, Redis {}{}".format(
            env.get("DATABASE_URL", "SQLite (embedded)"),
            env.get("REDIS_URL", "none (in-memory channel layer)"),
            " [CI: missing services fail]" if _is_ci() else "",
        ),
        flush=True,
    )
    return env


def parallel_arguments(args: list[str]) -> list[str]:
    """pytest-xdist's arguments for this run: ``-n 2`` (fewer on a one-core machine, or as
    ``TEST_WORKERS`` says), nothing when the arguments choose already or need one process.
    ``worksteal``: a worker that is done takes tests queued for the other, so one long test
    near the end does not leave a core idle."""
    for arg in args:
        if arg in {"-n", "--numprocesses", "--pdb", "--trace", "no:xdist", "-pno:xdist"}:
            return []
        if arg.startswith(("--numprocesses=", "-n")) and arg != "-n":
            return []
    wanted = os.environ.get("TEST_WORKERS", "")
    workers = int(wanted) if wanted.isdigit() else min(MAX_WORKERS, os.cpu_count() or 1)
    workers = min(workers, MAX_WORKERS)
    if workers < 2:
        return []
    return ["-n", str(workers), "--dist", "worksteal"]


def run_environment() -> dict[str, str]:
    """``dev.py run``: debug, plain HTTP, and the chat demo page (off by default elsewhere)."""
    env = dict(os.environ)
    env.setdefault("DJANGO_DEBUG", "true")
    env.setdefault("DJANGO_SECURE", "false")
    env.setdefault("CHAT_DEMO_PAGE", "true")
    return env


def run_server(args: list[str], env: dict[str, str]) -> int:
    """Run ``serve`` and let it stop cleanly: Ctrl-C reaches it too (same terminal), and it
    then stops its SMTP server, outbox poller and scheduler before exiting. (``subprocess.call``
    killed it 0.25 s after a Ctrl-C.) SIGTERM to this process is passed on to it."""
    server = subprocess.Popen(args, env=env)
    signal.signal(signal.SIGTERM, lambda *_: server.terminate())
    interrupted_at: float | None = None
    while True:
        try:
            return server.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            waited = 0.0 if interrupted_at is None else time.monotonic() - interrupted_at
            if waited > 30:
                server.kill()  # still there 30 s after Ctrl-C
            elif waited > 3:
                server.terminate()  # the Ctrl-C was ours alone (kill -INT): stop it cleanly
        except KeyboardInterrupt:
            if interrupted_at is None:
                interrupted_at = time.monotonic()
            else:  # a second Ctrl-C: stop waiting
                server.kill()


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"run", "test", "lock"}:
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    os.chdir(ROOT)
    if command == "lock":
        return lock(rest)
    ensure_venv()
    if command == "run":
        args = [str(PYTHON), "manage.py", "serve", *rest]
        return run_server(args, run_environment())
    embedded = "--embedded" in rest
    fast = "--fast" in rest
    rest = [a for a in rest if a not in ("--embedded", "--fast")]
    if fast:  # deselected, so a slow test still runs when asked for by name with -m
        rest = ["-m", "not slow and not browser", *rest]
    env = test_environment(embedded)
    rest = [*parallel_arguments(rest), *rest]
    return subprocess.call([str(PYTHON), "-m", "pytest", *rest], env=env)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        sys.exit(130)
