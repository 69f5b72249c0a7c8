"""No English in the French pages (issue 15): the console, the agent's own pages, the
supervision pages, the flow editor, the login page and the error pages, rendered in French,
must not show the English text of any message our catalogues translate.

The English texts are the msgids of our French catalogues whose translation differs; a page
"shows" a text when it is in a text node or in an attribute a person reads or hears (aria-label,
title, placeholder, alt, value), or in a string of an inline script (the console's messages).
A msgid of one word must be a whole text or attribute; a longer one may be part of a text;
one with placeholders is looked for by its literal parts of two words or more. So a string that
escaped ``{% translate %}`` in a template is not caught, but one that is marked and left
untranslated, or marked in the wrong catalogue (the first app in INSTALLED_APPS wins), is.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils.translation import trans_real

from flows.models import Flow
from tests.integration.console.test_delivery_icons import answers_in_every_state
from tests.integration.supervision.test_views import PAGES as SUPERVISION_PAGES
from tests.integration.test_admin_scope import verified
from tests.integration.test_api_scope import Body, caf

__all__ = ["caf"]

pytestmark = pytest.mark.django_db

READ_ATTRIBUTES = ("aria-label", "title", "placeholder", "alt", "value", "aria-description")
PLACEHOLDER = re.compile(r"%\([^)]*\)[sd]|%[sd]|\{[^}]*\}")


class _Shown(HTMLParser):
    """The texts of a page a person sees or hears (not those marked in another language, as
    *English* in the language menu), and its inline scripts' strings."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.texts: list[str] = []
        self.scripts: list[str] = []
        self._in: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag in ("script", "style") or found.get("lang") not in (None, "fr"):
            self._in.append(tag)
            return
        for name, value in attrs:
            if name in READ_ATTRIBUTES and value and not (name == "value" and tag == "option"):
                self.texts.append(" ".join(value.split()))

    def handle_endtag(self, tag: str) -> None:
        if self._in and self._in[-1] == tag:
            self._in.pop()

    def handle_data(self, data: str) -> None:
        if not self._in:
            text = " ".join(data.split())
            if text:
                self.texts.append(text)
        elif self._in[-1] == "script":
            self.scripts.extend(re.findall(r'"((?:[^"\\]|\\.)*)"', data))


def _english_texts() -> tuple[set[str], set[str]]:
    """(single words, longer texts) Django translates into other French: every catalogue merged
    as Django reads it (ours, the third-party apps' and Django's own)."""
    words: set[str] = set()
    longer: set[str] = set()
    catalog = dict(trans_real.translation("fr")._catalog.items())  # type: ignore[attr-defined]
    french_texts = {" ".join(str(v).split()) for v in catalog.values()}
    for key, french in catalog.items():
        msgid = key[0] if isinstance(key, tuple) else key
        msgid = msgid.split("\x04")[-1]  # without its context
        if not msgid or not french or french == msgid:
            continue
        for part in PLACEHOLDER.split(msgid):
            part = " ".join(part.split()).strip(" .,:;-–")
            if not re.search(r"[A-Za-z]{2}", part):
                continue
            if part in french_texts:  # also French ("File", "Date", "Conversation")
                continue
            if part == " ".join(msgid.split()):
                (longer if " " in part else words).add(part)
            elif part.count(" ") >= 1 and len(part) >= 10:
                longer.add(part)
    return words, longer


WORDS, LONGER = _english_texts()


def _english_on(html: str) -> set[str]:
    """The English texts ``html`` shows: a word as a whole text, a longer one within a text or
    a string of an inline script (a script's single words are its codes and keys)."""
    shown = _Shown()
    shown.feed(html)
    scripts = [s.encode().decode("unicode_escape", "ignore") for s in shown.scripts]
    whole = set(shown.texts) | {t.rstrip(" .:…") for t in shown.texts}
    found = {w for w in WORDS if w in whole}
    joined = "\n".join(shown.texts + scripts)
    found |= {text for text in LONGER if text in joined}
    return found


def _client(user: User) -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE="fr")
    verified(client, user)
    client.cookies["django_language"] = "fr"
    return client


def _pages(client: Client, paths: list[str]) -> dict[str, set[str]]:
    found = {}
    for path in paths:
        response = client.get(path)
        assert response.status_code in (200, 404), (path, response.status_code)
        assert response["Content-Language"] == "fr", path
        english = _english_on(response.content.decode())
        if english:
            found[path] = english
    return found


def test_the_catalogues_give_the_check_something_to_find() -> None:
    # A check over an empty list would always pass.
    assert {"Sent", "Delivered"} <= WORDS
    assert "Change an agent's state, or log them out" in " ".join(LONGER)


def test_the_check_finds_an_untranslated_text() -> None:
    assert _english_on("<p>Bonjour</p><button>Delivered</button>") == {"Delivered"}
    assert _english_on('<span aria-label="Sent"></span>') == {"Sent"}
    assert _english_on("<p>Déjà envoyé</p><p>Livré</p>") == set()


def test_the_agents_pages_in_french_show_no_english(caf: Body) -> None:
    answers_in_every_state(caf)  # the colleague's SMS conversation: every delivery line
    client = _client(caf.colleague)
    found = _pages(
        client,
        [
            "/console/",
            f"/console/interactions/{caf.interaction.pk}/",
            f"/console/interactions/{caf.interaction.pk}/thread/",
            f"/console/citizens/{caf.citizen.pk}/",
            "/console/activity/",
            "/console/activity/?q=bonjour&start=2026-01-01&end=pas-une-date",
            f"/console/activity/conversations/{caf.interaction.pk}/",
            "/console/settings/",
            "/console/nowhere/",
        ],
    )
    assert found == {}


def test_the_supervision_pages_in_french_show_no_english(caf: Body) -> None:
    flow = Flow.objects.create(name="SVI caf", organisation=caf.org)
    client = _client(caf.supervisor)
    found = _pages(
        client,
        [
            *SUPERVISION_PAGES,
            f"/supervision/queues/{caf.queue.pk}/",
            f"/supervision/flows/{flow.pk}/",
        ],
    )
    assert found == {}


def test_the_login_page_in_french_shows_no_english() -> None:
    client = Client(HTTP_ACCEPT_LANGUAGE="fr")
    found = _pages(client, ["/accounts/login/", "/accounts/login/?idle=1", "/nowhere/"])
    assert found == {}
