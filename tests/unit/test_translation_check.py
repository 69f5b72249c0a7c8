"""scripts/check_translations.py: untranslated, fuzzy and French typography (a non-breaking
space before « : ; ? ! » and inside « »), and its --fix."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _checker() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "check_translations", ROOT / "scripts" / "check_translations.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["check_translations"] = module
    spec.loader.exec_module(module)
    return module


HEADER = 'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n\n'


def _catalogue(tmp_path: Path, entries: dict[str, str]) -> Path:
    path = tmp_path / "django.po"
    body = "".join(f'msgid "{k}"\nmsgstr "{v}"\n\n' for k, v in entries.items())
    path.write_text(HEADER + body, encoding="utf-8")
    return path


def test_ordinary_or_missing_spaces_before_french_punctuation_are_refused(
    tmp_path: Path,
) -> None:
    check = _checker()
    path = _catalogue(
        tmp_path,
        {
            "Time: %(t)s": "Heure : %(t)s",  # ordinary space
            "Queue:": "File:",  # no space
            "Really?": "Vraiment ?",
            "Quote": "« attente »",
            "Fine: 10:30": "Bien\u00a0: 10:30",  # non-breaking space; a time is not punctuation
            "Link": "https://example.fr/suivi?ref=1",
            "Narrow!": "Merci\u202f!",
        },
    )
    found = check.problems(path)
    flagged = sorted(line.split("'")[1] for line in found)
    assert flagged == ["Queue:", "Quote", "Really?", "Time: %(t)s"]
    assert all("typography" in line for line in found)
    assert check.main([str(path)]) == 1


def test_fix_puts_non_breaking_spaces_and_leaves_a_missing_space_to_a_human(
    tmp_path: Path,
) -> None:
    check = _checker()
    path = _catalogue(
        tmp_path,
        {"Time: %(t)s": "Heure : %(t)s", "Quote": "« attente »", "Queue:": "File:"},
    )
    assert check.main(["--fix", str(path)]) == 1  # "File:" still needs a human
    text = path.read_text(encoding="utf-8")
    assert 'msgstr "Heure\u00a0: %(t)s"' in text
    assert 'msgstr "«\u00a0attente\u00a0»"' in text
    assert 'msgid "Time: %(t)s"' in text  # the English source is untouched
    found = check.problems(path)
    assert len(found) == 1
    assert "File:" in found[0]
