"""Supervisors' writes: skill levels (audited), agents' state, logging agents out, reassigning
and taking interactions, queue settings, satisfaction answers.

Each action checks the supervisor's scope (``supervision.access``, i.e. ``organisations.authz``;
nothing links two organisations: skills, overflow queues and takers are the row's own), writes
in one transaction and leaves an audit row. Skill changes take effect on the very next routing
decision: the router reads ``AgentSkill`` at every pass, and a pass is requested once the change
commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.sessions.models import Session
from django.db import transaction
from django.utils import timezone

from agents.models import AgentPresence, AgentProfile, AgentSkill, AgentState, PauseReason
from agents.presence import do_set_agent_state
from configuration.models import EscalationStep, Queue, Skill, Team
from interactions.models import Interaction
from kernel import event_catalogue
from kernel.events import publish_many, supervisors_group
from kernel.socket_groups import close_sockets, user_group
from routing.models import Offer
from routing.offers import do_cancel_agent_offers
from routing.transfers import do_reassign_interaction
from routing.triggers import request_routing

from . import stats
from .access import Scope
from .models import QueueHours, SatisfactionResponse, SkillChange, SupervisorAction


class SupervisionError(ValueError):
    """A supervisor's request that cannot be done (the message says why)."""


@dataclass(frozen=True, slots=True)
class LevelChange:
    """Set ``agent_id``'s level on ``skill_id`` to ``level`` (None: remove the skill)."""

    agent_id: int
    skill_id: int
    level: int | None


def do_set_skill_levels(
    *,
    actor: Any,
    scope: Scope,
    changes: Iterable[LevelChange],
    note: str = "",
    now: datetime | None = None,
) -> list[SkillChange]:
    """Apply level changes atomically; each actual change is audited with before and after.

    The agents' profile rows are locked in id order, so two supervisors editing the same agents
    serialise and each audit row's "before" is the level really replaced."""
    now = now or timezone.now()
    wanted: dict[tuple[int, int], int | None] = {}
    for change in changes:
        if change.level is not None and not 1 <= change.level <= 5:
            raise SupervisionError("a level is between 1 and 5")
        wanted[(change.agent_id, change.skill_id)] = change.level
    if not wanted:
        return []
    agent_ids = sorted({a for a, _ in wanted})
    skill_ids = {s for _, s in wanted}
    skill_orgs = dict(scope.skills().filter(pk__in=skill_ids).values_list("pk", "organisation_id"))
    if len(skill_orgs) != len(skill_ids):
        raise SupervisionError("unknown skill")
    batch = uuid.uuid4()
    audit: list[SkillChange] = []
    with transaction.atomic():
        agents = list(
            AgentProfile.objects.select_for_update().filter(pk__in=agent_ids).order_by("pk")
        )
        if len(agents) != len(agent_ids):
            raise SupervisionError("unknown agent")
        for agent in agents:
            scope.check_agent(agent)
        agent_orgs = {agent.pk: agent.organisation_id for agent in agents}
        if any(agent_orgs[a] != skill_orgs[s] for a, s in wanted):
            raise SupervisionError("a skill of another organisation")
        current = {
            (row.agent_id, row.skill_id): row
            for row in AgentSkill.objects.filter(agent_id__in=agent_ids, skill_id__in=skill_ids)
        }
        for (agent_id, skill_id), level in sorted(wanted.items()):
            row = current.get((agent_id, skill_id))
            before = row.level if row else None
            if before == level:
                continue
            if level is None:
                assert row is not None
                row.delete()
            elif row is None:
                AgentSkill.objects.create(agent_id=agent_id, skill_id=skill_id, level=level)
            else:
                row.level = level
                row.save(update_fields=["level"])
            audit.append(
                SkillChange(
                    agent_id=agent_id,
                    skill_id=skill_id,
                    before=before,
                    after=level,
                    changed_by=actor if getattr(actor, "pk", None) else None,
                    changed_at=now,
                    batch=batch,
                    note=note[:200],
                )
            )
        if audit:
            SkillChange.objects.bulk_create(audit)
            changed = sorted({c.agent_id for c in audit})
            publish_many(
                [
                    (
                        *event_catalogue.agent_skills(
                            agent_ids=[a for a in changed if agent_orgs[a] == org],
                            batch=str(batch),
                        ),
                        [supervisors_group(org)],
                    )
                    for org in sorted({agent_orgs[a] for a in changed})
                ]
            )
            request_routing()  # a waiting interaction may now have an agent
    return audit


def do_set_team_skill(
    *,
    actor: Any,
    scope: Scope,
    team: Team,
    skill: Skill,
    level: int | None,
    note: str = "",
    now: datetime | None = None,
) -> list[SkillChange]:
    """Bulk edit: every agent of ``team`` gets ``level`` on ``skill`` (None: removed)."""
    if not scope.sees_team(team.pk):
        raise SupervisionError("this team is not yours")
    agent_ids = AgentProfile.objects.filter(team=team).values_list("pk", flat=True)
    return do_set_skill_levels(
        actor=actor,
        scope=scope,
        changes=[LevelChange(a, skill.pk, level) for a in agent_ids],
        note=note,
        now=now,
    )


def _audit(actor: Any, kind: str, *, now: datetime, **fields: Any) -> SupervisorAction:
    return SupervisorAction.objects.create(
        actor=actor if getattr(actor, "pk", None) else None, kind=kind, at=now, **fields
    )


def do_supervisor_set_state(
    *,
    actor: Any,
    scope: Scope,
    agent: AgentProfile,
    state: str,
    reason: str = "",
    now: datetime | None = None,
) -> AgentPresence:
    """Put an agent in a state (a pause without a reason is "set by a supervisor")."""
    now = now or timezone.now()
    scope.check_agent(agent)
    if state == AgentState.PAUSED and not reason:
        reason = PauseReason.SUPERVISOR
    if state == AgentState.OFFLINE:
        return do_log_agent_out(actor=actor, scope=scope, agent=agent, now=now)
    with transaction.atomic():
        try:
            presence = do_set_agent_state(agent=agent, state=state, reason=reason, now=now)
        except ValueError as exc:
            raise SupervisionError(str(exc)) from exc
        _audit(
            actor,
            SupervisorAction.Kind.SET_STATE,
            now=now,
            agent=agent,
            details={"state": state, "reason": presence.pause_reason},
        )
    return presence


def _user_sessions(user_id: int) -> list[str]:
    keys = []
    for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator():
        if str(session.get_decoded().get("_auth_user_id")) == str(user_id):
            keys.append(session.session_key)
    return keys


def do_log_agent_out(
    *, actor: Any, scope: Scope, agent: AgentProfile, now: datetime | None = None
) -> AgentPresence:
    """Log an agent out: offline, pending offers withdrawn (their interactions wait again), every
    login session ended and the open consoles closed. Interactions the agent is handling stay
    with them (reassign them if needed)."""
    now = now or timezone.now()
    scope.check_agent(agent)
    cancelled = do_cancel_agent_offers(agent_id=agent.pk, now=now)
    with transaction.atomic():
        presence = do_set_agent_state(agent=agent, state=AgentState.OFFLINE, now=now)
        sessions = _user_sessions(agent.user_id)
        Session.objects.filter(session_key__in=sessions).delete()
        _audit(
            actor,
            SupervisorAction.Kind.LOG_OUT,
            now=now,
            agent=agent,
            details={"sessions_ended": len(sessions), "offers_withdrawn": cancelled},
        )
        user_id = agent.user_id
        transaction.on_commit(lambda: _close_consoles(user_id))
    return presence


def _close_consoles(user_id: int) -> None:
    """Close the user's console sockets."""
    close_sockets(user_group(user_id), reason="logged_out_by_supervisor")


def do_supervisor_reassign(
    *,
    actor: Any,
    scope: Scope,
    interaction: Interaction,
    target: AgentProfile,
    now: datetime | None = None,
) -> Offer:
    """Offer an interaction to a named agent (cancelling any offer or handling in progress)."""
    now = now or timezone.now()
    scope.check_interaction(interaction)
    scope.check_agent(target)
    with transaction.atomic():
        offer = do_reassign_interaction(
            interaction_id=interaction.pk, target=target, actor=actor, now=now
        )
        _audit(
            actor,
            SupervisorAction.Kind.REASSIGN,
            now=now,
            agent=target,
            interaction=interaction,
            details={"offer_id": offer.pk},
        )
    return offer


def do_supervisor_take(
    *, actor: Any, scope: Scope, interaction: Interaction, now: datetime | None = None
) -> Offer:
    """The supervisor takes the interaction themselves (they need an agent profile)."""
    now = now or timezone.now()
    scope.check_interaction(interaction)
    me = AgentProfile.objects.filter(user=actor).first()
    if me is None or me.organisation_id != interaction.organisation_id:
        raise SupervisionError("you have no agent profile to take interactions with")
    with transaction.atomic():
        offer = do_reassign_interaction(
            interaction_id=interaction.pk, target=me, actor=actor, take=True, now=now
        )
        _audit(
            actor,
            SupervisorAction.Kind.TAKE,
            now=now,
            agent=me,
            interaction=interaction,
            details={"offer_id": offer.pk},
        )
    return offer


# --------------------------------------------------------------------------- queue settings


@dataclass(frozen=True, slots=True)
class StepSpec:
    after_seconds: int
    min_level_cap: int | None = None
    any_agent_of_team: bool = False
    overflow_to_id: int | None = None


def do_update_queue_settings(
    *,
    actor: Any,
    scope: Scope,
    queue: Queue,
    priority: int,
    sla_target_seconds: int,
    sla_target_percent: int,
    overflow_queue: Queue | None,
    steps: list[StepSpec],
    calendar: dict[str, Any] | None,
    now: datetime | None = None,
) -> Queue:
    """Change a queue's priority, SLA, overflow, escalation steps and opening hours at once.

    New interactions take the new values; waiting ones keep their answer target (it is part of
    what they were promised) but follow the new escalation steps from the next routing pass."""
    now = now or timezone.now()
    scope.check_queue(queue)
    if overflow_queue is not None and overflow_queue.pk == queue.pk:
        raise SupervisionError("a queue cannot overflow to itself")
    targets = {s.overflow_to_id for s in steps if s.overflow_to_id is not None}
    if overflow_queue is not None:
        targets.add(overflow_queue.pk)
    if Queue.objects.filter(pk__in=targets, organisation_id=queue.organisation_id).count() != len(
        targets
    ):
        raise SupervisionError("a queue overflows only to a queue of its organisation")
    seen = set()
    for step in steps:
        if step.after_seconds in seen:
            raise SupervisionError("two escalation steps at the same time")
        seen.add(step.after_seconds)
        if step.overflow_to_id == queue.pk:
            raise SupervisionError("a queue cannot overflow to itself")
    if calendar:
        errors = calendar_errors(calendar)
        if errors:
            raise SupervisionError("; ".join(errors))
    with transaction.atomic():
        locked = Queue.objects.select_for_update().get(pk=queue.pk)
        before = {
            "priority": locked.priority,
            "sla_target_seconds": locked.sla_target_seconds,
            "sla_target_percent": locked.sla_target_percent,
            "overflow_queue": locked.overflow_queue_id,
            "steps": list(
                locked.escalation_steps.values(
                    "after_seconds", "min_level_cap", "any_agent_of_team", "overflow_to_id"
                )
            ),
        }
        locked.priority = priority
        locked.sla_target_seconds = sla_target_seconds
        locked.sla_target_percent = sla_target_percent
        locked.overflow_queue = overflow_queue
        locked.full_clean()
        locked.save()
        locked.escalation_steps.all().delete()
        EscalationStep.objects.bulk_create(
            EscalationStep(
                queue=locked,
                after_seconds=s.after_seconds,
                min_level_cap=s.min_level_cap,
                any_agent_of_team=s.any_agent_of_team,
                overflow_to_id=s.overflow_to_id,
            )
            for s in sorted(steps, key=lambda s: s.after_seconds)
        )
        if calendar:
            QueueHours.objects.update_or_create(queue=locked, defaults={"calendar": calendar})
        else:
            QueueHours.objects.filter(queue=locked).delete()
        _audit(
            actor,
            SupervisorAction.Kind.QUEUE_SETTINGS,
            now=now,
            details={
                "queue": locked.pk,
                "before": before,
                "after": {
                    "priority": priority,
                    "sla_target_seconds": sla_target_seconds,
                    "sla_target_percent": sla_target_percent,
                    "overflow_queue": overflow_queue.pk if overflow_queue else None,
                    "steps": [_step_dict(s) for s in steps],
                    "calendar": calendar or None,
                },
            },
        )
        request_routing()
    return locked


def calendar_errors(calendar: Any) -> list[str]:
    """Problems of an opening-hours calendar, checked by the flows' own validation (the same
    format as an SVI business_hours node)."""
    from flows.schema import validate_graph

    graph = {
        "start": "hours",
        "nodes": {
            "hours": {
                "type": "business_hours",
                "calendar": calendar,
                "open": "end",
                "closed": "end",
            },
            "end": {"type": "hangup"},
        },
    }
    prefix = "nodes/hours/calendar"
    return [e.replace(prefix, "hours", 1) for e in validate_graph(graph)]


def _step_dict(step: StepSpec) -> dict[str, Any]:
    return {
        "after_seconds": step.after_seconds,
        "min_level_cap": step.min_level_cap,
        "any_agent_of_team": step.any_agent_of_team,
        "overflow_to_id": step.overflow_to_id,
    }


# --------------------------------------------------------------------------- satisfaction


def do_record_satisfaction(
    *, interaction: Interaction, score: int, comment: str = "", now: datetime | None = None
) -> SatisfactionResponse:
    """The citizen's survey answer (once per interaction; a second answer is ignored)."""
    if not 1 <= score <= 5:
        raise SupervisionError("a satisfaction score is between 1 and 5")
    now = now or timezone.now()
    with transaction.atomic():
        response, created = SatisfactionResponse.objects.get_or_create(
            interaction=interaction, defaults={"score": score, "comment": comment, "at": now}
        )
        if created:
            stats.on_satisfaction(interaction=interaction, score=score)
    return response
