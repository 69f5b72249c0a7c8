"""The flow engine and its validation (pure: no database, no telephony)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from flows import engine
from flows.schema import validate_graph

OPEN_ALWAYS = {
    "weekly": {d: [["00:00", "24:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
}
MONDAY_10H = engine.Context(now=datetime(2026, 3, 30, 8, 0, tzinfo=UTC))  # 10:00 in Paris

GRAPH: dict[str, Any] = {
    "start": "accueil",
    "language": "fr",
    "nodes": {
        "accueil": {"type": "message", "text": "Bienvenue à la CAF.", "next": "horaires"},
        "horaires": {
            "type": "business_hours",
            "calendar": {
                "timezone": "Europe/Paris",
                "weekly": {"mon": [["08:30", "17:00"]]},
                "holidays": {"country": "FR"},
            },
            "open": "menu",
            "closed": "ferme",
            "holiday": "ferie",
        },
        "menu": {
            "type": "menu",
            "prompt": {"text": "Pour les allocations, tapez 1. Pour le logement, tapez 2."},
            "options": [
                {"key": "1", "label": "Allocations", "next": "alloc"},
                {"key": "2", "label": "Logement", "next": "menu_logement"},
            ],
            "retries": 1,
            "invalid": {"text": "Choix non valide."},
            "default": "file",
        },
        "menu_logement": {
            "type": "menu",
            "prompt": {"audio_url": "https://cdn.example.fr/logement.mp3"},
            "options": [{"key": "1", "next": "apl"}, {"key": "9", "next": "rappel"}],
        },
        "alloc": {"type": "set", "skills": {"allocations": 2}, "next": "file"},
        "apl": {
            "type": "set",
            "skills": {"apl": 3},
            "priority": 5,
            "language": "fr",
            "next": "file",
        },
        "file": {"type": "queue", "queue": "caf", "text": "Nous vous mettons en relation."},
        "rappel": {
            "type": "callback",
            "prompt": {"text": "Nous vous rappellerons."},
            "fallback": "messagerie",
        },
        "messagerie": {"type": "voicemail", "prompt": {"text": "Laissez un message."}},
        "ferme": {"type": "hangup", "text": "Nous sommes fermés."},
        "ferie": {"type": "transfer", "number": "+33140000000", "text": "Jour férié : transfert."},
    },
}


def test_the_example_graph_is_valid() -> None:
    assert validate_graph(GRAPH) == []


def test_start_runs_until_the_first_question() -> None:
    step = engine.start(GRAPH, context=MONDAY_10H)
    assert step.waiting
    say, ask = step.actions
    assert say == engine.Say(text="Bienvenue à la CAF.", language="fr")
    assert isinstance(ask, engine.Ask)
    assert [o.key for o in ask.options] == ["1", "2"]
    assert [o.label for o in ask.options] == ["Allocations", "Logement"]  # chat buttons
    assert step.session.node_id == "menu"


def test_two_level_menu_into_a_queue_with_skills_and_priority() -> None:
    step = engine.start(GRAPH, context=MONDAY_10H)
    step = engine.resume(GRAPH, session=step.session, user_input="2", context=MONDAY_10H)
    assert step.waiting
    ask = step.actions[-1]
    assert isinstance(ask, engine.Ask)
    assert ask.prompt.audio_url == "https://cdn.example.fr/logement.mp3"
    step = engine.resume(GRAPH, session=step.session, user_input="1", context=MONDAY_10H)
    assert not step.waiting
    outcome = step.outcome
    assert isinstance(outcome, engine.Enqueue)
    assert outcome.queue == "caf"
    assert outcome.skills == {"apl": 3}
    assert outcome.priority == 5
    assert step.session.path == ("accueil", "horaires", "menu=2", "menu_logement=1", "apl", "file")


def test_invalid_input_is_asked_again_then_the_default_applies() -> None:
    step = engine.start(GRAPH, context=MONDAY_10H)
    step = engine.resume(GRAPH, session=step.session, user_input="7", context=MONDAY_10H)
    invalid, ask = step.actions
    assert invalid == engine.Say(text="Choix non valide.", language="fr")
    assert isinstance(ask, engine.Ask)
    assert ask.attempt == 1
    step = engine.resume(GRAPH, session=step.session, user_input=None, context=MONDAY_10H)
    assert isinstance(step.outcome, engine.Enqueue)  # retries exhausted: the default node


def test_no_default_hangs_up_after_the_retries() -> None:
    step = engine.start(GRAPH, context=MONDAY_10H)
    step = engine.resume(GRAPH, session=step.session, user_input="2", context=MONDAY_10H)
    for _ in range(2):  # default retries: 2
        step = engine.resume(GRAPH, session=step.session, user_input="", context=MONDAY_10H)
        assert step.waiting
    step = engine.resume(GRAPH, session=step.session, user_input="", context=MONDAY_10H)
    assert step.actions == (engine.Hangup(),)


def test_closed_and_holiday_branches() -> None:
    sunday = engine.Context(now=datetime(2026, 3, 29, 9, 0, tzinfo=UTC))
    step = engine.start(GRAPH, context=sunday)
    assert step.actions[-2:] == (
        engine.Say(text="Nous sommes fermés.", language="fr"),
        engine.Hangup(),
    )
    easter_monday = engine.Context(now=datetime(2026, 4, 6, 8, 0, tzinfo=UTC))
    step = engine.start(GRAPH, context=easter_monday)
    assert step.outcome == engine.Transfer(number="+33140000000")


def test_callback_falls_back_to_voicemail_for_a_withheld_number() -> None:
    context = engine.Context(now=MONDAY_10H.now, caller_known=False)
    step = engine.start(GRAPH, context=context)
    step = engine.resume(GRAPH, session=step.session, user_input="2", context=context)
    step = engine.resume(GRAPH, session=step.session, user_input="9", context=context)
    assert isinstance(step.outcome, engine.Voicemail)
    known = engine.start(GRAPH, context=MONDAY_10H)
    known = engine.resume(GRAPH, session=known.session, user_input="2", context=MONDAY_10H)
    known = engine.resume(GRAPH, session=known.session, user_input="9", context=MONDAY_10H)
    assert isinstance(known.outcome, engine.Callback)


def test_sessions_survive_a_json_round_trip() -> None:
    step = engine.start(GRAPH, context=MONDAY_10H)
    step = engine.resume(GRAPH, session=step.session, user_input="2", context=MONDAY_10H)
    again = engine.Session.from_dict(step.session.to_dict())
    assert again == step.session


def test_language_set_by_the_flow_reaches_the_actions() -> None:
    graph = copy.deepcopy(GRAPH)
    graph["nodes"]["alloc"]["language"] = "en"
    graph["nodes"]["horaires"]["calendar"] = OPEN_ALWAYS
    step = engine.start(graph, context=MONDAY_10H)
    step = engine.resume(graph, session=step.session, user_input="1", context=MONDAY_10H)
    say, enqueue = step.actions
    assert say == engine.Say(text="Nous vous mettons en relation.", language="en")
    assert isinstance(enqueue, engine.Enqueue)
    assert enqueue.language == "en"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda g: g.update(start="nulle_part"), "start: no node named 'nulle_part'"),
        (
            lambda g: g["nodes"]["alloc"].update(next="perdu"),
            "nodes/alloc/next: no node named 'perdu'",
        ),
        (
            lambda g: g["nodes"]["menu"]["options"].append({"key": "1", "next": "file"}),
            "a key is used twice",
        ),
        (lambda g: g["nodes"]["menu"]["options"][0].update(key="12"), "nodes/menu/options/0/key"),
        (lambda g: g["nodes"]["accueil"].pop("text"), "nodes/accueil"),
        (lambda g: g["nodes"]["ferie"].update(number="0140000000"), "nodes/ferie/number"),
        (lambda g: g["nodes"]["file"].update(colour="bleu"), "Additional properties"),
        (lambda g: g["nodes"]["accueil"].update(type="musique"), "nodes/accueil/type"),
        (
            lambda g: g["nodes"]["horaires"]["calendar"]["weekly"].update(mon=[["17:00", "08:30"]]),
            "ends before it starts",
        ),
        (
            lambda g: g["nodes"]["horaires"]["calendar"].update(timezone="Europe/Lutece"),
            "unknown time zone",
        ),
        (
            lambda g: g["nodes"].update(ferme={"type": "message", "text": "x", "next": "horaires"}),
            "loop without input: horaires -> ferme -> horaires",
        ),
    ],
)
def test_validation_explains_each_problem(change: Any, message: str) -> None:
    graph = copy.deepcopy(GRAPH)
    change(graph)
    errors = validate_graph(graph)
    assert any(message in e for e in errors), errors


def test_a_loop_through_a_menu_is_allowed() -> None:
    graph = copy.deepcopy(GRAPH)
    graph["nodes"]["menu_logement"]["options"].append({"key": "0", "next": "accueil"})
    assert validate_graph(graph) == []


def test_unknown_queue_codes_are_reported_when_known_queues_are_given() -> None:
    assert validate_graph(GRAPH, known_queues=["caf"]) == []
    assert validate_graph(GRAPH, known_queues=["cpam"]) == [
        "nodes/file/queue: no queue with code 'caf'"
    ]
