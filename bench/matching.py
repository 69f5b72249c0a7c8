"""In-memory matching benchmark (no database): the router's indexes, decision by decision.

    python bench/matching.py [--agents 5000] [--skills 40] [--decisions 1500]

Measures, on the pure indexes of ``routing.matching`` (what every routing pass and the what-if
replay use):

1. ``agent_decision_p50_ms`` / ``agent_decision_p99_ms``: an interaction arrives and
   ``AgentIndex.best_agent`` finds its best agent among 5,000 agents holding 4-8 of 40 skills
   (levels 1-5, half of them busy on a call, 10 % absent), with 0-3 required skills, a language
   and sometimes excluded agents. Target: p99 ≤ 10 ms.
2. ``waiting_1k_us`` / ``waiting_100k_us`` and ``backlog_ratio``: an agent frees up and
   ``WaitingIndex.best_for_agent`` finds the best waiting contact, with 1,000 then 100,000
   contacts waiting over 96 signatures (median of 400 look-ups, best of the repeats). Target:
   ``backlog_ratio`` (100k over 1k) ≤ 2: the look-up does not grow with the backlog.

These were timed assertions in ``tests/unit/routing/test_matching.py``; a timing depends on the
machine's load, so it is a figure here (docs/benchmarks.md) and the tests check behaviour only.
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from routing.matching import AgentIndex, WaitingIndex  # noqa: E402
from routing.policy import DEFAULT_CAPACITY, AgentSnapshot, InteractionSnapshot  # noqa: E402


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(len(ordered) * p / 100)))]


def agent_pool(n: int, n_skills: int, rng: random.Random) -> list[AgentSnapshot]:
    skills = [f"s{i:02d}" for i in range(n_skills)]
    out = []
    for aid in range(1, n + 1):
        chans = {"voice"} | ({"chat"} if rng.random() < 0.5 else set())
        chans |= {"email", "sms"} if rng.random() < 0.3 else set()
        r = rng.random()
        load = {"voice": 1} if r < 0.5 else ({"chat": 1} if r < 0.7 and "chat" in chans else {})
        out.append(
            AgentSnapshot(
                agent_id=aid,
                skills={s: rng.randint(1, 5) for s in rng.sample(skills, rng.randint(4, 8))},
                languages=frozenset({"fr"} | ({"en"} if rng.random() < 0.2 else set())),
                team_id=rng.randint(1, 50),
                present=rng.random() < 0.9,
                available_channels=frozenset(chans),
                capacity={c: DEFAULT_CAPACITY[c] for c in chans},
                load=load,
                idle_since=rng.uniform(0, 1000),
            )
        )
    return out


def agent_decisions(n_agents: int, n_skills: int, n: int, rng: random.Random) -> list[float]:
    """Seconds per ``best_agent`` call, for ``n`` arriving interactions."""
    index = AgentIndex(agent_pool(n_agents, n_skills, rng))
    skills = [f"s{i:02d}" for i in range(n_skills)]
    lat = []
    for i in range(n):
        ix = InteractionSnapshot(
            interaction_id=i,
            channel=rng.choices(["voice", "chat", "email"], [0.6, 0.3, 0.1])[0],
            queue_id=1,
            enqueued_at=0.0,
            required_skills={s: rng.randint(1, 4) for s in rng.sample(skills, rng.randint(0, 3))},
            language=rng.choice(["fr", "fr", "en", None]),
            excluded_agent_ids=frozenset(rng.sample(range(1, n_agents + 1), rng.choice([0, 0, 3]))),
        )
        t0 = time.perf_counter()
        index.best_agent(ix, 2000.0)
        lat.append(time.perf_counter() - t0)
    return lat


def waiting_latency(backlog: int, rng: random.Random) -> float:
    """Median seconds of ``best_for_agent`` with ``backlog`` contacts over 96 signatures."""
    skills = [f"s{i:02d}" for i in range(12)]
    signatures = [
        (ch, {skills[k]: 1 + k % 3, skills[(k + 5) % 12]: 2}, lang)
        for k in range(12)
        for ch in ("voice", "chat")
        for lang in ("fr", "en", "ar", None)
    ]
    index = WaitingIndex()
    for i in range(backlog):
        ch, req, lang = signatures[i % len(signatures)]
        index.add(
            InteractionSnapshot(
                interaction_id=i,
                channel=ch,
                queue_id=1,
                enqueued_at=float(i % 997),
                required_skills=req,
                language=lang,
                base_priority=i % 2,
                sla_due_at=float(i % 997) + 60.0,
            )
        )
    agents = [
        AgentSnapshot(
            agent_id=k,
            skills={s: rng.randint(2, 5) for s in rng.sample(skills, 8)},
            languages=frozenset({"fr", "en"}),
            available_channels=frozenset({"voice", "chat"}),
            capacity={"voice": 1, "chat": 3},
        )
        for k in range(50)
    ]
    times = []
    for rep in range(400):
        a = agents[rep % len(agents)]
        t0 = time.perf_counter()
        index.best_for_agent(a, 2000.0)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=5000)
    parser.add_argument("--skills", type=int, default=40)
    parser.add_argument("--decisions", type=int, default=1500)
    args = parser.parse_args()

    lat = agent_decisions(args.agents, args.skills, args.decisions, random.Random(7))
    p50 = percentile(lat, 50) * 1000
    p99 = percentile(lat, 99) * 1000
    print(
        f"best_agent, {args.agents} agents, {args.skills} skills:"
        f" p50 {p50:.3f} ms, p99 {p99:.3f} ms"
    )

    rng = random.Random(3)
    small = min(waiting_latency(1_000, rng) for _ in range(2))
    large = min(waiting_latency(100_000, rng) for _ in range(2))
    ratio = large / small if small else 0.0
    print(
        f"best_for_agent: 1k waiting {small * 1e6:.0f} us, 100k waiting {large * 1e6:.0f} us "
        f"(ratio {ratio:.2f})"
    )
    result = {
        "agents": args.agents,
        "skills": args.skills,
        "agent_decision_p50_ms": round(p50, 3),
        "agent_decision_p99_ms": round(p99, 3),
        "waiting_1k_us": round(small * 1e6, 1),
        "waiting_100k_us": round(large * 1e6, 1),
        "backlog_ratio": round(ratio, 2),
        "targets_met": p99 <= 10.0 and ratio <= 2.0,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
