"""The import contracts (.importlinter): kept by the code as it is, and a break is caught (the
same `lint-imports` CI runs, on a copy of a pure module given a Django import)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(not LINT.exists(), reason="import-linter is not installed")


def _lint(cwd: Path, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT), "--config", str(config), "--no-cache"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_projects_contracts_are_kept() -> None:
    run = _lint(ROOT, ROOT / ".importlinter")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "0 broken" in run.stdout


def test_a_django_import_in_a_pure_module_breaks_the_contract(tmp_path: Path) -> None:
    package = tmp_path / "routing"
    package.mkdir()
    (package / "__init__.py").write_text("")
    policy = (ROOT / "routing" / "policy.py").read_text()
    (package / "policy.py").write_text("from django.utils import timezone\n" + policy)
    for name in ("matching.py", "erlang.py"):
        shutil.copy(ROOT / "routing" / name, package / name)
    names = tmp_path / "interactions"  # the channel names the policy imports
    names.mkdir()
    (names / "__init__.py").write_text("")
    shutil.copy(ROOT / "interactions" / "channels.py", names / "channels.py")
    config = tmp_path / ".importlinter"
    contract = (ROOT / ".importlinter").read_text().split("[importlinter:contract:pure-flows]")[0]
    config.write_text(
        contract.split("root_packages =")[0]
        + "root_packages =\n    routing\n    interactions\ninclude_external_packages = True\n"
        + "[importlinter:contract:pure-routing]"
        + contract.split("[importlinter:contract:pure-routing]")[1]
    )
    run = _lint(tmp_path, config)
    assert run.returncode != 0, run.stdout
    assert "BROKEN" in run.stdout
    assert "routing.policy -> django" in run.stdout
