"""The interaction life cycle refuses illegal moves."""

import pytest

from interactions.lifecycle import ALLOWED_TRANSITIONS, IllegalTransition, Status, check_transition


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (Status.NEW, Status.QUEUED),
        (Status.QUEUED, Status.OFFERED),
        (Status.OFFERED, Status.ASSIGNED),
        (Status.OFFERED, Status.QUEUED),  # declined or expired: re-queued
        (Status.ASSIGNED, Status.WRAP_UP),
        (Status.WRAP_UP, Status.CLOSED),
        (Status.QUEUED, Status.ABANDONED),
        (Status.ASSIGNED, Status.TRANSFERRED),
        (Status.TRANSFERRED, Status.QUEUED),
        (Status.CLOSED, Status.QUEUED),  # the citizen wrote again on the thread
    ],
)
def test_life_cycle_moves_are_allowed(current: str, target: str) -> None:
    check_transition(current, target)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (Status.NEW, Status.WRAP_UP),
        (Status.QUEUED, Status.WRAP_UP),
        (Status.QUEUED, Status.CLOSED + "x"),
        (Status.CLOSED, Status.ASSIGNED),
        (Status.ABANDONED, Status.QUEUED),
        (Status.WRAP_UP, Status.ASSIGNED),
        (Status.ASSIGNED, Status.OFFERED),
        (Status.OFFERED, Status.CLOSED),
        (Status.ASSIGNED, Status.ASSIGNED),
    ],
)
def test_illegal_moves_are_refused(current: str, target: str) -> None:
    with pytest.raises(IllegalTransition, match="cannot go from"):
        check_transition(current, target)


def test_every_status_has_its_rules_and_abandoned_is_final() -> None:
    assert set(ALLOWED_TRANSITIONS) == set(Status.values)
    assert ALLOWED_TRANSITIONS[Status.ABANDONED] == frozenset()
