"""The three roles, as Django groups with model permissions (kept in sync after every migrate).

- agent: reads the configuration, works on citizens, interactions and messages;
- supervisor: everything an agent does, plus agents' skills, queues, escalation steps and teams;
- administrator: every permission of the contact centre's apps, and user accounts.

Supervisors and administrators also use the Django admin (``is_staff``).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group, Permission
from django.db.models import Q

AGENT = "agent"
SUPERVISOR = "supervisor"
ADMINISTRATOR = "administrator"
# Administers every organisation (as superusers do); see organisations/authz.py.
PLATFORM_ADMINISTRATOR = "platform_administrator"
# An organisation's data-protection officer: citizens' rights, retention and the access log of
# their organisation, nothing else (privacy/, docs/quality-and-privacy.md).
DATA_PROTECTION_OFFICER = "data_protection_officer"
ROLES = (AGENT, SUPERVISOR, ADMINISTRATOR, PLATFORM_ADMINISTRATOR, DATA_PROTECTION_OFFICER)

PROJECT_APPS = (
    "organisations",
    "configuration",
    "contacts",
    "interactions",
    "routing",
    "agents",
    "channels_inbound",
    "channels_sms",
    "channels_voice",
    "channels_email",
    "channels_chat",
    "flows",
    "console",
    "supervision",
    "publicquality",
    "surveys",
    "webhooks",
    "sso",
)

# (app_label, model, actions)
AGENT_PERMISSIONS: list[tuple[str, str, tuple[str, ...]]] = [
    ("contacts", "contact", ("view", "add", "change")),
    ("contacts", "contactidentity", ("view", "add", "change")),
    ("contacts", "case", ("view", "add", "change")),
    ("interactions", "interaction", ("view", "add", "change")),
    ("interactions", "interactiontransition", ("view",)),
    ("interactions", "message", ("view", "add")),
    ("configuration", "skill", ("view",)),
    ("configuration", "queue", ("view",)),
    ("configuration", "queueskill", ("view",)),
    ("configuration", "escalationstep", ("view",)),
    ("configuration", "team", ("view",)),
    ("agents", "agentprofile", ("view",)),
    ("agents", "agentskill", ("view",)),
    ("routing", "offer", ("view",)),
]
SUPERVISOR_EXTRA: list[tuple[str, str, tuple[str, ...]]] = [
    ("contacts", "contactmerge", ("view", "add")),
    ("contacts", "identityremoval", ("view",)),
    ("configuration", "skill", ("add", "change")),
    ("configuration", "queue", ("add", "change")),
    ("configuration", "queueskill", ("add", "change", "delete")),
    ("configuration", "escalationstep", ("add", "change", "delete")),
    ("configuration", "team", ("change",)),
    ("agents", "agentprofile", ("change",)),
    ("agents", "agentskill", ("add", "change", "delete")),
    ("agents", "agentpresence", ("view", "change")),
    ("routing", "routingdecision", ("view",)),
    ("flows", "flow", ("view", "add", "change")),
    ("flows", "flowversion", ("view", "add", "change")),
    ("flows", "endpointflow", ("view", "add", "change", "delete")),
    ("surveys", "surveysettings", ("view", "add", "change")),
]


def _permissions(spec: list[tuple[str, str, tuple[str, ...]]]) -> list[Permission]:
    query = Q(pk__in=[])
    for app_label, model, actions in spec:
        query |= Q(
            content_type__app_label=app_label,
            content_type__model=model,
            codename__in=[f"{action}_{model}" for action in actions],
        )
    return list(Permission.objects.filter(query))


def ensure_roles(**_kwargs: Any) -> None:
    """Create or refresh the role groups (connected to ``post_migrate``; idempotent)."""
    agent, _ = Group.objects.get_or_create(name=AGENT)
    agent.permissions.set(_permissions(AGENT_PERMISSIONS))
    supervisor, _ = Group.objects.get_or_create(name=SUPERVISOR)
    supervisor.permissions.set(_permissions(AGENT_PERMISSIONS + SUPERVISOR_EXTRA))
    everything = Permission.objects.filter(
        Q(content_type__app_label__in=PROJECT_APPS)
        | Q(content_type__app_label__in=("auth", "apitokens"))
    )
    # What an organisation administrator may do is further limited to their organisation by
    # organisations/authz.py (and sharing agreements to platform administrators).
    for name in (ADMINISTRATOR, PLATFORM_ADMINISTRATOR):
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.set(everything)
    # No model permission: the officer works in privacy/'s pages only (organisations/authz.py).
    Group.objects.get_or_create(name=DATA_PROTECTION_OFFICER)
