"""The console chores' session check is spread over rounds: each console once per interval."""

from __future__ import annotations

from collections import Counter

from console.live import session_check_share


class _Console:
    pass


def test_every_console_is_checked_exactly_once_per_interval_in_balanced_shares() -> None:
    # given 5,000 consoles and a check interval of 12 rounds
    consoles = {_Console(): number for number in range(5000)}
    rounds = 12
    # when the chores run one interval's rounds
    checked: Counter[int] = Counter()
    sizes = []
    for round_no in range(100, 100 + rounds):
        share = session_check_share(consoles, round_no, rounds)
        sizes.append(len(share))
        checked.update(id(c) for c in share)
    # then each console was checked once, and no round checks more than a fair share
    assert len(checked) == 5000
    assert set(checked.values()) == {1}
    assert max(sizes) < 2 * 5000 / rounds


def test_a_single_round_interval_checks_everyone_every_round() -> None:
    consoles = {_Console(): number for number in range(10)}
    assert session_check_share(consoles, 7, 1) == list(consoles)
