"""Writes on agent profiles and teams: the profile's settings, skill levels, who supervises a
team. Each takes the acting user and checks their scope through :mod:`organisations.authz`
(raising :class:`~organisations.authz.OutOfScope`), whatever interface calls it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction

from configuration.models import Skill, Team
from organisations import authz
from organisations.authz import OutOfScope, Role

from .models import AgentProfile, AgentSkill

# What an agent's profile update may change (the user, organisation and skills go elsewhere).
PROFILE_FIELDS = frozenset(
    {
        "team",
        "languages",
        "capacity_voice",
        "capacity_chat",
        "capacity_email",
        "capacity_sms",
        "voice_exclusive",
        "remote",
        "telework_phone",
    }
)
# Teleworking settings: only someone who may see the private number changes them.
TELEWORK_FIELDS = frozenset({"remote", "telework_phone"})


def do_update_agent_profile(
    *, actor: Any, agent: AgentProfile, changes: dict[str, Any]
) -> AgentProfile:
    """Change ``agent``'s profile settings.

    Refused (:class:`OutOfScope`) when the actor may not change this agent (another team or
    organisation), when the teleworking flag or private number changes and the actor is not the
    agent or one of their supervisors, and when the agent is moved to a team the actor may not
    change.
    """
    unknown = set(changes) - PROFILE_FIELDS
    if unknown:
        raise ValueError(f"not a profile setting: {', '.join(sorted(unknown))}")
    with transaction.atomic():
        locked = AgentProfile.objects.select_for_update().filter(pk=agent.pk).first()
        if locked is None:
            raise OutOfScope(f"no agent #{agent.pk}")
        authz.check_change(actor, locked)
        changed = {name for name, value in changes.items() if getattr(locked, name) != value}
        if changed & TELEWORK_FIELDS and not authz.may_see_private_number(actor, locked):
            raise OutOfScope("only the agent and their supervisors change their teleworking")
        if "team" in changed:
            team = changes["team"]
            if team is not None and not authz.can_change(actor, team):
                raise OutOfScope(f"you may not move an agent into team #{team.pk}")
            if team is None and authz.principal_for(actor).role == Role.SUPERVISOR:
                raise OutOfScope("a supervisor moves agents between their own teams only")
        for name in changed:
            setattr(locked, name, changes[name])
        if changed:
            locked.save(update_fields=sorted(changed))
    return locked


def do_set_agent_skills(
    *, actor: Any, agent: AgentProfile, levels: Iterable[tuple[Skill, int]]
) -> AgentProfile:
    """Replace ``agent``'s skills and levels (supervisors of the agent's team, administrators).

    Every skill must be one of the agent's organisation (skill codes are per organisation)."""
    wanted = list(levels)
    if authz.principal_for(actor).role == Role.AGENT:
        raise OutOfScope("agents do not change skills")
    for skill, level in wanted:
        if skill.organisation_id != agent.organisation_id:
            raise OutOfScope(f"skill {skill.code!r} belongs to another organisation")
        if not 1 <= level <= 5:
            raise ValueError("a level is between 1 and 5")
    with transaction.atomic():
        locked = AgentProfile.objects.select_for_update().filter(pk=agent.pk).first()
        if locked is None:
            raise OutOfScope(f"no agent #{agent.pk}")
        authz.check_change(actor, locked)
        locked.agent_skills.all().delete()
        AgentSkill.objects.bulk_create(
            AgentSkill(agent=locked, skill=skill, level=level) for skill, level in wanted
        )
    return locked


def do_update_team(
    *, actor: Any, team: Team, name: str | None = None, supervisors: Iterable[Any] | None = None
) -> Team:
    """Rename a team and/or set who supervises it.

    Who supervises a team is the organisation administrators' (and platform administrators')
    decision only: nobody widens their own scope, and a supervisor cannot empty their team's
    supervisors either. Supervisors must be users of the team's organisation."""
    with transaction.atomic():
        locked = Team.objects.select_for_update().filter(pk=team.pk).first()
        if locked is None:
            raise OutOfScope(f"no team #{team.pk}")
        authz.check_change(actor, locked)
        if supervisors is not None:
            wanted = {user.pk for user in supervisors}
            current = set(locked.supervisors.values_list("pk", flat=True))
            if wanted != current:
                if not authz.principal_for(actor).is_org_admin:
                    raise OutOfScope("only administrators change who supervises a team")
                members = get_user_model().objects.filter(
                    pk__in=wanted, membership__organisation_id=locked.organisation_id
                )
                if members.count() != len(wanted):
                    raise OutOfScope("a supervisor must belong to the team's organisation")
                locked.supervisors.set(wanted)
        if name is not None and name != locked.name:
            locked.name = name
            locked.save(update_fields=["name"])
    return locked
