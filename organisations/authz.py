"""The one authorization layer: which rows of X may this user see, may they change this row.

Every interface asks here: REST viewsets (querysets and object checks), the Django admin
(``get_queryset``, ``has_*_permission``, form choices), console views and consumers,
supervision pages and sockets, the flow editor, exports and reports. Nothing else decides.

Who is asking is a :class:`Principal` (a user, or an integration's service token):

- **platform administrator** (superuser, or the ``platform_administrator`` group): every row of
  every organisation; the only one who manages organisations and sharing agreements;
- **organisation administrator** (``administrator`` group, member of one organisation): every
  row of their organisation, nothing of the others;
- **supervisor** (``supervisor`` group): in their organisation, the teams they supervise, those
  teams' agents and queues, the interactions in those queues or held by those agents, and the
  organisation's citizens and configuration. A supervisor of no team sees nothing;
- **agent** (``agent`` group): reads their organisation's configuration, colleagues, citizens and
  interactions ("tell us once"); changes only their own profile and presence and the
  interactions they hold;
- **service token**: its organisation's rows, read only or read-write as the token says;
- **data-protection officer** (``data_protection_officer`` group, member of one organisation):
  nothing through :func:`visible`/:func:`editable` (no console, supervision, admin or API), but
  their organisation's citizen data in the privacy pages through :func:`dpo_rows` (never through
  a sharing agreement: each organisation answers for its own citizens). The group can be added
  to another role (an administrator who is also the officer keeps both).

Reads of citizens, interactions and messages also reach an organisation that shares its data
with the user's through an active :class:`~organisations.models.SharingAgreement` (read only).

Rows are matched by their organisation through :data:`ORGANISATION_PATH` (a model missing there
is refused to everyone but platform administrators, so a new model cannot leak by omission).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from django.core.exceptions import PermissionDenied
from django.db.models import Model, Q, QuerySet

from kernel.roles import PLATFORM_ADMINISTRATOR

M = TypeVar("M", bound=Model)


class OutOfScope(PermissionDenied):
    """The row exists but is outside what this principal may see or change."""


class Role(enum.StrEnum):
    ANONYMOUS = "anonymous"
    NONE = "none"  # authenticated, but no role or no organisation: sees nothing
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    ORG_ADMIN = "org_admin"
    PLATFORM_ADMIN = "platform_admin"
    SERVICE = "service"
    DPO = "dpo"  # a data-protection officer and nothing else


@dataclass(frozen=True)
class Principal:
    role: Role
    user_id: int | None = None
    organisation_id: int | None = None
    # Teams a supervisor supervises; an agent's own team is in agent_team_id.
    team_ids: frozenset[int] = frozenset()
    agent_id: int | None = None
    # Organisations whose citizens and interactions this one may read (sharing agreements).
    shared_org_ids: frozenset[int] = frozenset()
    can_write: bool = True  # False for read-only service tokens
    token_name: str = ""
    dpo: bool = False  # in the data_protection_officer group (whatever the role)
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def is_platform_admin(self) -> bool:
        return self.role == Role.PLATFORM_ADMIN

    @property
    def is_org_admin(self) -> bool:
        return self.role in (Role.ORG_ADMIN, Role.PLATFORM_ADMIN)

    @property
    def is_supervisor(self) -> bool:
        """Supervisors and above (administrators supervise their whole organisation)."""
        return self.role in (Role.SUPERVISOR, Role.ORG_ADMIN, Role.PLATFORM_ADMIN)

    @property
    def is_dpo(self) -> bool:
        """May use the privacy pages: an officer of an organisation, or a platform
        administrator."""
        return self.is_platform_admin or (self.dpo and self.organisation_id is not None)

    @property
    def read_org_ids(self) -> frozenset[int]:
        own = frozenset({self.organisation_id}) if self.organisation_id is not None else frozenset()
        return own | self.shared_org_ids

    @classmethod
    def for_service(cls, *, organisation_id: int, write: bool, name: str = "") -> Principal:
        return cls(
            role=Role.SERVICE, organisation_id=organisation_id, can_write=write, token_name=name
        )


ANONYMOUS = Principal(role=Role.ANONYMOUS)
_CACHE_ATTR = "_cc_principal"


def principal_for(user: Any) -> Principal:
    """The principal behind a request's user (cached on the user object for the request)."""
    if isinstance(user, Principal):
        return user
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return ANONYMOUS
    cached = getattr(user, _CACHE_ATTR, None)
    if cached is not None:
        return cached
    principal = _build(user)
    setattr(user, _CACHE_ATTR, principal)
    return principal


def forget_principal(user: Any) -> None:
    """Drop the cached principal (after a change of groups, teams or membership)."""
    if hasattr(user, _CACHE_ATTR):
        delattr(user, _CACHE_ATTR)


# --------------------------------------------------------------------------- principal sources

# A principal also says which agent the user is and which teams they supervise. Agent profiles
# and teams live in apps above this one (agents, configuration): each tells authz how to find
# its part from its AppConfig.ready(), through the functions below.


@dataclass(frozen=True)
class AgentRecord:
    """What a principal needs of a user's agent profile."""

    pk: int
    organisation_id: int


# user id -> their agent profile, or None.
AgentOfUser = Callable[[int], AgentRecord | None]
# (user id, organisation id) -> the teams of that organisation the user supervises.
TeamsOfSupervisor = Callable[[int, int], frozenset[int]]


@dataclass
class _Sources:
    agent_of_user: AgentOfUser | None = None
    teams_of_supervisor: TeamsOfSupervisor | None = None


_SOURCES = _Sources()


def provide_agent_of_user(lookup: AgentOfUser) -> None:
    """Called once by the agents app when Django starts."""
    _SOURCES.agent_of_user = lookup


def provide_teams_of_supervisor(lookup: TeamsOfSupervisor) -> None:
    """Called once by the configuration app when Django starts."""
    _SOURCES.teams_of_supervisor = lookup


def _agent_of_user(user_id: int) -> AgentRecord | None:
    if _SOURCES.agent_of_user is None:
        raise RuntimeError("no agent lookup: the agents app provides it in its ready()")
    return _SOURCES.agent_of_user(user_id)


def _teams_of_supervisor(user_id: int, organisation_id: int) -> frozenset[int]:
    if _SOURCES.teams_of_supervisor is None:
        raise RuntimeError("no team lookup: the configuration app provides it in its ready()")
    return _SOURCES.teams_of_supervisor(user_id, organisation_id)


def _build(user: Any) -> Principal:
    from kernel.roles import ADMINISTRATOR, AGENT, DATA_PROTECTION_OFFICER, SUPERVISOR

    from .models import Membership, SharingAgreement

    groups = set(user.groups.values_list("name", flat=True))
    if user.is_superuser or PLATFORM_ADMINISTRATOR in groups:
        return Principal(role=Role.PLATFORM_ADMIN, user_id=user.pk)
    membership = Membership.objects.filter(user_id=user.pk).only("organisation_id").first()
    profile = _agent_of_user(user.pk)
    # The organisation a user works for: their membership's, else their agent profile's.
    if membership is not None and membership.organisation_id is not None:
        org_id: int = membership.organisation_id
    elif profile is not None:
        org_id = profile.organisation_id
    else:
        return Principal(role=Role.NONE, user_id=user.pk)
    shared = frozenset(
        SharingAgreement.objects.filter(grantee_id=org_id, revoked_at=None).values_list(
            "owner_id", flat=True
        )
    )
    common = {
        "user_id": user.pk,
        "organisation_id": org_id,
        "agent_id": profile.pk if profile else None,
        "shared_org_ids": shared,
        "dpo": DATA_PROTECTION_OFFICER in groups,
    }
    if ADMINISTRATOR in groups:
        return Principal(role=Role.ORG_ADMIN, **common)
    if SUPERVISOR in groups:
        teams = _teams_of_supervisor(user.pk, org_id)
        return Principal(role=Role.SUPERVISOR, team_ids=teams, **common)
    if AGENT in groups:
        return Principal(role=Role.AGENT, **common)
    if common["dpo"]:
        return Principal(role=Role.DPO, **common)
    return Principal(role=Role.NONE, user_id=user.pk)


# --------------------------------------------------------------------------- the registry

# model label -> lookup from the model to its organisation's id.
ORGANISATION_PATH: dict[str, str] = {
    "organisations.organisation": "pk",
    "organisations.membership": "organisation_id",
    "configuration.team": "organisation_id",
    "agents.agentprofile": "organisation_id",
    "agents.agentskill": "agent__organisation_id",
    "agents.agentpresence": "agent__organisation_id",
    "configuration.skill": "organisation_id",
    "configuration.queue": "organisation_id",
    "configuration.queueskill": "queue__organisation_id",
    "configuration.escalationstep": "queue__organisation_id",
    "routing.offer": "interaction__organisation_id",
    "routing.routingdecision": "interaction__organisation_id",
    "contacts.contact": "organisation_id",
    "contacts.contactidentity": "organisation_id",
    "contacts.case": "organisation_id",
    "contacts.contactmerge": "target__organisation_id",
    "contacts.identityremoval": "contact__organisation_id",
    "interactions.interaction": "organisation_id",
    "interactions.interactiontransition": "interaction__organisation_id",
    "interactions.message": "interaction__organisation_id",
    "channels_inbound.endpoint": "organisation_id",
    "channels_chat.chatwidget": "organisation_id",
    "channels_chat.chattopic": "widget__organisation_id",
    "channels_chat.chatsession": "widget__organisation_id",
    "channels_sms.inboundsms": "message__interaction__organisation_id",
    "channels_sms.outboundsms": "interaction__organisation_id",
    "channels_voice.call": "endpoint__organisation_id",
    "channels_voice.callevent": "call__endpoint__organisation_id",
    "channels_email.emailthreadentry": "interaction__organisation_id",
    "channels_email.emailacknowledgement": "interaction__organisation_id",
    "flows.flow": "organisation_id",
    "flows.flowversion": "flow__organisation_id",
    "flows.endpointflow": "flow__organisation_id",
    "console.wrapupcode": "organisation_id",
    "console.interactionwrapup": "interaction__organisation_id",
    "console.cannedresponse": "organisation_id",
    "supervision.skillchange": "agent__organisation_id",
    "supervision.supervisoraction": "actor__membership__organisation_id",
    "agents.agentstatechange": "agent__organisation_id",
    "supervision.satisfactionresponse": "interaction__organisation_id",
    "supervision.queuehours": "queue__organisation_id",
    "surveys.surveysettings": "queue__organisation_id",
    "surveys.surveyinvitation": "interaction__organisation_id",
    "auth.user": "membership__organisation_id",
    "apitokens.servicetoken": "organisation_id",
    "apitokens.personaltoken": "user__membership__organisation_id",
    "privacy.retentionpolicy": "organisation_id",
    "privacy.accesslog": "organisation_id",
    "publicquality.commitment": "organisation_id",
    "publicquality.followlink": "organisation_id",
    "webhooks.subscription": "organisation_id",
    "webhooks.delivery": "subscription__organisation_id",
    "webhooks.deliveryattempt": "delivery__subscription__organisation_id",
    "sso.identityprovider": "organisation_id",
    "sso.externalidentity": "provider__organisation_id",
    "sso.providersecondfactor": "provider__organisation_id",
}

# What a supervisor sees of their organisation: rows tied to their teams. Models not listed
# are organisation-wide (citizens, configuration, flows) for a supervisor of at least one team.
_AGENT_TEAM = "agent__team_id__in"
_INTERACTION_TEAMS: Callable[[str], Callable[[frozenset[int]], Q]] = lambda prefix: (  # noqa: E731
    lambda teams: (
        Q(**{f"{prefix}queue__team_id__in": teams})
        | Q(**{f"{prefix}assigned_agent__team_id__in": teams})
    )
)
TEAM_SCOPE: dict[str, Callable[[frozenset[int]], Q]] = {
    "configuration.team": lambda teams: Q(pk__in=teams),
    "agents.agentprofile": lambda teams: Q(team_id__in=teams),
    "agents.agentskill": lambda teams: Q(**{_AGENT_TEAM: teams}),
    "agents.agentpresence": lambda teams: Q(**{_AGENT_TEAM: teams}),
    "supervision.skillchange": lambda teams: Q(**{_AGENT_TEAM: teams}),
    "agents.agentstatechange": lambda teams: Q(**{_AGENT_TEAM: teams}),
    "configuration.queue": lambda teams: Q(team_id__in=teams),
    "configuration.queueskill": lambda teams: Q(queue__team_id__in=teams),
    "configuration.escalationstep": lambda teams: Q(queue__team_id__in=teams),
    "supervision.queuehours": lambda teams: Q(queue__team_id__in=teams),
    "interactions.interaction": _INTERACTION_TEAMS(""),
    "interactions.interactiontransition": _INTERACTION_TEAMS("interaction__"),
    "interactions.message": _INTERACTION_TEAMS("interaction__"),
    "routing.offer": _INTERACTION_TEAMS("interaction__"),
    "routing.routingdecision": _INTERACTION_TEAMS("interaction__"),
    "console.interactionwrapup": _INTERACTION_TEAMS("interaction__"),
    "supervision.satisfactionresponse": _INTERACTION_TEAMS("interaction__"),
    "surveys.surveysettings": lambda teams: Q(queue__team_id__in=teams),
    "surveys.surveyinvitation": _INTERACTION_TEAMS("interaction__"),
}

# Rows another organisation may read through a sharing agreement (never change).
SHAREABLE = {
    "contacts.contact",
    "contacts.contactidentity",
    "contacts.case",
    "interactions.interaction",
    "interactions.interactiontransition",
    "interactions.message",
}

# What an agent may change: only their own rows (None: nothing of that model).
AGENT_OWN: dict[str, Callable[[Principal], Q] | None] = {
    "agents.agentprofile": lambda p: Q(pk=p.agent_id),
    "agents.agentpresence": lambda p: Q(agent_id=p.agent_id),
    "interactions.interaction": lambda p: Q(assigned_agent_id=p.agent_id),
    "interactions.message": lambda p: Q(interaction__assigned_agent_id=p.agent_id),
    "routing.offer": lambda p: Q(agent_id=p.agent_id),
    "console.interactionwrapup": lambda p: Q(interaction__assigned_agent_id=p.agent_id),
    # Citizens are the organisation's: an agent corrects the record of anyone who wrote.
    "contacts.contact": lambda p: Q(),
    "contacts.contactidentity": lambda p: Q(),
    "contacts.case": lambda p: Q(),
}

# Models only platform administrators see at all (whatever their organisation path says).
PLATFORM_ONLY = {"organisations.sharingagreement"}
# Models only organisation administrators (and platform ones) see in their organisation.
ADMIN_ONLY = {
    "privacy.retentionpolicy",
    "privacy.accesslog",
    "organisations.membership",
    "auth.user",
    "supervision.supervisoraction",
    "apitokens.servicetoken",
    "apitokens.personaltoken",
    "sso.identityprovider",
    "sso.externalidentity",
    "sso.providersecondfactor",
    "webhooks.subscription",
    "webhooks.delivery",
    "webhooks.deliveryattempt",
}


def label_of(model: type[Model]) -> str:
    return model._meta.label_lower


def is_registered(model: type[Model]) -> bool:
    label = label_of(model)
    return label in ORGANISATION_PATH or label in PLATFORM_ONLY


def _queryset(model_or_qs: type[M] | QuerySet[M]) -> QuerySet[M]:
    if isinstance(model_or_qs, QuerySet):
        return model_or_qs
    return model_or_qs._default_manager.all()


def _org_q(label: str, org_ids: frozenset[int]) -> Q:
    return (
        Q(**{f"{ORGANISATION_PATH[label].removesuffix('_id')}__in": org_ids})
        if org_ids
        else Q(pk__in=[])
    )


def visible(who: Any, model_or_qs: type[M] | QuerySet[M]) -> QuerySet[M]:
    """The rows of this model (or within this queryset) ``who`` may read."""
    p = principal_for(who)
    qs = _queryset(model_or_qs)
    label = label_of(qs.model)
    if p.is_platform_admin:
        return qs
    if label in PLATFORM_ONLY or label not in ORGANISATION_PATH or p.organisation_id is None:
        return qs.none()
    if label in ADMIN_ONLY and p.role not in (Role.ORG_ADMIN, Role.SERVICE):
        if label == "auth.user" and p.role in (Role.AGENT, Role.SUPERVISOR):
            return qs.filter(pk=p.user_id)
        return qs.none()
    own = frozenset({p.organisation_id})
    if p.role == Role.SUPERVISOR:
        if not p.team_ids:
            return qs.none()
        scope = _org_q(label, own)
        if label in TEAM_SCOPE:
            scope &= TEAM_SCOPE[label](p.team_ids)
        if label in SHAREABLE and p.shared_org_ids:
            scope |= _org_q(label, p.shared_org_ids)
        return qs.filter(scope).distinct() if label in TEAM_SCOPE else qs.filter(scope)
    if p.role in (Role.AGENT, Role.ORG_ADMIN, Role.SERVICE):
        orgs = p.read_org_ids if label in SHAREABLE else own
        return qs.filter(_org_q(label, orgs))
    return qs.none()


def editable(who: Any, model_or_qs: type[M] | QuerySet[M]) -> QuerySet[M]:
    """The rows of this model ``who`` may change or delete (never through a share)."""
    p = principal_for(who)
    qs = _queryset(model_or_qs)
    label = label_of(qs.model)
    if p.is_platform_admin:
        return qs
    if not p.can_write or p.organisation_id is None:
        return qs.none()
    own = frozenset({p.organisation_id})
    if label in PLATFORM_ONLY or (label == "organisations.organisation" and not p.is_org_admin):
        return qs.none()
    if p.role == Role.AGENT:
        rule = AGENT_OWN.get(label)
        if rule is None or label not in ORGANISATION_PATH:
            return qs.none()
        return qs.filter(_org_q(label, own) & rule(p))
    base = visible(p, qs)
    if label in SHAREABLE:
        base = base.filter(_org_q(label, own))
    return base


def dpo_rows(who: Any, model_or_qs: type[M] | QuerySet[M]) -> QuerySet[M]:
    """The rows a data-protection officer may read, export, rectify and erase: their own
    organisation's (every organisation's for a platform administrator), nobody else's."""
    p = principal_for(who)
    qs = _queryset(model_or_qs)
    if p.is_platform_admin:
        return qs
    label = label_of(qs.model)
    if not p.is_dpo or label not in ORGANISATION_PATH or p.organisation_id is None:
        return qs.none()
    return qs.filter(_org_q(label, frozenset({p.organisation_id})))


def can_view(who: Any, obj: Model) -> bool:
    return visible(who, type(obj)).filter(pk=obj.pk).exists()


def can_change(who: Any, obj: Model) -> bool:
    return editable(who, type(obj)).filter(pk=obj.pk).exists()


def check_view(who: Any, obj: Model) -> None:
    if not can_view(who, obj):
        raise OutOfScope(f"{label_of(type(obj))} #{obj.pk} is outside your scope")


def check_change(who: Any, obj: Model) -> None:
    if not can_change(who, obj):
        raise OutOfScope(f"you may not change {label_of(type(obj))} #{obj.pk}")


def organisation_for_new(who: Any, requested: int | None = None) -> int:
    """The organisation a record created by ``who`` goes into.

    Anyone but a platform administrator creates in their own organisation only (asking for
    another is refused); a platform administrator must say which (or there is only one).
    """
    from .models import sole_organisation

    p = principal_for(who)
    if p.is_platform_admin:
        return requested if requested is not None else sole_organisation()
    if p.organisation_id is None or not p.can_write:
        raise OutOfScope("you belong to no organisation")
    if requested is not None and requested != p.organisation_id:
        raise OutOfScope("you may only create records in your own organisation")
    return p.organisation_id


def may_see_private_number(who: Any, agent: Any) -> bool:
    """A teleworker's private number: themselves, their team's supervisors, their
    organisation's administrators (and platform administrators)."""
    p = principal_for(who)
    if p.is_platform_admin:
        return True
    if p.organisation_id != agent.organisation_id:
        return False
    if p.role == Role.ORG_ADMIN or p.agent_id == agent.pk:
        return True
    return p.role == Role.SUPERVISOR and agent.team_id in p.team_ids
