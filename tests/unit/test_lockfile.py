"""requirements/*.lock agree with pyproject.toml: the Docker image installs runtime.lock and
.venv dev.lock (dev.py), so a dependency added or re-ranged in pyproject.toml without
`python3 dev.py lock` would be missing, or at a version pyproject rules out, where it runs.
Every range in pyproject.toml has an upper bound: a new major release arrives through the lock
only, on purpose. Read from the files alone, no network."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.support import ROOT

RUNTIME_LOCK = ROOT / "requirements" / "runtime.lock"
DEV_LOCK = ROOT / "requirements" / "dev.lock"
UPPER = {"<", "<=", "==", "===", "~="}
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")


def _project() -> dict[str, list[Requirement]]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        project = tomllib.load(file)["project"]
    runtime = [Requirement(r) for r in project["dependencies"]]
    dev = [Requirement(r) for r in project["optional-dependencies"]["dev"]]
    return {"runtime": runtime, "dev": runtime + dev}


def pins(text: str) -> dict[str, tuple[Version, int]]:
    """A lock's pins: canonical name -> (version, how many hashes follow it)."""
    found: dict[str, tuple[Version, int]] = {}
    name = ""
    for line in text.splitlines():
        pin = PIN.match(line)
        if pin:
            name = canonicalize_name(pin.group(1))
            found[name] = (Version(pin.group(2)), 0)
        elif name and line.strip().startswith("--hash=sha256:"):
            version, hashes = found[name]
            found[name] = (version, hashes + 1)
    return found


def disagreements(
    requirements: list[Requirement], locked: dict[str, tuple[Version, int]]
) -> list[str]:
    problems = []
    for requirement in requirements:
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        name = canonicalize_name(requirement.name)
        if name not in locked:
            problems.append(f"{requirement}: not in the lock")
            continue
        version, hashes = locked[name]
        if not requirement.specifier.contains(version, prereleases=True):
            problems.append(f"{requirement}: the lock pins {version}")
        if not hashes:
            problems.append(f"{requirement}: the lock has no hash for it")
    return problems


def test_the_check_finds_a_missing_or_out_of_range_pin() -> None:
    locked = pins(
        "django==5.2.19 \\\n    --hash=sha256:00\n    # via contactcentre\n"
        "Twisted==26.10.0 \\\n    --hash=sha256:11\n"
        "redis==9.0.0 \\\n    --hash=sha256:22\n"
        "tqdm==4.70.1\n"
    )
    assert locked["twisted"] == (Version("26.10.0"), 1)
    wanted = ["Django>=5.2,<5.3", "twisted>=24", "redis>=5,<9", "qrcode>=8,<9", "tqdm>=4,<5"]
    assert disagreements([Requirement(r) for r in wanted], locked) == [
        "redis<9,>=5: the lock pins 9.0.0",
        "qrcode<9,>=8: not in the lock",
        "tqdm<5,>=4: the lock has no hash for it",
    ]


@pytest.mark.parametrize(("which", "lock"), [("runtime", RUNTIME_LOCK), ("dev", DEV_LOCK)])
def test_the_lock_pins_every_dependency_inside_its_range(which: str, lock: Path) -> None:
    problems = disagreements(_project()[which], pins(lock.read_text()))
    assert not problems, f"{lock.name} is stale, run `python3 dev.py lock`: {problems}"


def test_every_dependency_has_an_upper_bound() -> None:
    unbounded = [str(r) for r in _project()["dev"] if not {s.operator for s in r.specifier} & UPPER]
    assert not unbounded


def test_the_image_gets_the_versions_the_tests_ran_with() -> None:
    """Every package of runtime.lock is in dev.lock at the same version."""
    runtime, dev = pins(RUNTIME_LOCK.read_text()), pins(DEV_LOCK.read_text())
    versions = {name: version for name, (version, _) in dev.items()}
    differ = [f"{n}=={v}" for n, (v, _) in runtime.items() if versions.get(n) != v]
    assert not differ, f"not so in dev.lock: {differ}"
