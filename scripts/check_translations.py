#!/usr/bin/env python3
"""Fail when the French catalogue has untranslated or fuzzy entries, or breaks French typography.

    python scripts/check_translations.py [--fix] [path/to/django.po ...]

Defaults to every French catalogue of the project (locale/ and each app's locale/). Exits 1
and lists the offending entries (file, line, msgid) when a msgstr is empty (any plural form
included) or an entry is flagged fuzzy; a fuzzy header counts too, since msgfmt then ignores
the charset and plural forms. Obsolete entries
(``#~``) are ignored. Standard library only: a minimal reader of the PO format as written by
xgettext/msgmerge (``makemessages``).

French typography: a translation must put a non-breaking space (U+00A0, or the narrow U+202F)
before « : ; ? ! » and inside « », never an ordinary space or none at all ("Heure : 10 h",
not "Heure: 10 h" nor "Heure : 10 h" with a breakable space that can leave the colon alone at
the start of a line). ``--fix`` replaces the ordinary spaces by U+00A0 in the French
msgstr lines (then run ``manage.py compilemessages``); a missing space is left to a human.
"""

from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ROOT / "locale" / "fr" / "LC_MESSAGES" / "django.po"


def all_french_catalogues() -> list[Path]:
    """The project's catalogue and every app's own (``<app>/locale/fr/...``), not .venv's."""
    found = [
        p
        for p in ROOT.glob("**/locale/fr/LC_MESSAGES/django.po")
        if not any(part.startswith(".") for part in p.relative_to(ROOT).parts)
    ]
    return sorted(found) or [DEFAULT]


@dataclass
class Entry:
    line: int
    flags: set[str] = field(default_factory=set)
    fields: dict[str, str] = field(default_factory=dict)  # msgctxt, msgid, msgstr, msgstr[0]...


def _unquote(text: str, path: Path, lineno: int) -> str:
    text = text.strip()
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        raise SystemExit(f"{path}:{lineno}: cannot parse {text!r}")
    # PO strings use C escapes (\" \\ \n \t), which a Python string literal reads the same way.
    return str(ast.literal_eval(text))


def parse(path: Path) -> list[Entry]:
    entries: list[Entry] = []
    current: Entry | None = None
    key: str | None = None
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line:
            current, key = None, None
            continue
        if line.startswith("#~"):  # obsolete entry
            continue
        if current is None:
            current = Entry(line=lineno)
            entries.append(current)
        if line.startswith("#,"):
            current.flags.update(flag.strip() for flag in line[2:].split(","))
        elif line.startswith("#"):
            continue
        elif line.startswith('"'):
            if key is None:
                raise SystemExit(f"{path}:{lineno}: continuation line outside an entry")
            current.fields[key] += _unquote(line, path, lineno)
        else:
            key, _, value = line.partition(" ")
            current.fields[key] = _unquote(value, path, lineno)
    return [e for e in entries if "msgid" in e.fields]


# An ordinary space (or tab) before « : ; ? ! » or after «; and a word glued to « : ; ? ! »
# where it ends a phrase (so not "10:30", "https://", "?page=2").
BREAKABLE_SPACE = re.compile(r"[ \t][:;?!»]|«[ \t]")
NO_SPACE = re.compile(r"[\w)\]»%][:;?!](?=\s|$)")


def typography(text: str) -> str | None:
    """What breaks French typography in ``text`` (None: nothing)."""
    if BREAKABLE_SPACE.search(text):
        return "ordinary space before « : ; ? ! » or inside « » (use a non-breaking space)"
    if NO_SPACE.search(text):
        return "no space before « : ; ? ! » (put a non-breaking space)"
    return None


def fix_file(path: Path) -> int:
    """Replace the ordinary spaces before « : ; ? ! » and inside « » by U+00A0 in the msgstr
    strings of ``path``; returns how many lines changed."""
    changed = 0
    out: list[str] = []
    in_msgstr = False
    for raw in path.read_text(encoding="utf-8").splitlines(keepends=True):
        line = raw.strip()
        if line.startswith("msgstr"):
            in_msgstr = True
        elif not line.startswith('"'):
            in_msgstr = False
        if in_msgstr and '"' in raw:
            fixed = re.sub(r"[ \t]([:;?!»])", "\u00a0\\1", raw)
            fixed = re.sub(r"«[ \t]", "«\u00a0", fixed)
            if fixed != raw:
                changed += 1
                raw = fixed
        out.append(raw)
    if changed:
        path.write_text("".join(out), encoding="utf-8")
    return changed


def problems(path: Path) -> list[str]:
    found = []
    for entry in parse(path):
        msgid = entry.fields["msgid"]
        label = repr(msgid) if msgid else "(header)"
        if "msgctxt" in entry.fields:
            label = f"{label} [context {entry.fields['msgctxt']!r}]"
        if "fuzzy" in entry.flags:
            found.append(f"{path}:{entry.line}: fuzzy: {label}")
        if not msgid:
            continue
        translations = [v for k, v in entry.fields.items() if k.startswith("msgstr")]
        if not translations or any(not t.strip() for t in translations):
            found.append(f"{path}:{entry.line}: untranslated: {label}")
            continue
        for text in translations:
            broken = typography(text)
            if broken:
                found.append(f"{path}:{entry.line}: typography: {label}: {broken}: {text!r}")
                break
    return found


def main(argv: list[str]) -> int:
    fix = "--fix" in argv
    argv = [a for a in argv if a != "--fix"]
    paths = [Path(a) for a in argv] or all_french_catalogues()
    if fix:
        for path in paths:
            changed = fix_file(path)
            if changed:
                print(f"{path}: {changed} line(s) fixed")
    found: list[str] = []
    for path in paths:
        if not path.is_file():
            print(f"{path}: not found", file=sys.stderr)
            return 1
        found.extend(problems(path))
    if found:
        print("\n".join(found))
        print(f"{len(found)} translation problem(s).", file=sys.stderr)
        return 1
    print("French catalogue complete: no empty or fuzzy entries, typography right.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
