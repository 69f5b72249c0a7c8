"""The what-if replay engine on small recordings whose outcome can be worked out by hand."""

from __future__ import annotations

from routing.policy import EscalationStep
from routing.simulation import (
    ReplayAgent,
    ReplayContact,
    ReplayInput,
    ReplayQueue,
    mean_patience,
    replay,
)


def agent(
    agent_id: int, skills: dict[str, int], shifts: tuple[tuple[float, float], ...]
) -> ReplayAgent:
    return ReplayAgent(
        agent_id=agent_id,
        skills=skills,
        languages=frozenset({"fr"}),
        team_id=None,
        channels=frozenset({"voice"}),
        capacity={"voice": 1},
        shifts=shifts,
    )


def call(cid: int, at: float, handle: float | None = 30.0, **kw: object) -> ReplayContact:
    fields: dict[str, object] = {"recorded_wait_s": 0.0, **kw}
    return ReplayContact(
        contact_id=cid,
        queue_id=1,
        channel="voice",
        arrival_s=at,
        required_skills={"apl": 2},
        language="fr",
        sla_target_s=20.0,
        handle_s=handle,
        accept_delay_s=0.0,
        **fields,  # type: ignore[arg-type]
    )


QUEUE = {1: ReplayQueue(queue_id=1, required_skills={"apl": 2})}


def test_one_agent_answers_in_turn() -> None:
    # given one agent from 0 to 1000 s and three calls of 30 s arriving 10 s apart
    inp = ReplayInput(
        contacts=(call(1, 0), call(2, 10), call(3, 20)),
        agents=(agent(7, {"apl": 3}, ((0.0, 1000.0),)),),
        queues=QUEUE,
    )
    # then they are answered at 0, 30 and 60 s (waits 0, 20, 40)
    out = replay(inp)
    assert [(o.answered_s, o.closed_s, o.agent_id) for o in out] == [
        (0.0, 30.0, 7),
        (30.0, 60.0, 7),
        (60.0, 90.0, 7),
    ]


def test_a_second_agent_logging_in_later_takes_the_waiting_call() -> None:
    inp = ReplayInput(
        contacts=(call(1, 0), call(2, 10), call(3, 20)),
        agents=(agent(7, {"apl": 3}, ((0.0, 1000.0),)), agent(8, {"apl": 2}, ((15.0, 1000.0),))),
        queues=QUEUE,
    )
    out = {o.contact_id: o for o in replay(inp)}
    assert (out[2].answered_s, out[2].agent_id) == (15.0, 8)  # agent 8 logs in at 15 s
    assert (out[3].answered_s, out[3].agent_id) == (30.0, 7)  # first free


def test_skills_decide_and_escalation_relaxes_them() -> None:
    novice = agent(9, {"apl": 1}, ((0.0, 1000.0),))
    # apl 1 is below the required 2: nobody answers; the call is missed at the end
    (missed,) = replay(ReplayInput(contacts=(call(1, 0),), agents=(novice,), queues=QUEUE))
    assert missed.answered_s is None
    assert missed.abandoned_s is not None
    # an escalation step accepting level 1 after 45 s lets the novice answer then
    relaxed = {1: ReplayQueue(queue_id=1, escalation=(EscalationStep(45.0, min_level_cap=1),))}
    (answered,) = replay(ReplayInput(contacts=(call(1, 0),), agents=(novice,), queues=relaxed))
    assert (answered.answered_s, answered.agent_id) == (45.0, 9)


def test_citizens_hang_up_when_they_did() -> None:
    inp = ReplayInput(
        contacts=(call(1, 0, handle=100), call(2, 5, patience_s=40, recorded_wait_s=None)),
        agents=(agent(7, {"apl": 3}, ((0.0, 1000.0),)),),
        queues=QUEUE,
    )
    second = replay(inp)[1]
    assert (second.answered_s, second.abandoned_s) == (None, 45.0)
    # with a second agent, the same citizen is answered at once
    helped = replay(
        ReplayInput(
            contacts=inp.contacts,
            agents=(*inp.agents, agent(8, {"apl": 2}, ((0.0, 1000.0),))),
            queues=QUEUE,
        )
    )[1]
    assert (helped.answered_s, helped.abandoned_s) == (5.0, None)


def test_patience_estimate_counts_answered_waits_as_censored() -> None:
    contacts = [
        call(1, 0, recorded_wait_s=30.0),
        call(2, 0, recorded_wait_s=None, patience_s=60.0),
        call(3, 0, recorded_wait_s=10.0),
    ]
    assert mean_patience(contacts) == (30 + 60 + 10) / 1
    assert mean_patience([call(1, 0)]) is None


def test_a_proposed_target_and_priority_apply_to_every_contact_of_the_queue() -> None:
    inp = ReplayInput(
        contacts=(call(1, 0),),
        agents=(agent(7, {"apl": 3}, ((0.0, 10.0),)),),
        queues={1: ReplayQueue(queue_id=1, sla_target_s=90.0, base_priority=2)},
    )
    (only,) = replay(inp)
    assert only.sla_target_s == 90.0


def test_a_contact_in_wrap_up_no_longer_holds_the_agent() -> None:
    # given one agent and two calls 10 s apart; the first is handled 30 s, then closed 200 s
    # later (wrap-up): only the 30 s held the agent (a contact in wrap-up is not in the load)
    first = call(1, 0, handle=230, hold_s=30.0)
    inp = ReplayInput(
        contacts=(first, call(2, 10)),
        agents=(agent(7, {"apl": 3}, ((0.0, 1000.0),)),),
        queues=QUEUE,
    )
    out = replay(inp)
    # then the second call is answered when the first went to wrap-up, not when it closed
    assert [(o.answered_s, o.closed_s) for o in out] == [(0.0, 230.0), (30.0, 60.0)]


def test_a_calls_after_work_keeps_the_agent_from_new_offers() -> None:
    # given a call held 30 s, then 20 s of after-call work, and a second call waiting
    inp = ReplayInput(
        contacts=(call(1, 0, handle=60, hold_s=30.0, after_work_s=20.0), call(2, 10)),
        agents=(agent(7, {"apl": 3}, ((0.0, 1000.0),)),),
        queues=QUEUE,
    )
    # then the second call waits for the end of the after-call work (50 s)
    assert replay(inp)[1].answered_s == 50.0
    # an agent whose shift ends during the after-call work does not come back
    short = ReplayInput(
        contacts=inp.contacts, agents=(agent(7, {"apl": 3}, ((0.0, 40.0),)),), queues=QUEUE
    )
    assert replay(short)[1].answered_s is None


def test_a_contact_still_waiting_when_recorded_stays_pending() -> None:
    # given nobody able to answer: a contact that was still waiting when the period was read
    # stays pending (as in the report), one that was answered or abandoned counts as missed
    novice = agent(9, {"apl": 1}, ((0.0, 100.0),))
    waiting = call(1, 0, recorded_wait_s=None, handle=None, pending=True)
    (out,) = replay(ReplayInput(contacts=(waiting,), agents=(novice,), queues=QUEUE))
    assert (out.answered_s, out.abandoned_s) == (None, None)


def test_an_overflow_moves_the_contact_and_an_unknown_target_is_ignored() -> None:
    # given a call nobody of queue 1 can take, and a step sending it to queue 2 after 30 s,
    # whose agent logs in at once
    helper = agent(8, {"rsa": 3}, ((0.0, 1000.0),))
    queues = {
        1: ReplayQueue(queue_id=1, escalation=(EscalationStep(30.0, overflow_queue_id=2),)),
        2: ReplayQueue(queue_id=2, required_skills={"rsa": 1}),
    }
    (moved,) = replay(ReplayInput(contacts=(call(1, 0),), agents=(helper,), queues=queues))
    # then queue 2's agent answers it at 30 s; its wait counts from its arrival in queue 1
    assert (moved.answered_s, moved.agent_id, moved.queue_id) == (30.0, 8, 1)
    # a step sending it to a queue that no longer exists leaves it waiting: missed at the end
    gone = {1: queues[1]}
    (missed,) = replay(ReplayInput(contacts=(call(1, 0),), agents=(helper,), queues=gone))
    assert missed.answered_s is None
    assert missed.abandoned_s is not None


def test_an_agent_who_declined_a_contact_is_never_offered_it_again() -> None:
    # given the only free agent declined this call when it was recorded
    inp = ReplayInput(
        contacts=(call(1, 0, excluded_agent_ids=frozenset({7})),),
        agents=(agent(7, {"apl": 3}, ((0.0, 100.0),)), agent(8, {"apl": 2}, ((20.0, 100.0),))),
        queues=QUEUE,
    )
    # then it waits for the other agent, who logs in at 20 s
    (out,) = replay(inp)
    assert (out.answered_s, out.agent_id) == (20.0, 8)
