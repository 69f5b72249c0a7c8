"""Give every existing record its organisation.

Before organisations existed, an installation was one data controller, so its data goes to one
organisation ("Mon organisation", renamed in the admin) and nothing is split. The one exception
is the demo (``manage.py demo``: a CAF, a mairie and a préfecture sharing one centre, with a team
each): there each team becomes its own organisation, and what several of them used (a skill,
a citizen who wrote to two bodies, the wrap-up codes) is copied into each, so no organisation
keeps a link to another's data.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.db import migrations
from django.utils.text import slugify

DEMO_MARKER_SKILL = "caf-allocations"


def _clone(model: Any, row: Any, **changes: Any) -> Any:
    data = {
        f.attname: getattr(row, f.attname)
        for f in model._meta.concrete_fields
        if not f.primary_key
    }
    data.update(changes)
    return model.objects.create(**data)


def assign(apps: Any, schema_editor: Any) -> None:
    Organisation = apps.get_model("organisations", "Organisation")
    Membership = apps.get_model("organisations", "Membership")
    Team = apps.get_model("agents", "Team")
    AgentProfile = apps.get_model("agents", "AgentProfile")
    AgentSkill = apps.get_model("agents", "AgentSkill")
    Skill = apps.get_model("routing", "Skill")
    Queue = apps.get_model("routing", "Queue")
    QueueSkill = apps.get_model("routing", "QueueSkill")
    Endpoint = apps.get_model("channels_inbound", "Endpoint")
    ChatWidget = apps.get_model("channels_chat", "ChatWidget")
    Flow = apps.get_model("flows", "Flow")
    EndpointFlow = apps.get_model("flows", "EndpointFlow")
    Contact = apps.get_model("contacts", "Contact")
    ContactIdentity = apps.get_model("contacts", "ContactIdentity")
    Case = apps.get_model("contacts", "Case")
    Interaction = apps.get_model("interactions", "Interaction")
    WrapUpCode = apps.get_model("console", "WrapUpCode")
    InteractionWrapUp = apps.get_model("console", "InteractionWrapUp")
    CannedResponse = apps.get_model("console", "CannedResponse")
    SkillChange = apps.get_model("supervision", "SkillChange")
    User = apps.get_model("auth", "User")

    owned = [Team, AgentProfile, Skill, Queue, Endpoint, ChatWidget, Flow, Contact, Interaction]
    owned += [WrapUpCode, CannedResponse]
    if not any(m.objects.exists() for m in owned) and not User.objects.exists():
        return  # a fresh database: the first organisation is created with the first record

    default: list[Any] = []

    def default_org() -> Any:
        if not default:
            org, _ = Organisation.objects.get_or_create(
                slug="mon-organisation", defaults={"name": "Mon organisation"}
            )
            default.append(org)
        return default[0]

    # Teams: one organisation per team in the demo, one organisation for everything otherwise.
    per_team = Skill.objects.filter(code=DEMO_MARKER_SKILL).exists() and Team.objects.exists()
    team_org: dict[int, int] = {}
    for team in Team.objects.order_by("pk"):
        if per_team:
            slug = slugify(team.name)[:50] or f"organisation-{team.pk}"
            org, _ = Organisation.objects.get_or_create(slug=slug, defaults={"name": team.name})
        else:
            org = default_org()
        team.organisation_id = org.pk
        team.save(update_fields=["organisation"])
        team_org[team.pk] = org.pk
    if not per_team or not team_org:
        default_org()
    fallback = default[0].pk if default else next(iter(team_org.values()))

    queue_org: dict[int, int] = {}
    for queue in Queue.objects.order_by("pk"):
        queue.organisation_id = team_org.get(queue.team_id, fallback)
        queue.save(update_fields=["organisation"])
        queue_org[queue.pk] = queue.organisation_id
    for queue in Queue.objects.exclude(overflow_queue=None):
        if queue_org.get(queue.overflow_queue_id) != queue.organisation_id:
            queue.overflow_queue_id = None  # an overflow into another body's queue is dropped
            queue.save(update_fields=["overflow_queue"])

    agent_org: dict[int, int] = {}
    for agent in AgentProfile.objects.order_by("pk"):
        agent.organisation_id = team_org.get(agent.team_id, fallback)
        agent.save(update_fields=["organisation"])
        agent_org[agent.pk] = agent.organisation_id

    # Memberships: agents with their profile's organisation, supervisors with their teams',
    # other staff with the default one; superusers are platform administrators (none).
    for user in User.objects.filter(is_superuser=False).order_by("pk"):
        profile = AgentProfile.objects.filter(user_id=user.pk).first()
        if profile is not None:
            org_id = profile.organisation_id
        else:
            team = Team.objects.filter(supervisors=user).order_by("pk").first()
            org_id = team.organisation_id if team else fallback
        Membership.objects.update_or_create(user_id=user.pk, defaults={"organisation_id": org_id})

    # Skills: each organisation that uses one (queues, agents) gets its own copy.
    for skill in Skill.objects.order_by("pk"):
        users: set[int] = set()
        users.update(queue_org[qs.queue_id] for qs in QueueSkill.objects.filter(skill=skill))
        users.update(agent_org[a.agent_id] for a in AgentSkill.objects.filter(skill=skill))
        orgs = sorted(users) or [fallback]
        skill.organisation_id = orgs[0]
        skill.save(update_fields=["organisation"])
        for org_id in orgs[1:]:
            copy = _clone(Skill, skill, organisation_id=org_id)
            QueueSkill.objects.filter(
                skill=skill, queue__in=[q for q, o in queue_org.items() if o == org_id]
            ).update(skill=copy)
            agents = [a for a, o in agent_org.items() if o == org_id]
            AgentSkill.objects.filter(skill=skill, agent__in=agents).update(skill=copy)
            SkillChange.objects.filter(skill=skill, agent__in=agents).update(skill=copy)

    endpoint_org: dict[int, int] = {}
    for endpoint in Endpoint.objects.order_by("pk"):
        endpoint.organisation_id = queue_org.get(endpoint.queue_id, fallback)
        endpoint.save(update_fields=["organisation"])
        endpoint_org[endpoint.pk] = endpoint.organisation_id
    for widget in ChatWidget.objects.all():
        widget.organisation_id = endpoint_org.get(widget.endpoint_id, fallback)
        widget.save(update_fields=["organisation"])
    for flow in Flow.objects.order_by("pk"):
        bound = [endpoint_org[b.endpoint_id] for b in EndpointFlow.objects.filter(flow=flow)]
        orgs = sorted(set(bound)) or [fallback]
        flow.organisation_id = orgs[0]
        flow.save(update_fields=["organisation"])
        for org_id in orgs[1:]:
            copy = _clone(Flow, flow, organisation_id=org_id, published_version_id=None)
            copy.name = f"{flow.name} ({org_id})"
            copy.save(update_fields=["name"])
            EndpointFlow.objects.filter(
                flow=flow, endpoint__in=[e for e, o in endpoint_org.items() if o == org_id]
            ).update(flow=copy)

    # Interactions, then citizens: a citizen who wrote to several bodies becomes one record per
    # body, each with the identities and that body's interactions.
    for interaction in Interaction.objects.order_by("pk").iterator():
        org_id = queue_org.get(interaction.queue_id) or agent_org.get(
            interaction.assigned_agent_id or -1
        )
        interaction.organisation_id = org_id or fallback
        interaction.save(update_fields=["organisation"])
    contact_orgs: dict[int, set[int]] = defaultdict(set)
    for contact_id, org_id in Interaction.objects.exclude(contact=None).values_list(
        "contact_id", "organisation_id"
    ):
        contact_orgs[contact_id].add(org_id)
    for contact in Contact.objects.filter(merged_into=None).order_by("pk"):
        orgs = sorted(contact_orgs.get(contact.pk, set())) or [fallback]
        _place_contact(apps, contact, orgs)
    for contact in Contact.objects.exclude(merged_into=None).order_by("pk"):
        target = Contact.objects.get(pk=contact.merged_into_id)
        while target.organisation_id is None and target.merged_into_id:
            target = Contact.objects.get(pk=target.merged_into_id)
        _place_contact(apps, contact, [target.organisation_id or fallback], clone=False)
    for case in Case.objects.all():
        case.organisation_id = Contact.objects.get(pk=case.contact_id).organisation_id
        case.save(update_fields=["organisation"])

    # Wrap-up codes and canned responses shared by every body: one copy per organisation.
    all_orgs = list(Organisation.objects.order_by("pk").values_list("pk", flat=True))
    for code in WrapUpCode.objects.order_by("pk"):
        code.organisation_id = all_orgs[0]
        code.save(update_fields=["organisation"])
        for org_id in all_orgs[1:]:
            copy = _clone(WrapUpCode, code, organisation_id=org_id)
            InteractionWrapUp.objects.filter(
                code=code, interaction__organisation_id=org_id
            ).update(code=copy)
    for canned in CannedResponse.objects.order_by("pk"):
        if canned.queue_id is not None:
            canned.organisation_id = queue_org.get(canned.queue_id, fallback)
            canned.save(update_fields=["organisation"])
            continue
        canned.organisation_id = all_orgs[0]
        canned.save(update_fields=["organisation"])
        for org_id in all_orgs[1:]:
            _clone(CannedResponse, canned, organisation_id=org_id)


def _place_contact(apps: Any, contact: Any, orgs: list[int], *, clone: bool = True) -> None:
    Contact = apps.get_model("contacts", "Contact")
    ContactIdentity = apps.get_model("contacts", "ContactIdentity")
    Interaction = apps.get_model("interactions", "Interaction")
    contact.organisation_id = orgs[0]
    contact.save(update_fields=["organisation"])
    ContactIdentity.objects.filter(contact=contact).update(organisation_id=orgs[0])
    if not clone:
        return
    for org_id in orgs[1:]:
        copy = _clone(Contact, contact, organisation_id=org_id)
        for identity in ContactIdentity.objects.filter(contact=contact):
            _clone(ContactIdentity, identity, contact_id=copy.pk, organisation_id=org_id)
        Interaction.objects.filter(contact=contact, organisation_id=org_id).update(contact=copy)


class Migration(migrations.Migration):
    dependencies = [
        ("organisations", "0001_initial"),
        ("agents", "0004_agentprofile_organisation_team_organisation_and_more"),
        ("channels_chat", "0002_chatwidget_organisation"),
        ("channels_inbound", "0002_endpoint_organisation"),
        ("console", "0002_cannedresponse_organisation_wrapupcode_organisation_and_more"),
        ("contacts", "0003_remove_contactidentity_contact_identity_unique_and_more"),
        ("flows", "0002_flow_organisation_alter_flow_name_and_more"),
        ("interactions", "0004_interaction_organisation"),
        ("routing", "0003_queue_organisation_skill_organisation_and_more"),
        ("supervision", "0001_initial"),
    ]

    operations = [migrations.RunPython(assign, migrations.RunPython.noop)]
