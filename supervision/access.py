"""Who may supervise, and what they see: the supervision pages' view of ``organisations.authz``.

The rules are authz's (nothing is decided here, only narrowed to supervision's needs):

- platform administrators (and superusers) see every organisation, or one they choose
  (``?organisation=<id>`` on the pages);
- organisation administrators see their whole organisation;
- a supervisor sees, in their organisation, the teams they supervise (``agents.Team.supervisors``),
  those teams' agents, the queues those teams serve (``Queue.team``) and the interactions in
  those queues or handled by those agents; a supervisor of no team sees nothing;
- anybody else is not a supervisor.

Supervision shows an organisation's own operations: interactions another organisation shares
(a sharing agreement) are for reading citizens' histories, not for its wallboard or reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from django.db.models import Model, QuerySet

from agents.models import AgentProfile
from configuration.models import Queue, Skill, Team
from flows.models import Flow
from interactions.models import Interaction
from organisations import authz
from organisations.authz import OutOfScope, Principal, Role
from organisations.models import Organisation

__all__ = ["OutOfScope", "Scope", "scope_for"]

M = TypeVar("M", bound=Model)

SUPERVISING_ROLES = (Role.SUPERVISOR, Role.ORG_ADMIN, Role.PLATFORM_ADMIN)


@dataclass(frozen=True, slots=True)
class Scope:
    """What one supervisor sees.

    ``organisation_id`` None: every organisation (a platform administrator who chose none);
    ``team_ids`` None: the whole organisation (administrators), else the supervised teams
    (empty: nothing at all).
    """

    principal: Principal
    organisation_id: int | None
    team_ids: frozenset[int] | None

    @property
    def everything(self) -> bool:
        """Not limited to some teams (an administrator's view of the organisation)."""
        return self.team_ids is None

    @property
    def sees_nothing(self) -> bool:
        """A supervisor of no team: no agent, queue, interaction, skill or flow."""
        return self.team_ids is not None and not self.team_ids

    @property
    def organisation_ids(self) -> list[int]:
        """The organisations this scope covers (for per-organisation event groups)."""
        if self.organisation_id is not None:
            return [self.organisation_id]
        if self.principal.is_platform_admin:
            return list(Organisation.objects.order_by("pk").values_list("pk", flat=True))
        return []

    def _narrow(self, qs: QuerySet[M]) -> QuerySet[M]:
        """authz's visible rows, within the scope's organisation (never a shared one)."""
        rows = authz.visible(self.principal, qs)
        if self.organisation_id is None:
            return rows
        path = authz.ORGANISATION_PATH[authz.label_of(qs.model)]
        return rows.filter(**{path: self.organisation_id})

    def queues(self) -> QuerySet[Queue]:
        return self._narrow(Queue.objects.all())

    def agents(self) -> QuerySet[AgentProfile]:
        return self._narrow(AgentProfile.objects.all())

    def teams(self) -> QuerySet[Team]:
        return self._narrow(Team.objects.all())

    def interactions(self) -> QuerySet[Interaction]:
        return self._narrow(Interaction.objects.all())

    def skills(self) -> QuerySet[Skill]:
        """The skills of the organisation (configuration: nothing for a supervisor of no team)."""
        return self._narrow(Skill.objects.all())

    def flows(self) -> QuerySet[Flow]:
        """The organisation's flows (the flow editor's: nothing for a supervisor of no team)."""
        return self._narrow(Flow.objects.all())

    def all_queues(self) -> QuerySet[Queue]:
        """Every queue of the organisation, e.g. as an overflow target (read only)."""
        if self.sees_nothing:
            return Queue.objects.none()
        qs = Queue.objects.all()
        if self.organisation_id is not None:
            return qs.filter(organisation_id=self.organisation_id)
        return qs if self.principal.is_platform_admin else qs.none()

    def sees_team(self, team_id: int | None) -> bool:
        return team_id is not None and self.teams().filter(pk=team_id).exists()

    def _check(self, obj: Model, what: str) -> None:
        if not authz.can_change(self.principal, obj) or (
            self.organisation_id is not None
            and getattr(obj, "organisation_id", self.organisation_id) != self.organisation_id
        ):
            raise OutOfScope(f"{what} is outside your scope")

    def check_agent(self, agent: AgentProfile) -> None:
        self._check(agent, f"agent #{agent.pk}")

    def check_queue(self, queue: Queue) -> None:
        self._check(queue, f"queue {queue.code}")

    def check_interaction(self, interaction: Interaction) -> None:
        self._check(interaction, f"interaction #{interaction.pk}")

    def check_skill(self, skill: Skill, *, agent: AgentProfile | None = None) -> None:
        """A skill of the scope's organisation (and of the agent's, when one is given)."""
        if not self.skills().filter(pk=skill.pk).exists() or (
            agent is not None and agent.organisation_id != skill.organisation_id
        ):
            raise OutOfScope(f"skill {skill.code} is outside your scope")


def scope_for(user: Any, *, organisation_id: int | None = None) -> Scope | None:
    """The user's supervision scope, or None when they are not a supervisor.

    ``organisation_id`` narrows a platform administrator's view to one organisation (others
    always see their own: asking for another one gives a scope that sees nothing of it).
    """
    principal = authz.principal_for(user)
    if principal.role not in SUPERVISING_ROLES:
        return None
    if principal.is_platform_admin:
        return Scope(principal=principal, organisation_id=organisation_id, team_ids=None)
    if organisation_id is not None and organisation_id != principal.organisation_id:
        raise OutOfScope("you supervise another organisation")
    teams = principal.team_ids if principal.role == Role.SUPERVISOR else None
    return Scope(principal=principal, organisation_id=principal.organisation_id, team_ids=teams)
