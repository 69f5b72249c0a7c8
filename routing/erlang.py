"""Erlang C (M/M/N queue) formulas for staffing advice and simulator cross-checks.

Pure Python, no Django. Units: ``arrival_rate`` is in contacts per **second** and
``aht`` (average handle time) in seconds, so the offered load in Erlangs is
``arrival_rate * aht``. Use :func:`per_hour` to convert a per-hour volume.

Erlang C assumes Poisson arrivals, exponential handle times, identical agents each
serving one contact at a time, first-come-first-served, an infinite queue and
**nobody hanging up**. With abandonment it is pessimistic (real waits are shorter).

Numerical stability: Erlang C is computed from the Erlang B recursion
``B(0) = 1, B(n) = A*B(n-1) / (n + A*B(n-1))`` which only ever manipulates numbers
in [0, 1]; no factorials or powers, so it works for thousands of agents.
"""

from __future__ import annotations

import math

__all__ = [
    "agents_needed",
    "asa",
    "erlang_b",
    "erlang_c",
    "occupancy",
    "per_hour",
    "probability_of_wait",
    "service_level",
    "traffic_erlangs",
]


def per_hour(contacts_per_hour: float) -> float:
    """Convert a volume per hour into the per-second arrival rate used here."""
    return contacts_per_hour / 3600.0


def traffic_erlangs(arrival_rate: float, aht: float) -> float:
    """Offered load in Erlangs (arrival rate per second x handle time in seconds)."""
    if arrival_rate < 0 or aht < 0:
        raise ValueError("arrival_rate and aht must be >= 0")
    return arrival_rate * aht


def erlang_b(servers: int, traffic: float) -> float:
    """Blocking probability of an M/M/N/N system (Erlang B), by stable recursion."""
    if servers < 0:
        raise ValueError("servers must be >= 0")
    if traffic < 0:
        raise ValueError("traffic must be >= 0")
    b = 1.0
    for n in range(1, servers + 1):
        ab = traffic * b
        b = ab / (n + ab)
    return b


def erlang_c(agents: int, traffic: float) -> float:
    """Probability that an arriving contact has to wait (Erlang C).

    Returns 1.0 when the system is unstable (``traffic >= agents``): the queue grows
    without bound and everybody waits.
    """
    if agents < 0:
        raise ValueError("agents must be >= 0")
    if traffic < 0:
        raise ValueError("traffic must be >= 0")
    if traffic == 0:
        return 0.0
    if agents == 0 or traffic >= agents:
        return 1.0
    b = erlang_b(agents, traffic)
    return _c_from_b(agents, traffic, b)


probability_of_wait = erlang_c


def _c_from_b(agents: int, traffic: float, b: float) -> float:
    c = agents * b / (agents - traffic * (1.0 - b))
    return min(1.0, max(0.0, c))


def _sl_from_c(agents: int, traffic: float, aht: float, target_s: float, c: float) -> float:
    if aht <= 0:
        return 1.0
    return max(0.0, min(1.0, 1.0 - c * math.exp(-(agents - traffic) * target_s / aht)))


def service_level(agents: int, arrival_rate: float, aht: float, target_s: float) -> float:
    """Fraction of contacts answered within ``target_s`` seconds (0..1).

    This is ``P(wait <= target_s)`` over *all* arriving contacts, contacts answered
    immediately included: ``1 - C * exp(-(N - A) * t / AHT)``. 0.0 if unstable.
    """
    if target_s < 0:
        raise ValueError("target_s must be >= 0")
    a = traffic_erlangs(arrival_rate, aht)
    if a == 0:
        return 1.0
    if a >= agents:
        return 0.0
    return _sl_from_c(agents, a, aht, target_s, erlang_c(agents, a))


def asa(agents: int, arrival_rate: float, aht: float) -> float:
    """Average speed of answer in seconds, over all contacts (zero waits included).

    ``C * AHT / (N - A)``; ``math.inf`` if the system is unstable.
    """
    a = traffic_erlangs(arrival_rate, aht)
    if a == 0:
        return 0.0
    if a >= agents:
        return math.inf
    return erlang_c(agents, a) * aht / (agents - a)


def occupancy(agents: int, arrival_rate: float, aht: float) -> float:
    """Expected fraction of time agents are busy (``A / N``, capped at 1)."""
    if agents <= 0:
        return 1.0
    return min(1.0, traffic_erlangs(arrival_rate, aht) / agents)


def agents_needed(
    arrival_rate: float,
    aht: float,
    target_s: float,
    target_sl: float,
    *,
    max_occupancy: float | None = None,
    max_agents: int = 100_000,
) -> int:
    """Smallest number of agents whose service level meets ``target_sl``.

    ``target_sl`` is a fraction (0.8 for "80 % answered within ``target_s``").
    ``max_occupancy`` (e.g. 0.85) optionally adds an occupancy ceiling.
    Cost is O(result): the Erlang B value is carried from one agent count to the next.
    Raises ``ValueError`` if no count up to ``max_agents`` is enough.
    """
    if not 0.0 <= target_sl < 1.0:
        raise ValueError("target_sl must be in [0, 1)")
    a = traffic_erlangs(arrival_rate, aht)
    if a == 0:
        return 0
    b = 1.0
    for n in range(1, max_agents + 1):
        ab = a * b
        b = ab / (n + ab)
        if n <= a:
            continue
        if max_occupancy is not None and a / n > max_occupancy:
            continue
        c = _c_from_b(n, a, b)
        if _sl_from_c(n, a, aht, target_s, c) >= target_sl:
            return n
    raise ValueError(f"more than {max_agents} agents needed")
