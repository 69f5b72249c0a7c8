"""Who may supervise, and what they see: supervisors can be scoped to teams.

- administrators (and superusers) see everything;
- a supervisor who supervises one or more teams (``agents.Team.supervisors``) sees those teams'
  agents, the queues those teams serve (``Queue.team``) and the interactions in those queues
  or handled by those agents;
- a supervisor who supervises no team is a centre-wide supervisor and sees everything;
- anybody else is not a supervisor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Q, QuerySet

from agents.models import AgentProfile, Team
from contactcentre.roles import ADMINISTRATOR, SUPERVISOR
from interactions.models import Interaction
from routing.models import Queue


class OutOfScope(PermissionError):
    """The supervisor asked about an agent, queue or interaction outside their teams."""


@dataclass(frozen=True, slots=True)
class Scope:
    """What one supervisor sees: ``team_ids`` None means everything."""

    team_ids: frozenset[int] | None

    @property
    def everything(self) -> bool:
        return self.team_ids is None

    def queues(self) -> QuerySet[Queue]:
        qs = Queue.objects.all()
        return qs if self.team_ids is None else qs.filter(team_id__in=self.team_ids)

    def agents(self) -> QuerySet[AgentProfile]:
        qs = AgentProfile.objects.all()
        return qs if self.team_ids is None else qs.filter(team_id__in=self.team_ids)

    def teams(self) -> QuerySet[Team]:
        qs = Team.objects.all()
        return qs if self.team_ids is None else qs.filter(pk__in=self.team_ids)

    def interactions(self) -> QuerySet[Interaction]:
        qs = Interaction.objects.all()
        if self.team_ids is None:
            return qs
        return qs.filter(
            Q(queue__team_id__in=self.team_ids) | Q(assigned_agent__team_id__in=self.team_ids)
        )

    def sees_team(self, team_id: int | None) -> bool:
        return self.team_ids is None or team_id in self.team_ids

    def check_agent(self, agent: AgentProfile) -> None:
        if not self.sees_team(agent.team_id):
            raise OutOfScope(f"agent #{agent.pk} is not in your teams")

    def check_queue(self, queue: Queue) -> None:
        if not self.sees_team(queue.team_id):
            raise OutOfScope(f"queue {queue.code} is not served by your teams")

    def check_interaction(self, interaction: Interaction) -> None:
        if self.team_ids is None:
            return
        queue_team = interaction.queue.team_id if interaction.queue_id else None  # type: ignore[union-attr]
        agent_team = (
            interaction.assigned_agent.team_id  # type: ignore[union-attr]
            if interaction.assigned_agent_id
            else None
        )
        if queue_team not in self.team_ids and agent_team not in self.team_ids:
            raise OutOfScope(f"interaction #{interaction.pk} is not in your teams")


EVERYTHING = Scope(team_ids=None)


def scope_for(user: Any) -> Scope | None:
    """The user's supervision scope, or None when they are not a supervisor."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return None
    if user.is_superuser:
        return EVERYTHING
    groups = set(user.groups.values_list("name", flat=True))
    if ADMINISTRATOR in groups:
        return EVERYTHING
    if SUPERVISOR not in groups:
        return None
    teams = frozenset(Team.objects.filter(supervisors=user).values_list("pk", flat=True))
    return Scope(team_ids=teams or None)
