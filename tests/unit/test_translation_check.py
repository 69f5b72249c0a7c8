"""scripts/check_translations.py: untranslated, fuzzy and French typography (a non-breaking
space before « : ; ? ! » and inside « »), its --fix, and collisions between catalogues (a msgid
Django shows from another catalogue than ours)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from django.utils import translation
from django.utils.translation import gettext, pgettext

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


def test_an_untranslated_or_fuzzy_french_entry_fails_the_check(tmp_path: Path) -> None:
    check = _checker()
    path = tmp_path / "django.po"
    path.write_text(
        HEADER
        + 'msgid "Queue"\nmsgstr ""\n\n'
        + '#, fuzzy\nmsgid "Team"\nmsgstr "Équipe"\n\n'
        + 'msgid "%(n)s call"\nmsgid_plural "%(n)s calls"\n'
        + 'msgstr[0] "%(n)s appel"\nmsgstr[1] ""\n\n'
        + 'msgid "Agent"\nmsgstr "Agent"\n',
        encoding="utf-8",
    )
    found = check.problems(path)
    assert [line.split(": ", 2)[1:] for line in found] == [
        ["untranslated", "'Queue'"],
        ["fuzzy", "'Team'"],
        ["untranslated", "'%(n)s call'"],
    ]
    assert check.main([str(path)]) == 1


def _locale(root: Path, entries: str, *, compiled: bool) -> Path:
    """A locale directory with a French catalogue (and its .mo when ``compiled``)."""
    folder = root / "fr" / "LC_MESSAGES"
    folder.mkdir(parents=True)
    po = folder / "django.po"
    po.write_text(HEADER + entries, encoding="utf-8")
    if compiled:
        subprocess.run(["msgfmt", "-o", str(folder / "django.mo"), str(po)], check=True)
    return root


def test_a_msgid_translated_differently_in_an_earlier_catalogue_fails_the_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A catalogue planted before ours in the lookup order (as django.contrib.admin's is before
    our apps') translates "Remove" its own way: ours never shows, the check says so; the same
    text, or ours under a context, passes."""
    check = _checker()
    theirs = _locale(tmp_path / "theirs", 'msgid "Remove"\nmsgstr "Enlever"\n\n', compiled=True)
    ours = _locale(
        tmp_path / "ours",
        'msgid "Remove"\nmsgstr "Retirer"\n\nmsgctxt "flow editor"\nmsgid "Add"\n'
        'msgstr "Ajouter"\n',
        compiled=True,
    )
    monkeypatch.setattr(check, "lookup_order", lambda: [theirs, ours])
    monkeypatch.setattr(check, "_ours", lambda localedir: localedir == ours)

    found = check.lookup_problems()
    assert len(found) == 1
    assert "collision: 'Remove' reads 'Retirer' here but Django shows 'Enlever'" in found[0]
    assert found[0].startswith(f"{ours}/fr/LC_MESSAGES/django.po:")
    assert check.main([]) == 1  # the CI command (no path: the whole lookup order)

    # Their catalogue after ours: ours wins, nothing to say.
    monkeypatch.setattr(check, "lookup_order", lambda: [ours, theirs])
    assert check.lookup_problems() == []

    # Ours under a context of its own: a distinct key, no collision.
    _locale(
        tmp_path / "ctx",
        'msgctxt "flow editor"\nmsgid "Remove"\nmsgstr "Retirer"\n\n',
        compiled=True,
    )
    ctx = tmp_path / "ctx"
    monkeypatch.setattr(check, "lookup_order", lambda: [theirs, ctx])
    monkeypatch.setattr(check, "_ours", lambda localedir: localedir == ctx)
    assert check.lookup_problems() == []


def test_a_catalogue_not_recompiled_after_an_edit_fails_the_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Django reads the .mo: a .po edited without msgfmt is not what the pages show."""
    check = _checker()
    ours = _locale(tmp_path / "ours", 'msgid "Remove"\nmsgstr "Retirer"\n\n', compiled=True)
    po = ours / "fr" / "LC_MESSAGES" / "django.po"
    po.write_text(HEADER + 'msgid "Remove"\nmsgstr "Supprimer"\n', encoding="utf-8")
    monkeypatch.setattr(check, "lookup_order", lambda: [ours])
    monkeypatch.setattr(check, "_ours", lambda localedir: localedir == ours)
    found = check.lookup_problems()
    assert len(found) == 1
    assert "not compiled from its django.po" in found[0]


def test_the_lookup_order_is_djangos() -> None:
    """LOCALE_PATHS first, then INSTALLED_APPS in order (Django's admin before our apps), then
    Django's own catalogue; and what the check computes from it is what Django shows: every
    entry of our French and English catalogues reads, through Django's gettext, as written."""
    check = _checker()
    order = check.lookup_order()
    assert order[0] == ROOT / "locale"
    names = [d.as_posix() for d in order]
    admin = next(i for i, n in enumerate(names) if n.endswith("django/contrib/admin/locale"))
    flows, console = names.index(f"{ROOT}/flows/locale"), names.index(f"{ROOT}/console/locale")
    assert admin < flows < console
    assert order[-1].parts[-3:] == ("django", "conf", "locale")

    checked = 0
    for language in ("fr", "en"):
        for catalogue in check.catalogues_in_order(language, order):
            for key in catalogue.lines:
                msgid = key[0] if isinstance(key, tuple) else key
                context, _, msgid = msgid.rpartition("\x04")
                with translation.override(language):
                    if isinstance(key, tuple):
                        continue  # plural forms: the index is the catalogue's own rule
                    shown = pgettext(context, msgid) if context else gettext(msgid)
                assert shown == catalogue.texts[key], (catalogue.name, key)
                checked += 1
    assert checked > 1000


def test_the_flow_editor_and_the_console_say_retirer_not_the_admins_enlever() -> None:
    """The collisions this check found, as supervisors and agents read them in French."""
    from supervision.flow_views import editor_labels

    with translation.override("fr"):
        labels = editor_labels()
        assert labels["remove"] == "Retirer"  # django.contrib.admin says "Enlever"
        assert labels["types_short"]["voicemail"] == "messagerie"  # not "message vocal"
        assert labels["types_short"]["queue"] == "file"
        assert labels["types"]["voicemail"] == "Messagerie vocale"
        assert labels["fields"]["key"] == "Touche"  # a telephone key, not DRF's "Clef"
        assert labels["survey_thanks"] == "Merci pour votre réponse."
        assert gettext("Remove") == "Retirer"  # the console's citizen panel
        assert gettext("Key") == "Clé"  # the second-factor enrolment page
