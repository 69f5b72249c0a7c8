"""The router keeps the available agents indexed from pass to pass (routing.agent_pool): what
changed in the database between two passes (a skill, a level, a language, a channel, a state)
decides the very next pass, as if every agent had been read again."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection

from agents.models import AgentPresence, AgentProfile, AgentSkill, AgentState
from configuration.models import Skill
from routing.claims import do_route_pending
from routing.models import Offer, OfferStatus

pytestmark = pytest.mark.django_db

# Before the agent pool and the compiled reads: 16 (of which 4 in the claim's event path).
MAX_STATEMENTS = 12


def offered_to(interaction: Any) -> int | None:
    offer = Offer.objects.filter(interaction=interaction, status=OfferStatus.PENDING).first()
    return offer.agent_id if offer else None


def test_a_skill_raised_between_two_passes_decides_the_next_one(
    queue: Any, agent: Any, arrive: Any
) -> None:
    q = queue("caf-logement", {"apl": 2})
    first = agent("first", {"apl": 3})
    second = agent("second", {"apl": 1})
    first_call = arrive(q)
    assert do_route_pending().offered == 1  # the pool now holds both agents
    assert offered_to(first_call) == first.pk

    # a supervisor raises the second agent's level (the first one is on the phone)
    AgentSkill.objects.filter(agent=second).update(level=5)
    call = arrive(q)
    assert do_route_pending().offered == 1
    assert offered_to(call) == second.pk


def test_a_removed_skill_a_new_language_and_a_logout_count_at_once(
    queue: Any, agent: Any, arrive: Any
) -> None:
    q = queue("caf-logement", {"apl": 1})
    expert = agent("expert", {"apl": 5})
    novice = agent("novice", {"apl": 1})
    other = agent("other", {"apl": 1}, languages=["en"])
    arrive(q)
    assert do_route_pending().offered == 1  # the pool now holds all three

    AgentSkill.objects.filter(agent=expert).delete()
    AgentPresence.objects.filter(agent=novice).update(state=AgentState.OFFLINE)
    call = arrive(q)
    assert do_route_pending().offered == 0  # expert: no skill, novice: gone, other: English
    assert offered_to(call) is None

    AgentProfile.objects.filter(pk=other.pk).update(languages=["en", "fr"])
    assert do_route_pending().offered == 1
    assert offered_to(call) == other.pk


def test_a_renamed_skill_code_is_seen_by_the_next_pass(
    queue: Any, agent: Any, arrive: Any, skill: Any
) -> None:
    q = queue("caf-logement", {"apl": 1})
    worker = agent("worker", {"rsa": 3})
    arrive(q)
    assert do_route_pending().offered == 0
    # the configuration renames the agent's skill to the one the queue needs
    Skill.objects.filter(code="apl").update(code="apl-old")
    Skill.objects.filter(code="rsa").update(code="apl")
    Skill.objects.filter(code="apl-old").update(code="rsa")
    assert do_route_pending().offered == 1
    assert Offer.objects.get().agent_id == worker.pk


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="the PostgreSQL path's statements (the embedded SQLite default keeps the ORM's reads)",
)
def test_a_pass_with_many_agents_and_one_waiting_stays_within_its_statements(
    queue: Any, agent: Any, arrive: Any, django_assert_max_num_queries: Any
) -> None:
    q = queue("caf", {"apl": 1})
    for n in range(30):
        agent(f"agent{n}", {"apl": 1 + n % 5})
    arrive(q)
    do_route_pending()
    arrive(q)
    # exists, agents, exclusions, backlog, escalation steps, then the claim (transaction,
    # locks, writes, events); none of them per agent
    with django_assert_max_num_queries(MAX_STATEMENTS):
        assert do_route_pending().offered == 1
