"""Erlang C against the textbook formula, and its staffing helper."""

from __future__ import annotations

import math

import pytest

from routing import erlang


def direct_erlang_c(n: int, a: float) -> float:
    """The textbook closed form, fine for small n."""
    top = a**n / math.factorial(n) * n / (n - a)
    return top / (sum(a**k / math.factorial(k) for k in range(n)) + top)


def direct_erlang_b(n: int, a: float) -> float:
    return (a**n / math.factorial(n)) / sum(a**k / math.factorial(k) for k in range(n + 1))


def test_known_values() -> None:
    assert erlang.erlang_c(3, 2.0) == pytest.approx(4 / 9)
    assert erlang.erlang_b(1, 3.0) == pytest.approx(3 / 4)
    assert erlang.erlang_b(10, 5.0) == pytest.approx(0.018385, abs=1e-6)
    assert erlang.erlang_b(0, 5.0) == 1.0


@pytest.mark.parametrize("n", [1, 2, 5, 10, 25, 50])
@pytest.mark.parametrize("load", [0.3, 0.7, 0.95])
def test_matches_the_closed_form(n: int, load: float) -> None:
    a = n * load
    assert erlang.erlang_c(n, a) == pytest.approx(direct_erlang_c(n, a), rel=1e-9)
    assert erlang.erlang_b(n, a) == pytest.approx(direct_erlang_b(n, a), rel=1e-9)


def test_stable_for_large_centres() -> None:
    for n, a in [(200, 190.0), (1000, 960.0), (5000, 4900.0)]:
        c = erlang.erlang_c(n, a)
        assert 0.0 < c < 1.0
        sl = erlang.service_level(n, a / 180.0, 180.0, 20.0)
        assert 0.0 <= sl <= 1.0
        assert math.isfinite(erlang.asa(n, a / 180.0, 180.0))


def test_service_level_and_asa() -> None:
    rate = erlang.per_hour(400)  # 400 calls/h
    aht = 180.0  # 20 Erlangs
    assert erlang.traffic_erlangs(rate, aht) == pytest.approx(20.0)
    c = erlang.erlang_c(24, 20.0)
    assert erlang.service_level(24, rate, aht, 0.0) == pytest.approx(1 - c)
    assert erlang.service_level(24, rate, aht, 20.0) == pytest.approx(
        1 - c * math.exp(-(24 - 20) * 20 / 180)
    )
    assert erlang.asa(24, rate, aht) == pytest.approx(c * 180 / 4)
    assert erlang.occupancy(24, rate, aht) == pytest.approx(20 / 24)
    # more agents, or a longer target: better service
    sls = [erlang.service_level(n, rate, aht, 20.0) for n in range(21, 30)]
    assert sls == sorted(sls)
    assert erlang.service_level(24, rate, aht, 60.0) > erlang.service_level(24, rate, aht, 20.0)


def test_unstable_and_degenerate_cases() -> None:
    rate = erlang.per_hour(400)
    assert erlang.erlang_c(20, 20.0) == 1.0
    assert erlang.service_level(19, rate, 180.0, 20.0) == 0.0
    assert erlang.asa(20, rate, 180.0) == math.inf
    assert erlang.erlang_c(5, 0.0) == 0.0
    assert erlang.service_level(5, 0.0, 180.0, 20.0) == 1.0
    assert erlang.asa(5, 0.0, 180.0) == 0.0
    with pytest.raises(ValueError, match=">= 0"):
        erlang.erlang_c(-1, 2.0)
    with pytest.raises(ValueError, match=">= 0"):
        erlang.traffic_erlangs(-1.0, 2.0)


def test_agents_needed_is_the_smallest_count_meeting_the_target() -> None:
    rate = erlang.per_hour(900)
    aht = 240.0  # 60 Erlangs
    n = erlang.agents_needed(rate, aht, 20.0, 0.8)
    assert erlang.service_level(n, rate, aht, 20.0) >= 0.8
    assert erlang.service_level(n - 1, rate, aht, 20.0) < 0.8
    assert n > 60
    capped = erlang.agents_needed(rate, aht, 20.0, 0.8, max_occupancy=0.85)
    assert capped >= n
    assert 60 / capped <= 0.85
    assert erlang.agents_needed(0.0, aht, 20.0, 0.8) == 0
    assert erlang.agents_needed(erlang.per_hour(20_000), 300.0, 20.0, 0.9) > 1667
    with pytest.raises(ValueError, match="target_sl"):
        erlang.agents_needed(rate, aht, 20.0, 1.0)
    with pytest.raises(ValueError, match="more than"):
        erlang.agents_needed(rate, aht, 20.0, 0.8, max_agents=10)
