"""The Django admin through the authorization layer: two organisations, A (the CAF) and B (a
préfecture), each with its teams, agents, queues, citizens, interactions, flows, widgets...

An administrator of A goes through every page of the admin (every registered model, so a model
added later is in the test) and never meets a row of B: not in the lists, not in the filters,
not in the choices of a form; B's rows are "not found" and posting to them changes nothing.
Within an organisation, supervisors do not change who supervises a team, administrators do not
make superusers, and skill changes are audited.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django import forms
from django.contrib import admin
from django.contrib.auth.models import Group
from django.forms.models import model_to_dict
from django.test import Client
from django.utils import timezone

pytestmark = pytest.mark.django_db

MARKER = "Zebulon"  # in every name of organisation B, never in A's


def verified(client: Client, user: Any) -> Client:
    """Logged in, second factor passed (as tests/integration/test_csp.py does, without giving
    the user a membership: here each user's organisation is set up explicitly)."""
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return client


def _build(org: Any, tag: str, make_user: Callable[..., Any]) -> dict[str, Any]:
    """One organisation's data: a row of (nearly) every model the admin shows."""
    from agents.models import AgentProfile, AgentSkill
    from channels_inbound.chat.models import ChatTopic, ChatWidget
    from channels_inbound.models import Endpoint
    from configuration.models import EscalationStep, Queue, QueueSkill, Skill, Team
    from console.models import CannedResponse, InteractionWrapUp, WrapUpCode
    from contacts.models import Case, Contact, ContactIdentity, IdentityRemoval
    from flows.models import EndpointFlow, Flow, FlowVersion
    from interactions.models import Interaction, InteractionTransition, Message
    from organisations.models import Membership

    slug = org.slug
    team = Team.objects.create(organisation=org, name=f"{tag} team")
    other_team = Team.objects.create(organisation=org, name=f"{tag} back office")
    skill = Skill.objects.create(organisation=org, code=f"{slug}-rsa", name=f"{tag} RSA")
    queue = Queue.objects.create(organisation=org, code=f"{slug}-q", name=f"{tag} queue", team=team)
    QueueSkill.objects.create(queue=queue, skill=skill, min_level=1)
    EscalationStep.objects.create(queue=queue, after_seconds=30, min_level_cap=1)

    def member(username: str, role: str, **extra: Any) -> Any:
        user = make_user(username, role, profile=False, first_name=f"{tag} {username}", **extra)
        Membership.objects.create(user=user, organisation=org)
        return user

    administrator = member(f"{slug}-admin", "administrator")
    supervisor = member(f"{slug}-sup", "supervisor")
    other_supervisor = member(f"{slug}-sup2", "supervisor")
    team.supervisors.add(supervisor)
    other_team.supervisors.add(other_supervisor)
    agent_user = member(f"{slug}-agent", "agent")
    agent = AgentProfile.objects.create(
        user=agent_user, team=team, remote=True, telework_phone="+33612345678", languages=["fr"]
    )
    AgentSkill.objects.create(agent=agent, skill=skill, level=3)
    AgentProfile.objects.create(user=supervisor, team=team, languages=["fr"])

    endpoint = Endpoint.objects.create(
        organisation=org, channel="chat", address=f"{slug}-chat", name=f"{tag} chat", queue=queue
    )
    widget = ChatWidget.objects.create(organisation=org, endpoint=endpoint, title=f"{tag} widget")
    ChatTopic.objects.create(widget=widget, label=f"{tag} topic", skills={})
    flow = Flow.objects.create(organisation=org, name=f"{tag} flow")
    version = FlowVersion.objects.create(flow=flow, number=1, graph={}, note=f"{tag} draft")
    sms = Endpoint.objects.create(
        organisation=org,
        channel="sms",
        address=f"+3361{org.pk:07d}",
        name=f"{tag} SMS",
        queue=queue,
    )
    EndpointFlow.objects.create(endpoint=sms, flow=flow)
    code = WrapUpCode.objects.create(organisation=org, code=f"{slug}-done", label=f"{tag} done")
    CannedResponse.objects.create(
        organisation=org, title=f"{tag} hello", text=f"{tag} bonjour", queue=queue
    )
    contact = Contact.objects.create(organisation=org, display_name=f"{tag} citizen")
    identity = ContactIdentity.objects.create(
        contact=contact, kind="email", value=f"{slug}@example.fr"
    )
    case = Case.objects.create(contact=contact, reference=f"{slug}-1", subject=f"{tag} case")
    IdentityRemoval.objects.create(contact=contact, kind="phone", value="+33699999999")
    interaction = Interaction.objects.create(
        channel="email", contact=contact, case=case, queue=queue, subject=f"{tag} subject"
    )
    Message.objects.create(
        interaction=interaction, channel="email", direction="in", text=f"{tag} message"
    )
    InteractionTransition.objects.create(
        interaction=interaction, from_status="new", to_status="queued", at=timezone.now()
    )
    InteractionWrapUp.objects.create(
        interaction=interaction, code=code, agent=agent, created_at=timezone.now()
    )
    return {
        "org": org,
        "team": team,
        "other_team": other_team,
        "skill": skill,
        "queue": queue,
        "administrator": administrator,
        "supervisor": supervisor,
        "other_supervisor": other_supervisor,
        "agent": agent,
        "agent_user": agent_user,
        "contact": contact,
        "identity": identity,
        "interaction": interaction,
        "flow": flow,
        "version": version,
        "widget": widget,
    }


@pytest.fixture
def two(make_user: Callable[..., Any]) -> dict[str, dict[str, Any]]:
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from organisations.models import Organisation

    a = Organisation.objects.create(name="CAF du Rhône", slug="caf")
    b = Organisation.objects.create(name=f"Préfecture {MARKER}", slug="pref")
    data = {"A": _build(a, "Alpha", make_user), "B": _build(b, MARKER, make_user)}
    TOTPDevice.objects.create(user=data["B"]["agent_user"], name=f"{MARKER} phone")
    return data


def _rows_of_b(model: Any, b_org_id: int) -> set[Any]:
    """The pks of ``model`` belonging to organisation B (empty for models outside the layer)."""
    from organisations import authz

    label = model._meta.label_lower
    path: str | None = "user__membership__organisation_id"
    if label != "otp_totp.totpdevice":
        path = authz.ORGANISATION_PATH.get(label)
    if path is None:
        return set()
    return set(model._default_manager.filter(**{path: b_org_id}).values_list("pk", flat=True))


def _url(model: Any, view: str, pk: Any = None) -> str:
    base = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
    return {"changelist": base, "add": base + "add/", "change": f"{base}{pk}/change/"}[view]


def _choice_fields(response: Any) -> list[tuple[str, forms.ModelChoiceField]]:
    """Every foreign-key and many-to-many choice of an add page (the form and its inlines)."""
    context = response.context
    found: list[tuple[str, Any]] = []
    if context is None or "adminform" not in context:
        return found
    found += list(context["adminform"].form.fields.items())
    for inline in context.get("inline_admin_formsets", []):
        found += list(inline.formset.empty_form.fields.items())
    return [
        (name, f)
        for name, f in found
        if isinstance(f, forms.ModelChoiceField) and not isinstance(f.widget, forms.HiddenInput)
    ]


def test_an_organisation_administrator_meets_no_row_of_another_organisation_anywhere(
    two: dict[str, dict[str, Any]],
) -> None:
    client = verified(Client(), two["A"]["administrator"])
    b_org = two["B"]["org"].pk
    seen_changelists = 0
    for model in list(admin.site._registry):
        b_rows = _rows_of_b(model, b_org)
        listing = client.get(_url(model, "changelist"))
        assert listing.status_code in (200, 302, 403), (model, listing.status_code)
        if listing.status_code == 200:
            seen_changelists += 1
            body = listing.content.decode()
            assert MARKER not in body, f"{model._meta.label}: B in the list or its filters"
            shown = {row.pk for row in listing.context["cl"].result_list}
            assert not shown & b_rows, model._meta.label
        for pk in sorted(b_rows):
            page = client.get(_url(model, "change", pk))
            assert page.status_code in (302, 403, 404), (model._meta.label, page.status_code)
            assert MARKER not in page.content.decode()
            if page.status_code == 302:
                assert page["Location"] == "/admin/"  # "does not exist", as Django says
        add = client.get(_url(model, "add"))
        if add.status_code == 200:
            for name, field in _choice_fields(add):
                assert field.queryset is not None
                related = field.queryset.model
                leaked = field.queryset.filter(pk__in=_rows_of_b(related, b_org))
                assert not leaked.exists(), f"{model._meta.label}.{name} offers B's rows"
            assert MARKER not in add.content.decode(), model._meta.label
    assert seen_changelists >= 15  # the test did go through the admin


def test_posting_to_another_organisations_rows_changes_nothing(
    two: dict[str, dict[str, Any]],
) -> None:
    from agents.models import AgentProfile
    from configuration.models import Queue, Team
    from contacts.models import Contact

    client = verified(Client(), two["A"]["administrator"])
    b = two["B"]
    targets = [
        (b["team"], {"name": "taken", "supervisors": [two["A"]["administrator"].pk]}),
        (b["queue"], {"code": "taken", "name": "taken", "priority": 0}),
        (b["contact"], {"display_name": "taken", "preferred_language": "fr"}),
        (b["agent"], {"telework_phone": "+33600000000", "remote": ""}),
        (b["org"], {"name": "taken", "slug": "taken"}),
        (b["administrator"], {"username": "taken", "is_superuser": "on"}),
    ]
    for obj, data in targets:
        before = model_to_dict(type(obj).objects.get(pk=obj.pk))
        response = client.post(_url(type(obj), "change", obj.pk), data)
        assert response.status_code in (302, 403, 404)
        assert model_to_dict(type(obj).objects.get(pk=obj.pk)) == before, type(obj).__name__
        deleted = client.post(
            f"/admin/{obj._meta.app_label}/{obj._meta.model_name}/{obj.pk}/delete/",
            {"post": "yes"},
        )
        assert deleted.status_code in (302, 403, 404)
        assert type(obj).objects.filter(pk=obj.pk).exists()
    # Nor through a bulk action of the list (the rows are not in it).
    client.post(
        "/admin/contacts/contact/",
        {"action": "delete_selected", "_selected_action": [b["contact"].pk], "post": "yes"},
    )
    assert Contact.objects.filter(pk=b["contact"].pk).exists()
    assert Team.objects.get(pk=b["team"].pk).name == f"{MARKER} team"
    assert Queue.objects.get(pk=b["queue"].pk).name == f"{MARKER} queue"
    assert AgentProfile.objects.get(pk=b["agent"].pk).telework_phone == "+33612345678"


def test_a_new_row_goes_into_the_administrators_organisation_and_links_stay_inside(
    two: dict[str, dict[str, Any]],
) -> None:
    from configuration.models import Queue, Skill

    a, b = two["A"], two["B"]
    client = verified(Client(), a["administrator"])
    response = client.post(
        "/admin/configuration/skill/add/",
        {"code": "pref-rsa", "name": "same code as B's, another organisation"},
    )
    assert response.status_code == 302
    assert Skill.objects.get(code="pref-rsa", organisation=a["org"]).name.startswith("same")
    # The same code twice in one organisation: a message, not an error page.
    again = client.post("/admin/configuration/skill/add/", {"code": "pref-rsa", "name": "again"})
    assert again.status_code == 200
    assert Skill.objects.filter(code="pref-rsa", organisation=a["org"]).count() == 1
    # A queue served by B's team: not a choice.
    refused = client.post(
        "/admin/configuration/queue/add/",
        {
            "code": "new",
            "name": "new",
            "priority": 0,
            "sla_target_seconds": 60,
            "sla_target_percent": 80,
            "team": b["team"].pk,
            "queue_skills-TOTAL_FORMS": 0,
            "queue_skills-INITIAL_FORMS": 0,
            "escalation_steps-TOTAL_FORMS": 0,
            "escalation_steps-INITIAL_FORMS": 0,
        },
    )
    assert refused.status_code == 200
    assert "team" in refused.context["adminform"].form.errors
    assert not Queue.objects.filter(code="new").exists()


def test_a_platform_administrator_sees_both_organisations(
    two: dict[str, dict[str, Any]], make_user: Callable[..., Any]
) -> None:
    platform = make_user("plateforme", "platform_administrator", profile=False)
    client = verified(Client(), platform)
    for path, a_obj, b_obj in [
        ("/admin/configuration/team/", two["A"]["team"], two["B"]["team"]),
        ("/admin/contacts/contact/", two["A"]["contact"], two["B"]["contact"]),
        ("/admin/organisations/organisation/", two["A"]["org"], two["B"]["org"]),
        ("/admin/auth/user/", two["A"]["administrator"], two["B"]["administrator"]),
    ]:
        listing = client.get(path)
        assert listing.status_code == 200
        shown = {row.pk for row in listing.context["cl"].result_list}
        assert {a_obj.pk, b_obj.pk} <= shown, path
    page = client.get(_url(type(two["B"]["contact"]), "change", two["B"]["contact"].pk))
    assert page.status_code == 200
    assert MARKER in page.content.decode()


def test_a_supervisor_of_one_team_cannot_change_who_supervises_it(
    two: dict[str, dict[str, Any]],
) -> None:
    a = two["A"]
    team = a["team"]
    client = verified(Client(), a["supervisor"])
    response = client.post(
        _url(type(team), "change", team.pk),
        {"name": team.name, "supervisors": [a["supervisor"].pk, a["other_supervisor"].pk]},
    )
    assert response.status_code == 302
    assert set(team.supervisors.all()) == {a["supervisor"]}
    # Emptying them (to become centre-wide) is refused as well.
    client.post(_url(type(team), "change", team.pk), {"name": team.name, "supervisors": []})
    assert set(team.supervisors.all()) == {a["supervisor"]}
    # The other team of the organisation is not theirs to see.
    other = client.get(_url(type(team), "change", a["other_team"].pk))
    assert other.status_code == 302
    # Their organisation's administrator does change them.
    admin_client = verified(Client(), a["administrator"])
    admin_client.post(
        _url(type(team), "change", team.pk),
        {"name": team.name, "supervisors": [a["supervisor"].pk, a["other_supervisor"].pk]},
    )
    assert set(team.supervisors.all()) == {a["supervisor"], a["other_supervisor"]}


def test_an_organisation_administrator_cannot_make_a_superuser_or_a_platform_administrator(
    two: dict[str, dict[str, Any]],
) -> None:
    a = two["A"]
    user = a["agent_user"]
    client = verified(Client(), a["administrator"])
    page = client.get(_url(type(user), "change", user.pk))
    assert page.status_code == 200
    assert "is_superuser" not in page.context["adminform"].form.fields
    groups = page.context["adminform"].form.fields["groups"].queryset
    assert "platform_administrator" not in set(groups.values_list("name", flat=True))
    platform_group = Group.objects.get(name="platform_administrator")
    client.post(
        _url(type(user), "change", user.pk),
        {
            "username": user.username,
            "is_active": "on",
            "is_staff": "on",
            "is_superuser": "on",
            "groups": [platform_group.pk],
            "date_joined_0": "2026-01-01",
            "date_joined_1": "10:00:00",
        },
    )
    user.refresh_from_db()
    assert not user.is_superuser
    assert not user.groups.filter(name="platform_administrator").exists()


def test_an_organisation_administrator_does_not_see_platform_administrators(
    two: dict[str, dict[str, Any]], make_user: Callable[..., Any]
) -> None:
    from organisations.models import Membership

    a = two["A"]
    boss = make_user("boss", "agent", profile=False, is_superuser=True, is_staff=True)
    Membership.objects.create(user=boss, organisation=a["org"])
    client = verified(Client(), a["administrator"])
    listing = client.get("/admin/auth/user/")
    shown = {row.pk for row in listing.context["cl"].result_list}
    assert a["agent_user"].pk in shown
    assert boss.pk not in shown
    assert client.get(_url(type(boss), "change", boss.pk)).status_code == 302


def test_a_user_created_by_an_organisation_administrator_works_for_that_organisation(
    two: dict[str, dict[str, Any]],
) -> None:
    from django.contrib.auth import get_user_model

    a = two["A"]
    client = verified(Client(), a["administrator"])
    response = client.post(
        "/admin/auth/user/add/",
        {
            "username": "nouvelle",
            "password1": "pw-Test-2026!long",
            "password2": "pw-Test-2026!long",
            "usable_password": "true",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    created = get_user_model().objects.get(username="nouvelle")
    assert created.membership.organisation_id == a["org"].pk


def test_nobody_changes_their_own_membership(two: dict[str, dict[str, Any]]) -> None:
    a = two["A"]
    me = a["administrator"]
    client = verified(Client(), me)
    mine = me.membership
    page = client.get(f"/admin/organisations/membership/{mine.pk}/change/")
    assert page.status_code == 200
    assert not page.context["has_change_permission"]
    assert not page.context["has_delete_permission"]
    client.post(f"/admin/organisations/membership/{mine.pk}/delete/", {"post": "yes"})
    me.refresh_from_db()
    assert me.membership.organisation_id == a["org"].pk
    # The organisation: their own, changed but not added nor deleted.
    assert client.get("/admin/organisations/organisation/add/").status_code == 403
    own = client.get(f"/admin/organisations/organisation/{a['org'].pk}/change/")
    assert own.context["has_change_permission"]
    assert not own.context["has_delete_permission"]


def test_sharing_agreements_are_the_platforms_and_revoked_not_deleted(
    two: dict[str, dict[str, Any]], make_user: Callable[..., Any]
) -> None:
    from organisations.models import SharingAgreement

    a, b = two["A"], two["B"]
    assert verified(Client(), a["administrator"]).get(
        "/admin/organisations/sharingagreement/"
    ).status_code in (302, 403)
    platform = make_user("plateforme", "platform_administrator", profile=False)
    client = verified(Client(), platform)
    created = client.post(
        "/admin/organisations/sharingagreement/add/",
        {"owner": b["org"].pk, "grantee": a["org"].pk, "reason": "France Services"},
    )
    assert created.status_code == 302
    agreement = SharingAgreement.objects.get()
    assert agreement.created_by == platform
    assert agreement.active
    client.post(
        "/admin/organisations/sharingagreement/",
        {"action": "revoke", "_selected_action": [agreement.pk]},
    )
    agreement.refresh_from_db()
    assert agreement.revoked_by == platform
    assert agreement.revoked_at is not None
    assert (
        client.get(f"/admin/organisations/sharingagreement/{agreement.pk}/delete/").status_code
        == 403
    )
    listing = client.get("/admin/organisations/sharingagreement/?state=revoked")
    assert [row.pk for row in listing.context["cl"].result_list] == [agreement.pk]


def test_skill_changes_in_the_admin_are_audited(two: dict[str, dict[str, Any]]) -> None:
    from supervision.models import SkillChange

    a = two["A"]
    agent = a["agent"]
    row = agent.agent_skills.get()
    client = verified(Client(), a["supervisor"])
    response = client.post(
        _url(type(agent), "change", agent.pk),
        {
            "team": a["team"].pk,
            "languages": '["fr"]',
            "capacity_voice": 1,
            "capacity_chat": 3,
            "capacity_email": 5,
            "capacity_sms": 5,
            "voice_exclusive": "on",
            "remote": "on",
            "telework_phone": "+33612345678",
            "agent_skills-TOTAL_FORMS": 1,
            "agent_skills-INITIAL_FORMS": 1,
            "agent_skills-0-id": row.pk,
            "agent_skills-0-agent": agent.pk,
            "agent_skills-0-skill": a["skill"].pk,
            "agent_skills-0-level": 5,
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    row.refresh_from_db()
    assert row.level == 5
    change = SkillChange.objects.get(agent=agent)
    assert (change.before, change.after, change.changed_by) == (3, 5, a["supervisor"])


def test_the_teleworkers_private_number_only_for_those_allowed(
    two: dict[str, dict[str, Any]],
) -> None:
    a = two["A"]
    agent = a["agent"]
    supervisor = verified(Client(), a["supervisor"])
    assert "+33612345678" in supervisor.get("/admin/agents/agentprofile/").content.decode()
    page = supervisor.get(_url(type(agent), "change", agent.pk))
    assert "telework_phone" in page.context["adminform"].form.fields
    # A supervisor of the other team does not even see the agent.
    other = verified(Client(), a["other_supervisor"])
    assert "+33612345678" not in other.get("/admin/agents/agentprofile/").content.decode()
    assert other.get(_url(type(agent), "change", agent.pk)).status_code == 302


def test_every_model_admin_goes_through_the_authorization_layer() -> None:
    """A model admin added later without the scoped base fails here."""
    from organisations.admin_base import ScopedMixin

    # Service tokens' admin asks organisations.authz itself (apitokens/admin.py).
    own_checks = {"apitokens.servicetoken"}
    unscoped = [
        model._meta.label_lower
        for model, model_admin in admin.site._registry.items()
        if not isinstance(model_admin, ScopedMixin) and model._meta.label_lower not in own_checks
    ]
    assert unscoped == []
    for model_admin in admin.site._registry.values():
        for inline in getattr(model_admin, "inlines", []):
            assert issubclass(inline, ScopedMixin), inline
