#!/usr/bin/env python3
"""Fail when the French catalogue has untranslated or fuzzy entries, breaks French typography,
or says something Django will not show.

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

Collisions (only when no path is given: they need the whole lookup order): Django merges every
catalogue of a language into one, so for a msgid (with its context) found in several catalogues
only one translation is ever shown: LOCALE_PATHS first, then the apps in INSTALLED_APPS order
(Django's contrib apps and third-party apps included), then Django's own ``conf/locale``
(``DjangoTranslation._add_installed_apps_translations`` merges the apps in reverse and
``_add_local_translations`` merges LOCALE_PATHS last, the last merged winning). An entry of one
of our catalogues (French and English) whose translation differs from the one Django will show
is a collision: give our meaning a context (``pgettext``) or use the same text. A compiled
``django.mo`` that does not say what its ``django.po`` says (not recompiled) is reported too,
since Django reads the ``.mo``. This part reads INSTALLED_APPS and LOCALE_PATHS from
``contactcentre.settings``.
"""

from __future__ import annotations

import ast
import gettext
import os
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


# A key of gettext's catalogue: "msgid", "context\x04msgid", or (msgid, plural form index).
Key = str | tuple[str, int]


@dataclass
class Catalogue:
    """One catalogue of one language in Django's lookup order: its translations by gettext key,
    and for ours (read from the .po) the line of each entry."""

    name: str
    texts: dict[Key, str]
    lines: dict[Key, int] = field(default_factory=dict)


def _shown(path: Path) -> str:
    """``path`` relative to the project when it is in it (third-party paths stay absolute)."""
    return str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


def _key(entry: Entry, index: int | None) -> Key:
    msgid = entry.fields["msgid"]
    if "msgctxt" in entry.fields:
        msgid = f"{entry.fields['msgctxt']}\x04{msgid}"
    return msgid if index is None else (msgid, index)


def read_po(path: Path) -> Catalogue:
    """Our catalogue as Django will read it once compiled: msgfmt leaves out fuzzy entries and
    empty translations (gettext then falls through to the next catalogue)."""
    catalogue = Catalogue(name=_shown(path), texts={})
    for entry in parse(path):
        if not entry.fields["msgid"] or "fuzzy" in entry.flags:
            continue
        for name, text in entry.fields.items():
            if not name.startswith("msgstr") or not text:
                continue
            index = int(name[7:-1]) if name.startswith("msgstr[") else None
            key = _key(entry, index)
            catalogue.texts[key] = text
            catalogue.lines[key] = entry.line
    return catalogue


def read_mo(localedir: Path, language: str) -> Catalogue:
    """A compiled catalogue found the way Django finds it (``gettext.translation``)."""
    translation = gettext.translation(
        "django", localedir=str(localedir), languages=[language], fallback=True
    )
    texts: dict[Key, str] = dict(getattr(translation, "_catalog", {}))
    texts.pop("", None)  # the header
    return Catalogue(name=_shown(localedir), texts=texts)


def lookup_order() -> list[Path]:
    """The locale directories of the 'django' domain in the order Django looks a msgid up
    (the first that has it wins).

    Reads INSTALLED_APPS and LOCALE_PATHS from the settings and finds each app's directory as
    ``apps.populate`` does (``AppConfig.create``), without running the apps' ``ready()``.
    """
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "contactcentre.settings")
    import django
    from django.apps.config import AppConfig
    from django.conf import settings

    dirs = [Path(p) for p in settings.LOCALE_PATHS]
    dirs += [Path(AppConfig.create(entry).path) / "locale" for entry in settings.INSTALLED_APPS]
    dirs.append(Path(django.__file__).parent / "conf" / "locale")
    return [d.resolve() for d in dirs if d.is_dir()]


def _ours(localedir: Path) -> bool:
    relative = localedir.relative_to(ROOT) if localedir.is_relative_to(ROOT) else None
    return relative is not None and not any(part.startswith(".") for part in relative.parts)


def catalogues_in_order(language: str, localedirs: list[Path]) -> list[Catalogue]:
    """Each directory's catalogue of ``language``: ours from the .po, the others' from the .mo."""
    found = []
    for localedir in localedirs:
        po = localedir / language / "LC_MESSAGES" / "django.po"
        found.append(
            read_po(po) if _ours(localedir) and po.is_file() else read_mo(localedir, language)
        )
    return [c for c in found if c.texts]


def _label(key: Key) -> str:
    msgid = key[0] if isinstance(key, tuple) else key
    context, _, msgid = msgid.rpartition("\x04")
    label = repr(msgid) + (f" [context {context!r}]" if context else "")
    return label + (f" [plural form {key[1]}]" if isinstance(key, tuple) else "")


def collisions(catalogues: list[Catalogue]) -> list[str]:
    """The entries of our catalogues (those read with their lines) whose translation is not
    the one Django shows: another catalogue earlier in ``catalogues`` has the same key."""
    found = []
    for position, catalogue in enumerate(catalogues):
        for key, line in catalogue.lines.items():
            winner = next(c for c in catalogues[: position + 1] if key in c.texts)
            if winner.texts[key] != catalogue.texts[key]:
                found.append(
                    f"{catalogue.name}:{line}: collision: {_label(key)} reads "
                    f"{catalogue.texts[key]!r} here but Django shows {winner.texts[key]!r} "
                    f"from {winner.name}, which comes first: give ours a context (pgettext) "
                    "or the same text"
                )
    return found


def stale_mo(po: Path) -> str | None:
    """Why ``po``'s compiled django.mo does not say what it says (None: it does)."""
    mo = po.with_suffix(".mo")
    if not mo.is_file():
        return f"{_shown(mo)}: missing (run msgfmt -o django.mo django.po)"
    with mo.open("rb") as handle:
        compiled = dict(gettext.GNUTranslations(handle)._catalog)  # type: ignore[attr-defined]
    compiled.pop("", None)
    if compiled != read_po(po).texts:
        return f"{_shown(mo)}: not compiled from its django.po (run msgfmt -o django.mo django.po)"
    return None


def lookup_problems() -> list[str]:
    """Collisions in French and English, and our stale compiled catalogues."""
    localedirs = lookup_order()
    found = []
    for language in ("fr", "en"):
        found.extend(collisions(catalogues_in_order(language, localedirs)))
        for localedir in localedirs:
            po = localedir / language / "LC_MESSAGES" / "django.po"
            if _ours(localedir) and po.is_file():
                stale = stale_mo(po)
                if stale:
                    found.append(stale)
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
    if not argv:  # the whole project: what Django shows
        found.extend(lookup_problems())
    if found:
        print("\n".join(found))
        print(f"{len(found)} translation problem(s).", file=sys.stderr)
        return 1
    print(
        "French catalogue complete: no empty or fuzzy entries, typography right, "
        "no collision between catalogues."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
