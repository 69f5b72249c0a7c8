"""Routing rules as a supervisor would check them (reference implementation)."""

from __future__ import annotations

import json

import pytest

from routing.policy import (
    AgentSnapshot,
    EscalationStep,
    InteractionSnapshot,
    PolicyConfig,
    Reason,
    current_step,
    decide_agent,
    decide_interaction,
    effective_priority,
    effective_requirements,
    explain_candidate,
    proficiency,
    sla_boost,
    step_index,
    validate_steps,
)
from tests.unit.routing import agent, contact

NOW = 1_000.0


# --------------------------------------------------------------------------- agent choice


def test_the_more_competent_agent_gets_the_call() -> None:
    junior = agent(1, {"rsa": 2}, idle_since=0.0)  # idle much longer
    expert = agent(2, {"rsa": 5}, idle_since=900.0)
    d = decide_agent(contact(10, {"rsa": 2}), [junior, expert], NOW)
    assert d.agent_id == 2
    assert d.action == "assign"
    assert d.rule == "proficiency"
    assert d.proficiency == 5.0
    assert [c.agent_id for c in d.candidates] == [2, 1]


def test_proficiency_is_the_mean_over_required_skills() -> None:
    a = agent(1, {"rsa": 5, "apl": 1})
    b = agent(2, {"rsa": 3, "apl": 4})
    assert proficiency(a, {"rsa": 1, "apl": 1}) == 3.0
    assert proficiency(b, {"rsa": 1, "apl": 1}) == 3.5
    d = decide_agent(contact(1, {"rsa": 1, "apl": 1}), [a, b], NOW)
    assert d.agent_id == 2
    assert proficiency(a, {}) == 0.0


def test_tie_on_proficiency_goes_to_the_preferred_agent() -> None:
    a = agent(1, {"rsa": 4}, idle_since=0.0)
    b = agent(2, {"rsa": 4}, idle_since=500.0)
    d = decide_agent(contact(1, {"rsa": 1}, preferred_agent_id=2), [a, b], NOW)
    assert (d.agent_id, d.rule) == (2, "preferred_agent")
    assert d.candidates[0].preferred


def test_preferred_agent_does_not_beat_a_more_competent_one() -> None:
    a = agent(1, {"rsa": 5})
    b = agent(2, {"rsa": 3})
    d = decide_agent(contact(1, {"rsa": 1}, preferred_agent_id=2), [a, b], NOW)
    assert (d.agent_id, d.rule) == (1, "proficiency")


def test_then_longest_idle_then_least_loaded_then_lowest_id() -> None:
    a = agent(3, {"x": 3}, idle_since=100.0)
    b = agent(4, {"x": 3}, idle_since=50.0)
    d = decide_agent(contact(1, {"x": 1}, channel="chat"), [a, b], NOW)
    assert (d.agent_id, d.rule) == (4, "longest_idle")
    assert d.candidates[0].idle_s == NOW - 50.0

    busy = agent(5, {"x": 3}, idle_since=10.0, load={"chat": 2})
    free = agent(6, {"x": 3}, idle_since=10.0, load={"chat": 1})
    d = decide_agent(contact(1, {"x": 1}, channel="chat"), [busy, free], NOW)
    assert (d.agent_id, d.rule) == (6, "least_loaded")

    d = decide_agent(contact(1, {"x": 1}), [agent(9, {"x": 3}), agent(8, {"x": 3})], NOW)
    assert (d.agent_id, d.rule) == (8, "agent_id")


def test_only_candidate_and_no_eligible_agent() -> None:
    d = decide_agent(contact(1, {"x": 1}), [agent(1, {"x": 1}), agent(2)], NOW)
    assert (d.agent_id, d.rule) == (1, "only_candidate")
    d = decide_agent(contact(1, {"x": 1}), [agent(2)], NOW)
    assert d.agent_id is None
    assert (d.action, d.rule) == ("wait", "no_eligible_agent")
    assert d.ineligible_counts == {"missing_skill:x": 1}


def test_a_declined_agent_is_never_offered_again() -> None:
    star = agent(1, {"rsa": 5})
    other = agent(2, {"rsa": 2})
    ix = contact(1, {"rsa": 1}, excluded_agent_ids=frozenset({1}))
    d = decide_agent(ix, [star, other], NOW)
    assert d.agent_id == 2
    assert d.ineligible_counts == {Reason.EXCLUDED: 1}
    d = decide_agent(ix, [star], NOW)
    assert d.agent_id is None


# --------------------------------------------------------------------------- eligibility


@pytest.mark.parametrize(
    ("a", "ix", "reason"),
    [
        (agent(1, {"x": 3}, present=False), contact(1, {"x": 1}), "absent"),
        (agent(1, {"x": 3}, channels={"chat"}), contact(1, {"x": 1}), "unavailable_on_channel"),
        (agent(1, {"y": 3}), contact(1, {"x": 1}), "missing_skill:x"),
        (agent(1, {"x": 1}), contact(1, {"x": 2}), "level_too_low:x"),
        (agent(1, {"x": 3}, languages={"fr"}), contact(1, {"x": 1}, language="ar"), "language"),
        (agent(1, {"x": 3}, load={"voice": 1}), contact(1, {"x": 1}), "no_capacity"),
        (agent(1, {"x": 3}, load={"chat": 1}), contact(1, {"x": 1}), "exclusive_busy"),
        (
            agent(1, {"x": 3}, load={"voice": 1}),
            contact(1, {"x": 1}, channel="chat"),
            "exclusive_busy",
        ),
        (agent(1, {"x": 3}, team_id=1), contact(1, {"x": 1}, team_id=2), "not_in_team"),
        (
            agent(1, {"x": 3}),
            contact(1, {"x": 1}, excluded_agent_ids=frozenset({1})),
            "excluded",
        ),
    ],
)
def test_ineligibility_reasons(a: AgentSnapshot, ix: InteractionSnapshot, reason: str) -> None:
    c = explain_candidate(a, ix, NOW)
    assert not c.eligible
    assert c.reason == reason
    d = decide_agent(ix, [a], NOW)
    assert d.agent_id is None
    assert d.ineligible_counts == {reason: 1}


def test_voice_exclusivity() -> None:
    on_chat = agent(1, {"x": 3}, load={"chat": 1})
    on_call = agent(2, {"x": 3}, load={"voice": 1})
    free = agent(3, {"x": 1})
    voice = decide_agent(contact(1, {"x": 1}), [on_chat, on_call, free], NOW)
    assert voice.agent_id == 3  # the less competent but free agent takes the call
    chat = decide_agent(contact(2, {"x": 1}, channel="chat"), [on_chat, on_call], NOW)
    assert chat.agent_id == 1  # on a call: no chat; on a chat: more chats are fine


def test_custom_exclusive_channels() -> None:
    a = agent(1, {"x": 3}, load={"chat": 1}, exclusive_channels=frozenset())
    assert decide_agent(contact(1, {"x": 1}), [a], NOW).agent_id == 1


def test_language_empty_means_any_agent() -> None:
    a = agent(1, {"x": 3}, languages=())
    assert decide_agent(contact(1, {"x": 1}, language=None), [a], NOW).agent_id == 1
    assert decide_agent(contact(1, {"x": 1}, language=""), [a], NOW).agent_id == 1
    b = agent(2, {"x": 3}, languages={"fr", "es"})
    assert decide_agent(contact(1, {"x": 1}, language="es"), [a, b], NOW).agent_id == 2


def test_reasons_are_counted_first_failure_first() -> None:
    agents = [
        agent(1, {"x": 3}, present=False, load={"voice": 1}),  # absent (and busy)
        agent(2, {}, load={"voice": 1}),  # missing skill (and busy)
        agent(3, {"x": 3}, load={"voice": 1}),  # busy
        agent(4, {"x": 3}),
    ]
    d = decide_agent(contact(1, {"x": 2}), agents, NOW)
    assert d.agent_id == 4
    assert d.ineligible_counts == {"absent": 1, "missing_skill:x": 1, "no_capacity": 1}
    assert d.eligible_count == 1


# --------------------------------------------------------------------------- decision log


def test_decision_log_is_bounded_and_serialisable() -> None:
    agents = [agent(i, {"x": 1 + i % 5}, idle_since=float(i)) for i in range(1, 40)]
    agents += [agent(100 + i, {"y": 5}) for i in range(5)]
    d = decide_agent(contact(7, {"x": 2}), agents, NOW, PolicyConfig(decision_log_top=4))
    assert len(d.candidates) == 4
    assert d.eligible_count == sum(1 for i in range(1, 40) if 1 + i % 5 >= 2)
    assert d.ineligible_counts == {"missing_skill:x": 5, "level_too_low:x": 39 - d.eligible_count}
    assert [c.proficiency for c in d.candidates] == [5.0] * 4
    log = json.loads(json.dumps(d.to_log_dict()))
    assert log["agent_id"] == d.agent_id
    assert log["rule"] == "longest_idle"
    assert log["requirements"]["skills"] == {"x": 2}
    assert len(log["candidates"]) == 4


# --------------------------------------------------------------------------- escalation

STEPS = validate_steps(
    [
        EscalationStep(after_seconds=30, min_level_cap=2),
        EscalationStep(after_seconds=60, drop_skills=frozenset({"arabic_docs"})),
        EscalationStep(after_seconds=120, any_agent_of_team=7),
        EscalationStep(after_seconds=300, overflow_queue_id=2),
    ]
)


def test_current_step() -> None:
    assert current_step(STEPS, 0) is None
    assert step_index(STEPS, 29.5) == -1
    assert current_step(STEPS, 30) is STEPS[0]
    assert step_index(STEPS, 30 - 1e-9) == 0  # float rounding at the boundary
    assert step_index(STEPS, 119) == 1
    assert step_index(STEPS, 10_000) == 3
    assert step_index((), 10_000) == -1
    many = validate_steps(EscalationStep(after_seconds=10.0 * i) for i in range(20))
    assert step_index(many, 55) == 5


def test_steps_must_be_sorted() -> None:
    with pytest.raises(ValueError, match="sorted"):
        validate_steps([EscalationStep(60), EscalationStep(30)])


def test_escalation_after_30s_accepts_level_2() -> None:
    ix = contact(1, {"rsa": 4}, enqueued_at=0.0)
    level2 = agent(1, {"rsa": 2})
    early = decide_agent(ix, [level2], 29.0, steps=STEPS)
    assert early.agent_id is None
    assert early.ineligible_counts == {"level_too_low:rsa": 1}
    late = decide_agent(ix, [level2], 30.0, steps=STEPS)
    assert late.agent_id == 1
    assert late.requirements.skills == {"rsa": 2}
    assert late.requirements.step_index == 0


def test_steps_are_cumulative() -> None:
    ix = contact(1, {"rsa": 4, "arabic_docs": 3}, language="ar", team_id=None)
    req = effective_requirements(ix, STEPS, 61.0)
    assert dict(req.skills) == {"rsa": 2}  # capped at 30 s, dropped at 60 s
    req = effective_requirements(ix, STEPS, 121.0)
    assert (dict(req.skills), req.team_id, req.language) == ({}, 7, "ar")  # language stays
    outsider = agent(1, {"rsa": 5, "arabic_docs": 5}, languages={"ar"}, team_id=1)
    member = agent(2, {}, languages={"ar"}, team_id=7)
    d = decide_agent(ix, [outsider, member], 121.0, steps=STEPS)
    assert d.agent_id == 2
    assert d.ineligible_counts == {"not_in_team": 1}


def test_escalation_clock_restarts_in_a_new_queue() -> None:
    moved = contact(1, {"rsa": 4}, enqueued_at=0.0, queue_entered_at=500.0)
    assert effective_requirements(moved, STEPS, 520.0).step_index == -1
    assert effective_requirements(moved, STEPS, 530.0).step_index == 0
    # ...but ageing still counts from the first enqueue
    assert effective_priority(moved, 520.0) == 520.0


def test_overflow_decision_when_nobody_can_take_it() -> None:
    ix = contact(1, {"rsa": 4}, queue_id=1)
    busy = agent(1, {"rsa": 5}, load={"voice": 1}, team_id=7)
    d = decide_agent(ix, [busy], 301.0, steps=STEPS)
    assert d.action == "overflow"
    assert d.overflow_queue_id == 2
    assert d.agent_id is None
    # an eligible agent in the current queue is preferred to moving the citizen
    free = agent(2, {}, team_id=7)
    d = decide_agent(ix, [busy, free], 301.0, steps=STEPS)
    assert (d.action, d.agent_id, d.overflow_queue_id) == ("assign", 2, None)
    # before the overflow step: just wait
    assert decide_agent(ix, [busy], 299.0, steps=STEPS).action == "wait"


# --------------------------------------------------------------------------- contact choice


def test_fifo_within_equals() -> None:
    a = agent(1, {"x": 3})
    older = contact(1, {"x": 1}, enqueued_at=10.0)
    newer = contact(2, {"x": 1}, enqueued_at=20.0)
    same_time = contact(3, {"x": 1}, enqueued_at=10.0)
    choice = decide_interaction(a, [newer, same_time, older], NOW)
    assert choice is not None
    assert choice.interaction.interaction_id == 1  # oldest, then lowest id
    assert choice.rule == "fifo"


def test_priority_then_ageing_lets_an_old_low_priority_contact_overtake() -> None:
    cfg = PolicyConfig()  # 1 base-priority point = 100 s of waiting
    a = agent(1, {"x": 3})
    old_low = contact(1, {"x": 1}, enqueued_at=0.0, base_priority=0)
    new_high = contact(2, {"x": 1}, enqueued_at=50.0, base_priority=1)
    choice = decide_interaction(a, [old_low, new_high], 60.0, cfg)
    assert choice is not None
    assert choice.interaction.interaction_id == 2  # priority wins while the gap is short
    assert choice.rule == "effective_priority"
    choice = decide_interaction(a, [old_low, new_high], 60.0, PolicyConfig(ageing_rate=0))
    assert choice is not None
    assert choice.interaction.interaction_id == 2
    very_old_low = contact(3, {"x": 1}, enqueued_at=-200.0, base_priority=0)
    choice = decide_interaction(a, [very_old_low, new_high], 60.0, cfg)
    assert choice is not None
    assert choice.interaction.interaction_id == 3  # waited 260 s > 100 s + 10 s
    assert choice.rule == "fifo"


def test_sla_boost_is_bounded_and_grows_as_the_target_nears() -> None:
    cfg = PolicyConfig(sla_window_s=60, sla_max_boost=150)
    assert sla_boost(None, 0.0, cfg) == 0.0
    assert sla_boost(100.0, 0.0, cfg) == 0.0
    assert sla_boost(100.0, 40.0, cfg) == 0.0
    assert sla_boost(100.0, 70.0, cfg) == pytest.approx(75.0)
    assert sla_boost(100.0, 100.0, cfg) == 150.0
    assert sla_boost(100.0, 10_000.0, cfg) == 150.0
    a = agent(1, {"x": 3})
    relaxed = contact(1, {"x": 1}, enqueued_at=0.0, sla_due_at=3600.0)
    due_now = contact(2, {"x": 1}, enqueued_at=30.0, sla_due_at=61.0)
    choice = decide_interaction(a, [relaxed, due_now], 60.0, cfg)
    assert choice is not None
    assert choice.interaction.interaction_id == 2


def test_agent_only_gets_what_it_may_take() -> None:
    a = agent(1, {"x": 2}, languages={"fr"}, load={"voice": 1})
    call = contact(1, {"x": 1}, enqueued_at=0.0)
    arabic_chat = contact(2, {"x": 1}, channel="chat", language="ar", enqueued_at=1.0)
    declined = contact(3, {"x": 1}, channel="chat", excluded_agent_ids=frozenset({1}))
    assert decide_interaction(a, [call, arabic_chat, declined], NOW) is None
    free = agent(2, {"x": 2}, languages={"fr"})
    choice = decide_interaction(free, [call, arabic_chat, declined], NOW)
    assert choice is not None
    assert choice.interaction.interaction_id == 1


def test_waiting_contacts_escalate_for_the_freed_agent() -> None:
    a = agent(1, {"rsa": 2})
    ix = contact(1, {"rsa": 4}, enqueued_at=0.0)
    esc = {1: STEPS}
    assert decide_interaction(a, [ix], 10.0, escalations=esc) is None
    choice = decide_interaction(a, [ix], 31.0, escalations=esc)
    assert choice is not None
    assert choice.requirements.step_index == 0


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="ageing"):
        PolicyConfig(ageing_rate=-1)
    with pytest.raises(ValueError, match="decision_log_top"):
        PolicyConfig(decision_log_top=0)
