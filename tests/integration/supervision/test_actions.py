"""Supervisor actions: skill levels (audited, effective at the next routing decision), agents'
states, logging out, reassigning and taking interactions, queue settings, team scopes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.utils import timezone

from agents.models import AgentPresence, AgentSkill, AgentState, PauseReason
from configuration.models import EscalationStep, Skill, Team
from interactions.lifecycle import Status
from routing.claims import do_route_pending
from routing.errors import TransferError
from routing.models import Offer, OfferStatus
from routing.offers import do_accept_offer
from supervision.access import OutOfScope, scope_for
from supervision.actions import (
    LevelChange,
    StepSpec,
    SupervisionError,
    do_log_agent_out,
    do_set_skill_levels,
    do_set_team_skill,
    do_supervisor_reassign,
    do_supervisor_set_state,
    do_supervisor_take,
    do_update_queue_settings,
)
from supervision.models import QueueHours, SkillChange, SupervisorAction
from supervision.selectors import wallboard_snapshot

pytestmark = pytest.mark.django_db


def pending(interaction: Any) -> Offer:
    return Offer.objects.get(interaction=interaction, status=OfferStatus.PENDING)


def test_a_raised_skill_wins_the_next_routing_decision_and_is_audited(
    queue: Any, agent: Any, arrive: Any, supervisor: Any, everything: Any
) -> None:
    # given Bob (deces 2) and Carol (deces 3)
    q = queue("deces", {"deces": 2})
    bob = agent("bob", {"deces": 2})
    carol = agent("carol", {"deces": 3})
    deces = Skill.objects.get(code="deces")
    # when the supervisor raises Bob to 5
    changes = do_set_skill_levels(
        actor=supervisor, scope=everything, changes=[LevelChange(bob.pk, deces.pk, 5)]
    )
    # then the next call goes to Bob, the most competent now
    call = arrive(q)
    do_route_pending()
    assert pending(call).agent == bob
    assert carol.pk != bob.pk
    # and the change is audited: who, when, before, after
    (audit,) = changes
    stored = SkillChange.objects.get(pk=audit.pk)
    assert (stored.agent, stored.skill, stored.before, stored.after) == (bob, deces, 2, 5)
    assert stored.changed_by == supervisor
    assert abs((timezone.now() - stored.changed_at).total_seconds()) < 60


def test_raising_a_skill_routes_a_waiting_interaction_at_once(
    queue: Any,
    agent: Any,
    arrive: Any,
    supervisor: Any,
    everything: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    q = queue("titres", {"cni": 3})
    dan = agent("dan", {"cni": 2})
    with django_capture_on_commit_callbacks(execute=True):
        call = arrive(q)
    call.refresh_from_db()
    assert call.status == Status.QUEUED  # nobody qualified
    cni = Skill.objects.get(code="cni")
    with django_capture_on_commit_callbacks(execute=True):
        do_set_skill_levels(
            actor=supervisor, scope=everything, changes=[LevelChange(dan.pk, cni.pk, 3)]
        )
    call.refresh_from_db()
    assert (call.status, call.assigned_agent) == (Status.OFFERED, dan)


def test_unchanged_levels_are_not_audited_and_removal_is(
    agent: Any, skill: Any, supervisor: Any, everything: Any
) -> None:
    eve = agent("eve", {"apl": 3, "rsa": 2})
    apl, rsa, cni = skill("apl"), skill("rsa"), skill("cni")
    changes = do_set_skill_levels(
        actor=supervisor,
        scope=everything,
        changes=[
            LevelChange(eve.pk, apl.pk, 3),  # unchanged
            LevelChange(eve.pk, rsa.pk, None),  # removed
            LevelChange(eve.pk, cni.pk, 1),  # added
        ],
        note="formation CNI",
    )
    assert {(c.skill.code, c.before, c.after) for c in changes} == {
        ("rsa", 2, None),
        ("cni", None, 1),
    }
    assert len({c.batch for c in changes}) == 1
    assert eve.skill_levels() == {"apl": 3, "cni": 1}
    with pytest.raises(SupervisionError):
        do_set_skill_levels(
            actor=supervisor, scope=everything, changes=[LevelChange(eve.pk, apl.pk, 6)]
        )


def test_bulk_edit_by_team_and_team_scopes(agent: Any, skill: Any, make_user: Any) -> None:
    supervisor = make_user("teamsup", role="supervisor")
    north, south = Team.objects.create(name="Nord"), Team.objects.create(name="Sud")
    a1, a2 = agent("a1", {}, team=north), agent("a2", {"apl": 1}, team=north)
    b1 = agent("b1", {}, team=south)
    north.supervisors.add(supervisor)
    scope = scope_for(supervisor)
    assert scope is not None
    assert scope.team_ids == frozenset({north.pk})
    apl = skill("apl")
    changes = do_set_team_skill(actor=supervisor, scope=scope, team=north, skill=apl, level=4)
    assert {(c.agent_id, c.before, c.after) for c in changes} == {(a1.pk, None, 4), (a2.pk, 1, 4)}
    assert not AgentSkill.objects.filter(agent=b1).exists()
    # a scoped supervisor cannot touch another team
    with pytest.raises(SupervisionError):
        do_set_team_skill(actor=supervisor, scope=scope, team=south, skill=apl, level=4)
    with pytest.raises(OutOfScope):
        do_set_skill_levels(actor=supervisor, scope=scope, changes=[LevelChange(b1.pk, apl.pk, 2)])
    with pytest.raises(OutOfScope):
        do_supervisor_set_state(actor=supervisor, scope=scope, agent=b1, state=AgentState.PAUSED)
    # and sees only their team on the wallboard
    board = wallboard_snapshot(scope)
    assert {r["agent_id"] for r in board["agents"]} == {a1.pk, a2.pk}
    # an agent is not a supervisor at all
    assert scope_for(make_user("plain")) is None


def test_supervisor_pauses_and_resumes_an_agent(
    agent: Any, supervisor: Any, everything: Any
) -> None:
    fay = agent("fay", {})
    presence = do_supervisor_set_state(
        actor=supervisor, scope=everything, agent=fay, state=AgentState.PAUSED
    )
    assert (presence.state, presence.pause_reason) == (AgentState.PAUSED, PauseReason.SUPERVISOR)
    do_supervisor_set_state(
        actor=supervisor, scope=everything, agent=fay, state=AgentState.AVAILABLE
    )
    assert AgentPresence.objects.get(agent=fay).state == AgentState.AVAILABLE
    kinds = list(SupervisorAction.objects.filter(agent=fay).values_list("kind", "details__state"))
    assert sorted(kinds) == [("set_state", "available"), ("set_state", "paused")]


def test_log_out_ends_sessions_and_withdraws_offers(
    queue: Any, agent: Any, arrive: Any, supervisor: Any, everything: Any
) -> None:
    # given Gus, logged in twice, with a call offered to him
    q = queue("caf", {})
    gus = agent("gus", {})
    other = agent("other", {}, available=False)
    sessions = []
    for _ in range(2):
        store = SessionStore()
        store["_auth_user_id"] = str(gus.user_id)
        store.create()
        sessions.append(store.session_key)
    mine = SessionStore()
    mine["_auth_user_id"] = str(other.user_id)
    mine.create()
    call = arrive(q)
    do_route_pending()
    offer = pending(call)
    # when a supervisor logs him out
    do_log_agent_out(actor=supervisor, scope=everything, agent=gus)
    # then he is offline, his sessions are gone, the call waits again (and may come back to him)
    assert AgentPresence.objects.get(agent=gus).state == AgentState.OFFLINE
    assert not Session.objects.filter(session_key__in=sessions).exists()
    assert Session.objects.filter(session_key=mine.session_key).exists()
    offer.refresh_from_db()
    call.refresh_from_db()
    assert offer.status == OfferStatus.CANCELLED
    assert (call.status, call.assigned_agent) == (Status.QUEUED, None)
    audit = SupervisorAction.objects.get(kind="log_out", agent=gus)
    assert audit.details == {"sessions_ended": 2, "offers_withdrawn": 1}


def test_reassign_a_handled_interaction_and_take_one(
    queue: Any, agent: Any, arrive: Any, supervisor: Any, everything: Any
) -> None:
    q = queue("caf", {})
    hal = agent("hal", {})
    call = arrive(q, "chat")
    do_route_pending()
    do_accept_offer(offer_id=pending(call).pk, agent=hal)
    ida = agent("ida", {})
    # when the supervisor reassigns Hal's chat to Ida
    offer = do_supervisor_reassign(actor=supervisor, scope=everything, interaction=call, target=ida)
    call.refresh_from_db()
    assert (call.status, call.assigned_agent, offer.status) == (
        Status.OFFERED,
        ida,
        OfferStatus.PENDING,
    )
    # reassigning again cancels Ida's offer; a busy target is refused
    AgentPresence.objects.filter(agent=hal).update(state=AgentState.PAUSED)
    with pytest.raises(TransferError):
        do_supervisor_reassign(actor=supervisor, scope=everything, interaction=call, target=hal)
    # the supervisor takes it: assigned to them at once, Ida's offer cancelled
    taken = do_supervisor_take(actor=supervisor, scope=everything, interaction=call)
    call.refresh_from_db()
    offer.refresh_from_db()
    assert call.status == Status.ASSIGNED
    assert call.assigned_agent.user == supervisor
    assert offer.status == OfferStatus.CANCELLED
    assert taken.status == OfferStatus.ACCEPTED
    assert list(
        SupervisorAction.objects.filter(interaction=call)
        .order_by("at", "id")
        .values_list("kind", flat=True)
    ) == ["reassign", "take"]


def test_queue_settings_are_validated_and_audited(
    queue: Any, supervisor: Any, everything: Any
) -> None:
    q = queue("caf", {})
    spill = queue("spill", {})
    calendar = {"timezone": "Europe/Paris", "weekly": {"mon": [["08:30", "17:00"]]}}
    do_update_queue_settings(
        actor=supervisor,
        scope=everything,
        queue=q,
        priority=3,
        sla_target_seconds=45,
        sla_target_percent=90,
        overflow_queue=spill,
        steps=[StepSpec(30, min_level_cap=2), StepSpec(120, overflow_to_id=spill.pk)],
        calendar=calendar,
    )
    q.refresh_from_db()
    assert (q.priority, q.sla_target_seconds, q.sla_target_percent, q.overflow_queue) == (
        3,
        45,
        90,
        spill,
    )
    assert list(
        EscalationStep.objects.filter(queue=q).values_list("after_seconds", "min_level_cap")
    ) == [(30, 2), (120, None)]
    assert QueueHours.objects.get(queue=q).calendar == calendar
    audit = SupervisorAction.objects.get(kind="queue")
    assert audit.details["before"]["sla_target_seconds"] == 60
    assert audit.details["after"]["sla_target_seconds"] == 45
    with pytest.raises(SupervisionError, match="ends before it starts"):
        do_update_queue_settings(
            actor=supervisor,
            scope=everything,
            queue=q,
            priority=0,
            sla_target_seconds=60,
            sla_target_percent=80,
            overflow_queue=None,
            steps=[],
            calendar={"weekly": {"tue": [["18:00", "09:00"]]}},
        )
    with pytest.raises(SupervisionError, match="itself"):
        do_update_queue_settings(
            actor=supervisor,
            scope=everything,
            queue=q,
            priority=0,
            sla_target_seconds=60,
            sla_target_percent=80,
            overflow_queue=q,
            steps=[],
            calendar=None,
        )


def test_wallboard_alerts_when_a_queue_breaches_its_target(
    queue: Any, arrive: Any, everything: Any
) -> None:
    q = queue("caf", {"apl": 1}, sla_target_seconds=30)
    arrive(q, now=timezone.now() - timedelta(seconds=45))
    board = wallboard_snapshot(everything)
    (row,) = [r for r in board["queues"] if r["queue_id"] == q.pk]
    assert row["waiting"] == 1
    assert row["alert"] == "waiting_over_target"
