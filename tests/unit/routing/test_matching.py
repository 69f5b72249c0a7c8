"""Indexes and batch matching: same answers as the reference policy (their speed is measured by
``bench/matching.py``, not asserted here)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routing.matching import AgentIndex, WaitingIndex, plan_batch
from routing.policy import (
    DEFAULT_CAPACITY,
    AgentSnapshot,
    EscalationStep,
    InteractionSnapshot,
    PolicyConfig,
    capacity_reason,
    decide_agent,
    decide_interaction,
    effective_requirements,
    ineligibility_reason,
    interaction_order_key,
)
from tests.unit.routing import agent, contact

SKILLS = ("rsa", "apl", "etat_civil")
CHANNELS = ("voice", "chat")
ESCALATIONS = {
    1: (
        EscalationStep(after_seconds=30, min_level_cap=2),
        EscalationStep(after_seconds=60, drop_skills=frozenset({"apl"})),
        EscalationStep(after_seconds=90, any_agent_of_team=1),
        EscalationStep(after_seconds=120, overflow_queue_id=2),
    ),
    2: (EscalationStep(after_seconds=45, min_level_cap=1),),
}


# --------------------------------------------------------------------------- strategies


@st.composite
def agents_st(draw: st.DrawFn, max_agents: int = 10) -> list[AgentSnapshot]:
    n = draw(st.integers(0, max_agents))
    out = []
    for aid in range(1, n + 1):
        skills = draw(st.dictionaries(st.sampled_from(SKILLS), st.integers(1, 5)))
        chat_cap = draw(st.integers(0, 3))
        out.append(
            AgentSnapshot(
                agent_id=aid,
                skills=skills,
                languages=draw(st.frozensets(st.sampled_from(("fr", "en")))),
                team_id=draw(st.sampled_from((None, 1, 2))),
                present=draw(st.booleans()),
                available_channels=draw(st.frozensets(st.sampled_from(CHANNELS))),
                capacity={"voice": 1, "chat": chat_cap},
                load={"voice": draw(st.integers(0, 1)), "chat": draw(st.integers(0, chat_cap))},
                exclusive_channels=draw(st.sampled_from((frozenset({"voice"}), frozenset()))),
                idle_since=float(draw(st.integers(0, 3))),
            )
        )
    return out


@st.composite
def interaction_st(draw: st.DrawFn, iid: int = 1, max_agent: int = 10) -> InteractionSnapshot:
    enq = float(draw(st.integers(0, 200)))
    return InteractionSnapshot(
        interaction_id=iid,
        channel=draw(st.sampled_from(CHANNELS)),
        queue_id=draw(st.sampled_from((1, 2, 3))),
        enqueued_at=enq,
        required_skills=draw(st.dictionaries(st.sampled_from(SKILLS), st.integers(1, 5))),
        language=draw(st.sampled_from((None, "fr", "en"))),
        base_priority=draw(st.integers(0, 2)),
        sla_due_at=draw(st.sampled_from((None, enq + 20, enq + 60))),
        excluded_agent_ids=draw(st.frozensets(st.integers(1, max_agent), max_size=3)),
        preferred_agent_id=draw(st.sampled_from((None, 1, 2, 3))),
        team_id=draw(st.sampled_from((None, None, 1))),
        queue_entered_at=draw(st.sampled_from((None, enq + 10))),
    )


@st.composite
def backlog_st(draw: st.DrawFn, max_size: int = 15) -> list[InteractionSnapshot]:
    n = draw(st.integers(0, max_size))
    return [draw(interaction_st(iid=i)) for i in range(1, n + 1)]


NOW_ST = st.sampled_from((150.0, 230.0, 260.0, 320.0, 400.0))
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------------------- AgentIndex


@PROPERTY
@given(agents=agents_st(), ix=interaction_st(), now=NOW_ST, explain=st.booleans())
def test_agent_index_matches_the_reference(
    agents: list[AgentSnapshot], ix: InteractionSnapshot, now: float, explain: bool
) -> None:
    cfg = PolicyConfig(decision_log_top=3)
    steps = ESCALATIONS.get(ix.queue_id, ())
    expected = decide_agent(ix, agents, now, cfg, steps)
    got = AgentIndex(agents, cfg).best_agent(ix, now, steps, explain=explain)
    assert (got.agent_id, got.action, got.rule) == (
        expected.agent_id,
        expected.action,
        expected.rule,
    )
    assert got.requirements == expected.requirements
    assert got.proficiency == expected.proficiency
    if explain:
        assert got.eligible_count == expected.eligible_count
        assert got.candidates == expected.candidates
        assert dict(got.ineligible_counts) == dict(expected.ineligible_counts)


@PROPERTY
@given(
    agents=agents_st(),
    ops=st.lists(
        st.tuples(st.booleans(), st.integers(1, 10), st.sampled_from(CHANNELS)), max_size=12
    ),
    ix=interaction_st(),
)
def test_agent_index_stays_right_after_load_changes(
    agents: list[AgentSnapshot],
    ops: list[tuple[bool, int, str]],
    ix: InteractionSnapshot,
) -> None:
    index = AgentIndex(agents)
    expected = {a.agent_id: a for a in agents}
    for t, (is_assign, aid, ch) in enumerate(ops):
        if aid not in expected:
            continue
        a = expected[aid]
        load = dict(a.load)
        if is_assign:
            index.assign(aid, ch, float(t))
            load[ch] = load.get(ch, 0) + 1
        else:
            index.release(aid, ch, float(t))
            load[ch] = max(0, load.get(ch, 0) - 1)
        expected[aid] = replace(a, load={c: n for c, n in load.items() if n}, idle_since=float(t))
    for aid, a in expected.items():
        snap = index.snapshot(aid)
        assert dict(snap.load) == {c: n for c, n in a.load.items() if n}
        assert snap.idle_since == a.idle_since
    ref = decide_agent(ix, list(expected.values()), 500.0)
    got = index.best_agent(ix, 500.0)
    assert (got.agent_id, got.rule, got.eligible_count) == (
        ref.agent_id,
        ref.rule,
        ref.eligible_count,
    )
    assert dict(got.ineligible_counts) == dict(ref.ineligible_counts)


def test_agent_index_tracks_capacity_presence_and_availability() -> None:
    index = AgentIndex([agent(1, {"x": 5}), agent(2, {"x": 2})])
    chat = contact(1, {"x": 1}, channel="chat")
    for _ in range(DEFAULT_CAPACITY["chat"]):
        assert index.best_agent(chat, 0.0).agent_id == 1 or "chat" in index.ready_channels(1)
        index.assign(1, "chat", 0.0)
    assert "chat" not in index.ready_channels(1)
    d = index.best_agent(chat, 1.0)
    assert d.agent_id == 2
    assert d.ineligible_counts == {"no_capacity": 1}
    assert index.best_agent(contact(2, {"x": 1}), 1.0).agent_id == 2  # 1 is on chats: no call
    index.release(1, "chat", 2.0)
    assert index.best_agent(chat, 3.0).agent_id == 1
    index.set_present(1, False)
    assert index.best_agent(chat, 3.0).ineligible_counts == {"absent": 1}
    index.set_present(1, True)
    index.upsert(replace(index.snapshot(1), available_channels=frozenset({"email"})))
    assert index.best_agent(chat, 3.0).ineligible_counts == {"unavailable_on_channel": 1}
    index.upsert(agent(1, {"x": 1}, channels={"chat"}))
    assert index.snapshot(1).skills == {"x": 1}
    index.remove(2)
    assert len(index) == 1
    assert 2 not in index
    assert index.best_agent(chat, 4.0).agent_id == 1
    index.assign(1, "sms")  # a channel the index had never seen
    assert index.snapshot(1).load == {"sms": 1}


def test_agent_index_rejects_levels_outside_1_to_5() -> None:
    with pytest.raises(ValueError, match="level"):
        AgentIndex([agent(1, {"x": 6})])


def test_agent_index_round_robins_equally_competent_agents() -> None:
    index = AgentIndex([agent(i, {"x": 3}, idle_since=0.0) for i in (1, 2, 3)])
    got = []
    for t in range(1, 7):
        d = index.best_agent(contact(t, {"x": 1}, channel="chat"), float(t))
        assert d.agent_id is not None
        got.append(d.agent_id)
        index.assign(d.agent_id, "chat", float(t))
    assert got == [1, 2, 3, 1, 2, 3]


# --------------------------------------------------------------------------- WaitingIndex


@PROPERTY
@given(
    backlog=backlog_st(),
    agents=agents_st(max_agents=4),
    times=st.lists(NOW_ST, min_size=1, max_size=3),
    removals=st.lists(st.integers(1, 15), max_size=5),
)
def test_waiting_index_matches_the_reference(
    backlog: list[InteractionSnapshot],
    agents: list[AgentSnapshot],
    times: list[float],
    removals: list[int],
) -> None:
    index = WaitingIndex(escalations=ESCALATIONS)
    for ix in backlog:
        index.add(ix)
    alive = {ix.interaction_id: ix for ix in backlog}
    for step, now in enumerate(sorted(times)):
        if step < len(removals):
            index.remove(removals[step])
            alive.pop(removals[step], None)
        assert len(index) == len(alive)
        for a in agents:
            expected = decide_interaction(a, alive.values(), now, escalations=ESCALATIONS)
            got = index.best_for_agent(a, now)
            if expected is None:
                assert got is None
                continue
            assert got is not None
            assert got.interaction.interaction_id == expected.interaction.interaction_id
            assert got.rule == expected.rule
            assert got.requirements == expected.requirements
            assert got.effective_priority == pytest.approx(expected.effective_priority)


def test_waiting_index_escalates_lazily() -> None:
    index = WaitingIndex(escalations=ESCALATIONS)
    index.add(contact(1, {"rsa": 4}, queue_id=1, enqueued_at=0.0))
    level2 = agent(7, {"rsa": 2}, team_id=2)
    assert index.best_for_agent(level2, 29.0) is None
    choice = index.best_for_agent(level2, 30.0)
    assert choice is not None
    assert choice.requirements.skills == {"rsa": 2}
    # At 90 s any agent of team 1 may take it, whatever their skills.
    assert index.best_for_agent(agent(8, {"apl": 1}, team_id=1), 89.0) is None
    choice = index.best_for_agent(agent(8, {"apl": 1}, team_id=1), 90.0)
    assert choice is not None
    assert choice.requirements.team_id == 1
    assert 1 in index  # offering it does not take it out: the caller removes it


def test_waiting_index_never_offers_a_declined_contact_again() -> None:
    index = WaitingIndex()
    index.add(contact(1, {"x": 1}, enqueued_at=0.0, excluded_agent_ids=frozenset({5})))
    index.add(contact(2, {"x": 1}, enqueued_at=10.0))
    choice = index.best_for_agent(agent(5, {"x": 3}), 20.0)
    assert choice is not None
    assert choice.interaction.interaction_id == 2
    index.remove(2)
    assert index.best_for_agent(agent(5, {"x": 3}), 20.0) is None
    choice = index.best_for_agent(agent(6, {"x": 3}), 20.0)
    assert choice is not None
    assert choice.interaction.interaction_id == 1


def test_waiting_index_bookkeeping() -> None:
    index = WaitingIndex()
    index.add(contact(1))
    with pytest.raises(ValueError, match="already"):
        index.add(contact(1))
    assert index.remove(99) is None
    for i in range(2, 500):
        index.add(contact(i, {"x": 1}, enqueued_at=float(i)))
    for i in range(2, 499):
        index.remove(i)  # heap entries are compacted along the way
    assert len(index) == 2
    assert {ix.interaction_id for ix in index} == {1, 499}
    index.update(replace(index.get(499) or contact(0), excluded_agent_ids=frozenset({3})))
    assert index.get(499) is not None
    index.remove(1)
    index.remove(499)
    assert len(index) == 0
    assert index.best_for_agent(agent(3, {"x": 5}), 1000.0) is None


# --------------------------------------------------------------------------- batch


def _reference_batch(
    interactions: list[InteractionSnapshot],
    agents: list[AgentSnapshot],
    now: float,
) -> list[tuple[int, int]]:
    """The greedy batch written naively with the reference functions."""
    current = {a.agent_id: a for a in agents}
    unique: dict[int, InteractionSnapshot] = {}
    for ix in interactions:
        unique.setdefault(ix.interaction_id, ix)
    out = []
    for ix in sorted(unique.values(), key=lambda i: interaction_order_key(i, now)):
        d = decide_agent(ix, list(current.values()), now, steps=ESCALATIONS.get(ix.queue_id, ()))
        if d.agent_id is None:
            continue
        a = current[d.agent_id]
        load = dict(a.load)
        load[ix.channel] = load.get(ix.channel, 0) + 1
        current[a.agent_id] = replace(a, load=load, idle_since=now)
        out.append((ix.interaction_id, d.agent_id))
    return out


@PROPERTY
@given(
    agents=agents_st(),
    backlog=backlog_st(max_size=20),
    dup=st.lists(st.integers(0, 19), max_size=4),
    now=NOW_ST,
)
def test_batch_matching_properties(
    agents: list[AgentSnapshot], backlog: list[InteractionSnapshot], dup: list[int], now: float
) -> None:
    interactions = backlog + [backlog[i] for i in dup if i < len(backlog)]
    plan = plan_batch(interactions, agents, now, escalations=ESCALATIONS)
    again = plan_batch(interactions, agents, now, escalations=ESCALATIONS)
    assert plan == again  # deterministic

    pairs = [(m.interaction_id, m.agent_id) for m in plan.matches]
    assert pairs == _reference_batch(interactions, agents, now)
    ids = [m.interaction_id for m in plan.matches]
    assert len(ids) == len(set(ids))  # never assigned twice

    by_id = {a.agent_id: a for a in agents}
    final = dict(by_id)
    for m in plan.matches:
        a = final[m.agent_id]
        ix = next(i for i in backlog if i.interaction_id == m.interaction_id)
        assert m.agent_id not in ix.excluded_agent_ids
        assert capacity_reason(a, m.channel) is None  # room for it when assigned
        load = dict(a.load)
        load[m.channel] = load.get(m.channel, 0) + 1
        final[m.agent_id] = replace(a, load=load)
        assert m.decision.agent_id == m.agent_id
        assert m.decision.candidates  # the log has the reasons
    for aid, a in final.items():
        gained = {c: a.load.get(c, 0) - by_id[aid].load.get(c, 0) for c in a.load}
        for ch, n in gained.items():
            if n:
                assert a.load[ch] <= a.capacity.get(ch, 0)
        if gained.get("voice", 0) and "voice" in a.exclusive_channels:
            assert a.total_load() == 1  # a call and nothing else

    # work-conserving: whatever is left has no eligible agent with room
    matched = set(ids)
    for ix in backlog:
        if ix.interaction_id in matched:
            continue
        req = effective_requirements(ix, ESCALATIONS.get(ix.queue_id, ()), now)
        assert all(ineligibility_reason(a, ix, req) is not None for a in final.values())
    overflowed = {d.interaction_id for d in plan.overflows}
    assert overflowed.isdisjoint(matched)
    assert overflowed.isdisjoint(plan.unmatched_ids)
    # every distinct interaction ends up in exactly one of the three lists
    assert sorted([*matched, *overflowed, *plan.unmatched_ids]) == sorted(
        {ix.interaction_id for ix in backlog}
    )
    for d in plan.overflows:
        assert d.action == "overflow"
        assert d.overflow_queue_id == 2


def test_batch_respects_voice_exclusivity_and_capacity() -> None:
    agents = [agent(1, {"x": 5}, capacity={"voice": 1, "chat": 2}), agent(2, {"x": 1})]
    backlog = [contact(i, {"x": 1}, channel="chat", enqueued_at=float(i)) for i in range(1, 4)]
    backlog += [contact(10, {"x": 1}, channel="voice", enqueued_at=5.0)]
    matches = plan_batch(backlog, agents, 100.0).matches
    got = [(m.interaction_id, m.agent_id) for m in matches]
    # oldest first; chats 1 and 2 go to the expert (chat capacity 2), chat 3 to agent 2;
    # then the call finds nobody free of work (voice is exclusive) and waits.
    assert got == [(1, 1), (2, 1), (3, 2)]


def test_batch_accepts_an_index_and_updates_it() -> None:
    index = AgentIndex([agent(1, {"x": 3})])
    matches = plan_batch([contact(1, {"x": 1}), contact(2, {"x": 1})], index, 10.0).matches
    assert [m.interaction_id for m in matches] == [1]
    assert index.snapshot(1).load == {"voice": 1}
