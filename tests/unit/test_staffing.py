"""Staffing advice from recent figures (Erlang C)."""

from __future__ import annotations

import pytest

from routing import erlang
from supervision.staffing import advise


def test_textbook_case() -> None:
    # 400 calls in the hour, 180 s each: 20 Erlangs; 80 % within 20 s
    advice = advise(
        arrivals=400,
        window_s=3600,
        handle_times=[120.0, 240.0],
        target_s=20,
        target_percent=80,
        logged_in=22,
    )
    assert advice.aht_s == 180.0
    assert advice.traffic_erlangs == pytest.approx(20.0)
    assert advice.needed == erlang.agents_needed(400 / 3600, 180.0, 20, 0.8)
    assert advice.needed is not None
    # the smallest count meeting the goal: one less does not
    assert erlang.service_level(advice.needed, 400 / 3600, 180.0, 20) >= 0.8
    assert erlang.service_level(advice.needed - 1, 400 / 3600, 180.0, 20) < 0.8
    assert advice.gap == 22 - advice.needed
    assert advice.predicted_service_level == pytest.approx(
        erlang.service_level(22, 400 / 3600, 180.0, 20)
    )


def test_no_handle_time_yet_or_no_traffic() -> None:
    unknown = advise(
        arrivals=5, window_s=3600, handle_times=[], target_s=20, target_percent=80, logged_in=2
    )
    assert (unknown.needed, unknown.gap) == (None, None)
    quiet = advise(
        arrivals=0, window_s=3600, handle_times=[200.0], target_s=20, target_percent=80, logged_in=1
    )
    assert (quiet.needed, quiet.predicted_service_level) == (0, 1.0)
    # a 100 % goal is capped (Erlang C never promises everybody)
    full = advise(
        arrivals=10,
        window_s=3600,
        handle_times=[60.0],
        target_s=20,
        target_percent=100,
        logged_in=1,
    )
    assert full.needed is not None
    assert full.needed >= 1
