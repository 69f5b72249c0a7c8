"""The event catalogue (kernel.event_catalogue), the table in docs/architecture.md and
the code agree: a new event needs a catalogue entry and a documented row, or CI fails."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from kernel import event_catalogue
from kernel.event_catalogue import EVENTS

ROOT = Path(__file__).resolve().parents[2]
SKIPPED_DIRS = {".venv", "node_modules", "tests", "migrations", "build", ".git"}
# Calls whose argument at this position is an event name.
EVENT_ARG = {"publish": 0, "send_now": 1, "send_now_sync": 1}


def documented_events() -> set[str]:
    """The names in the first column of the table under "## Events" in docs/architecture.md."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text.split("\n## Events\n", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    in_table = False
    for line in section.splitlines():
        if line.startswith("| event |"):
            in_table = True
            continue
        if in_table and not line.startswith("|"):
            break
        if in_table and not line.startswith("| ---"):
            first_cell = line.split("|")[1]
            names.update(re.findall(r"`([^`]+)`", first_cell))
    return names


def _literals(node: ast.expr) -> list[str]:
    """The event names an expression can be: a literal, or either branch of ``a if c else b``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        return _literals(node.body) + _literals(node.orelse)
    return []


def names_in(tree: ast.AST) -> list[tuple[str, int]]:
    """The literal event names a module publishes, with their lines: the name argument of
    ``publish`` and ``send_now``, and the first item of ``(name, {payload}, groups)`` tuples
    (what ``publish_many`` takes)."""
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Call):
            func = node.func
            called = (
                func.id
                if isinstance(func, ast.Name)
                else func.attr
                if isinstance(func, ast.Attribute)
                else ""
            )
            position = EVENT_ARG.get(called)
            if position is not None and len(node.args) > position:
                names = _literals(node.args[position])
        elif (
            isinstance(node, ast.Tuple)
            and len(node.elts) == 3
            and isinstance(node.elts[1], ast.Dict)
        ):
            names = _literals(node.elts[0])
        found += [(name, getattr(node, "lineno", 0)) for name in names]
    return found


def published_events() -> dict[str, list[str]]:
    """Every literal event name the code publishes -> where."""
    found: dict[str, list[str]] = {}
    for path in ROOT.rglob("*.py"):
        if SKIPPED_DIRS & set(path.relative_to(ROOT).parts):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for name, line in names_in(tree):
            found.setdefault(name, []).append(f"{path.relative_to(ROOT)}:{line}")
    return found


def test_the_scan_finds_each_way_of_publishing_a_literal_name() -> None:
    source = """
publish("a.one", {}, groups=[])
events.publish("a.two" if x else "a.three", payload, groups=[])
publish_many([("a.four", {"k": 1}, [group])])
send_now(groups, "a.five", {})
publish(*builder(), groups=[])
publish(f"a.{x}", {}, groups=[])
"""
    assert sorted(name for name, _line in names_in(ast.parse(source))) == [
        "a.five",
        "a.four",
        "a.one",
        "a.three",
        "a.two",
    ]


def test_the_catalogue_and_the_documented_table_list_the_same_events() -> None:
    documented = documented_events()
    assert len(documented) > 10  # the table was found and parsed
    assert not set(EVENTS) - documented, "in the catalogue, missing from docs/architecture.md"
    assert not documented - set(EVENTS), "in docs/architecture.md, missing from the catalogue"


def test_every_event_the_code_publishes_is_in_the_catalogue() -> None:
    published = published_events()
    unknown = {name: where for name, where in published.items() if name not in EVENTS}
    assert not unknown, f"published but not in kernel/event_catalogue.py: {unknown}"


def test_each_builder_makes_an_event_of_the_catalogue_with_its_payload_keys() -> None:
    built = [
        event_catalogue.interaction_created(interaction_id=1, channel="chat"),
        event_catalogue.interaction_status(
            interaction_id=1, from_status="queued", to_status="offered", reason=""
        ),
        event_catalogue.offer_made(
            offer_id=2, interaction_id=1, channel="chat", expires_at="t", assigned=True
        ),
        event_catalogue.offer_outcome(outcome="declined", offer_id=2, interaction_id=1),
        event_catalogue.routing_claimed(organisation_id=3, offered=1, assigned=0),
        event_catalogue.message_status(
            message_id=4, interaction_id=1, channel="sms", status="sent", attempts=1, reason=""
        ),
        event_catalogue.chat_state(state="waiting", agent=""),
    ]
    for name, payload in built:
        required = EVENTS[name].__dict__["__required_keys__"]
        optional = EVENTS[name].__dict__["__optional_keys__"]
        assert set(payload) <= required | optional, name
        assert required <= set(payload), name
    assert built[2][0] == "interaction.assigned"
    assert built[3] == ("offer.declined", {"offer_id": 2, "interaction_id": 1})
    with pytest.raises(ValueError, match="unknown offer outcome"):
        event_catalogue.offer_outcome(outcome="lost", offer_id=2, interaction_id=1)
