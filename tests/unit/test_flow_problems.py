"""A flow's validation problems in words (flows.problems): what a supervisor reads in the flow
editor, in French first, naming fields as the editor's form does; never the validator's English
("is too short", "does not match")."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import translation

from flows.problems import as_json, describe
from flows.schema import find_problems, validate_graph

NBSP = "\u00a0"
ENGLISH = ("is too short", "does not match", "is a required property", "no node named", "loop")


def _words(graph: dict[str, Any], **known: Any) -> list[str]:
    with translation.override("fr"):
        return [describe(p) for p in find_problems(graph, **known)]


def _fr(text: str) -> str:
    """Written with ordinary spaces here; the catalogue has non-breaking ones."""
    return text.replace(" :", f"{NBSP}:").replace("« ", f"«{NBSP}").replace(" »", f"{NBSP}»")


def test_an_empty_message_says_which_fields_to_fill_in() -> None:
    graph = {"start": "accueil", "nodes": {"accueil": {"type": "message", "text": "", "next": ""}}}
    words = _words(graph)
    assert _fr("« Texte » ne peut pas être vide.") in words
    assert _fr("Renseignez « Puis aller à ».") in words
    assert not any(e in w for w in words for e in ENGLISH)
    # the technical lines are unchanged (API and logs)
    assert validate_graph(graph)[0].startswith("nodes/accueil/")


def test_references_queues_and_skills_are_named() -> None:
    graph = {
        "start": "choix",
        "nodes": {
            "choix": {
                "type": "menu",
                "prompt": {"text": "Tapez 1 ou 2."},
                "options": [{"key": "1", "next": "file"}, {"key": "1", "next": "nulle-part"}],
            },
            "file": {"type": "queue", "queue": "inconnue"},
        },
    }
    words = _words(graph, known_queues=["etat-civil"])
    assert _fr("« Choix 2 : Aller à » renvoie vers « nulle-part », qui n’existe pas.") in words
    assert "Deux choix utilisent la même touche (1)." in words
    assert _fr("Il n’y a pas de file « inconnue » dans cet organisme.") in words


def test_opening_hours_and_loops_in_words() -> None:
    graph = {
        "start": "horaires",
        "nodes": {
            "horaires": {
                "type": "business_hours",
                "calendar": {"timezone": "Europe/Lune", "weekly": {"mon": [["17:00", "08:30"]]}},
                "open": "a",
                "closed": "b",
            },
            "a": {"type": "message", "text": "Un", "next": "b"},
            "b": {"type": "message", "text": "Deux", "next": "a"},
        },
    }
    problems = find_problems(graph)
    with translation.override("fr"):
        words = [describe(p) for p in problems]
        shown = as_json(problems)
    assert _fr("Fuseau horaire inconnu : « Europe/Lune ».") in words
    assert _fr("Lundi : la plage 17:00–08:30 se termine avant de commencer.") in words
    loop = next(p for p in shown if "boucle" in p["text"])
    assert loop["nodes"] == ["a", "b"]  # shown on each node of the loop
    assert loop["text"].endswith("a → b → a.")


@pytest.mark.parametrize("language", ["fr", "en"])
def test_every_problem_of_a_broken_flow_is_in_the_page_language(language: str) -> None:
    graph = {
        "start": "x",
        "nodes": {
            "x": {"type": "transfer", "number": "0123", "text": ""},
            "y": {"type": "menu", "prompt": {}, "options": [], "retries": 9},
            "z": {"type": "teleport"},
        },
    }
    problems = find_problems(graph)
    assert problems
    with translation.override(language):
        words = [describe(p) for p in problems]
    assert all(w != p.raw for w, p in zip(words, problems, strict=True)), words
    if language == "fr":
        assert not any(e in w for w in words for e in ENGLISH), words
