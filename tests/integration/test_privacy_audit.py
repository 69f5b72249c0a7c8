"""The access log: views of citizen data write a line, configuration changes are logged by
PostgreSQL triggers (``QuerySet.update()`` included), the log refuses UPDATE and DELETE, and
the officer searches it (own organisation only)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import ImproperlyConfigured
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import IntegrityError, transaction
from django.test import Client

from agents.models import AgentSkill
from channels_inbound.models import Endpoint
from configuration.models import Queue, Skill
from flows.models import Flow
from interactions.models import Message
from kernel.audit import acting_as, set_access_recorder
from privacy.audit import record_access
from privacy.models import AccessLog
from tests.integration.test_admin_scope import verified
from tests.integration.test_api_scope import Body, _body
from tests.integration.test_privacy_rights import officer

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


@pytest.fixture
def caf(roles: None) -> Body:
    return _body("caf", "+33611111111")


@pytest.fixture
def mairie(roles: None, caf: Body) -> Body:
    return _body("mairie", "+33622222222")


def _lines(action: str, obj: Any) -> Any:
    return AccessLog.objects.filter(
        action=action, object_type=obj._meta.label_lower, object_id=str(obj.pk)
    )


def test_console_views_of_a_thread_a_citizen_and_an_attachment_are_logged(
    caf: Body, settings: Any, tmp_path: Any
) -> None:
    settings.MEDIA_ROOT = str(tmp_path)
    client = Client()
    client.force_login(caf.colleague)  # holds the conversation
    interaction = caf.interaction
    assert client.get(f"/console/interactions/{interaction.pk}/thread/").status_code == 200
    assert client.get(f"/console/interactions/{interaction.pk}/").status_code == 200
    assert client.get(f"/console/citizens/{caf.citizen.pk}/").status_code == 200
    path = default_storage.save("att/a.txt", ContentFile(b"bonjour"))
    message = Message.objects.create(
        interaction=interaction,
        direction="inbound",
        attachments=[{"name": "a.txt", "content_type": "text/plain", "storage_path": path}],
    )
    assert client.get(f"/console/messages/{message.pk}/attachments/0/").status_code == 200
    thread_views = _lines("view_thread", interaction)
    assert thread_views.count() == 2
    assert {line.actor_name for line in thread_views} == {"caf-colleague"}
    assert _lines("view_citizen", caf.citizen).get().organisation_id == caf.org.pk
    assert _lines("view_attachment", message).get().details == {"index": 0}


def test_api_reads_of_citizens_and_messages_are_logged(caf: Body, api_client_for: Any) -> None:
    client = api_client_for(caf.agent)
    assert client.get(f"/api/v1/contacts/{caf.citizen.pk}/").status_code == 200
    messages = client.get(f"/api/v1/interactions/{caf.interaction.pk}/messages/")
    assert messages.status_code == 200
    assert _lines("view_citizen", caf.citizen).get().details == {"via": "api"}
    assert _lines("view_thread", caf.interaction).get().actor_name == "caf-agent"


@pytest.fixture
def no_recorder() -> Iterator[None]:
    """The access recorder unregistered, as if the privacy app were missing."""
    set_access_recorder(None)
    try:
        yield
    finally:
        set_access_recorder(record_access)


def test_an_access_that_cannot_be_recorded_fails_and_the_check_says_why(
    caf: Body, no_recorder: None
) -> None:
    client = Client()
    client.force_login(caf.colleague)
    with pytest.raises(ImproperlyConfigured, match="No access recorder"):
        client.get(f"/console/interactions/{caf.interaction.pk}/thread/")
    assert not _lines("view_thread", caf.interaction).exists()
    with pytest.raises(SystemCheckError, match=r"kernel\.E001"):
        call_command("check")


def test_configuration_changes_through_update_are_logged_by_the_database(caf: Body) -> None:
    before = AccessLog.objects.filter(action="config").count()
    Queue.objects.filter(pk=caf.queue.pk).update(name="Accueil général")
    Skill.objects.filter(pk=caf.skill.pk).update(name="Aides au logement")
    AgentSkill.objects.create(agent=caf.agent.agent_profile, skill=caf.skill, level=3)
    AgentSkill.objects.filter(agent=caf.agent.agent_profile).update(level=5)
    Flow.objects.create(name="SVI", organisation=caf.org)
    Endpoint.objects.create(
        channel="sms", address="+33100000001", name="SMS", queue=caf.queue, organisation=caf.org
    )
    caf.agent.groups.add(Group.objects.get(name="supervisor"))  # a role given
    Queue.objects.filter(pk=caf.queue.pk).update(name="Accueil général")  # no change: no line
    rows = AccessLog.objects.filter(action="config").order_by("id")[before:]
    seen = [(r.object_type, r.details["op"]) for r in rows]
    assert seen == [
        ("routing_queue", "update"),
        ("routing_skill", "update"),
        ("agents_agentskill", "insert"),
        ("agents_agentskill", "update"),
        ("flows_flow", "insert"),
        ("channels_inbound_endpoint", "insert"),
        ("auth_user_groups", "insert"),
    ]
    queue_change = rows[0]
    assert queue_change.details["old"]["name"] == "Accueil"
    assert queue_change.details["new"]["name"] == "Accueil général"
    assert {r.organisation_id for r in rows} == {caf.org.pk}


def test_a_change_made_in_a_request_names_its_user(caf: Body) -> None:
    client = verified(Client(), caf.supervisor)
    response = client.patch(
        f"/api/v1/queues/{caf.queue.pk}/", {"name": "Accueil CAF"}, "application/json"
    )
    assert response.status_code == 200
    change = AccessLog.objects.filter(action="config", object_type="routing_queue").latest("id")
    assert change.actor_id == caf.supervisor.pk
    assert change.actor_name == "caf-sup"


def test_a_change_made_outside_a_request_names_the_user_it_acts_for(caf: Body) -> None:
    """``kernel.audit.acting_as``: an action that reaches the app without a request (the
    console socket's) names its user like a request does, and only inside the block."""
    with acting_as(caf.supervisor.pk):
        Queue.objects.filter(pk=caf.queue.pk).update(name="Accueil CAF")
    Queue.objects.filter(pk=caf.queue.pk).update(name="Accueil de la CAF")
    second, first = AccessLog.objects.filter(action="config", object_type="routing_queue").order_by(
        "-id"
    )[:2]
    assert (first.actor_id, first.details["new"]["name"]) == (caf.supervisor.pk, "Accueil CAF")
    assert (second.actor_id, second.details["new"]["name"]) == (None, "Accueil de la CAF")


def test_the_access_log_refuses_update_and_delete(caf: Body) -> None:
    line = AccessLog.objects.create(organisation=caf.org, action="view_thread")
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        AccessLog.objects.filter(pk=line.pk).update(action="export")
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        AccessLog.objects.filter(pk=line.pk).delete()
    line.refresh_from_db()
    assert line.action == "view_thread"


def test_the_officer_searches_the_log_of_their_organisation_only(caf: Body, mairie: Body) -> None:
    AccessLog.objects.create(organisation=caf.org, action="view_thread", actor_name="caf-agent")
    AccessLog.objects.create(
        organisation=mairie.org, action="view_thread", actor_name="zzmairieagent"
    )
    client = verified(Client(), officer(caf, "dpo-caf"))
    page = client.get("/privacy/audit/", {"action": "view_thread", "actor": "agent"})
    assert page.status_code == 200
    assert "caf-agent" in page.content.decode()
    assert "zzmairieagent" not in page.content.decode()
    assert client.get("/privacy/audit/", {"since": "hier"}).status_code == 400
    assert client.get("/privacy/audit/", {"action": "nope"}).status_code == 400
    config = client.get("/privacy/audit/", {"action": "config"}).content.decode()
    assert "routing_queue" in config


def _config_since(before: int) -> list[AccessLog]:
    return list(AccessLog.objects.filter(action="config", pk__gt=before).order_by("id"))


def _last_id() -> int:
    return AccessLog.objects.order_by("-id").values_list("id", flat=True).first() or 0


def test_changes_through_the_supervision_pages_and_the_admin_name_their_user(caf: Body) -> None:
    from tests.integration.test_api_scope import _person

    sup = verified(Client(), caf.supervisor)
    before = _last_id()
    profile = caf.agent.agent_profile
    response = sup.post("/supervision/skills/", {f"level_{profile.pk}_{caf.skill.pk}": "4"})
    assert response.status_code == 302
    flow = Flow.objects.create(name="SVI", organisation=caf.org)
    saved = sup.post(
        f"/supervision/flows/{flow.pk}/versions/",
        {"graph": {"start": "a", "nodes": {"a": {"type": "queue"}}}, "note": "v1"},
        "application/json",
    )
    assert saved.status_code == 200
    seen = {(r.object_type, r.details["op"], r.actor_name) for r in _config_since(before)}
    assert ("agents_agentskill", "insert", "caf-sup") in seen  # the skills matrix
    assert ("flows_flowversion", "insert", "caf-sup") in seen  # the flow editor

    administrator = _person("caf-admin", "administrator", caf.org, None, profile=False)
    type(administrator).objects.filter(pk=administrator.pk).update(is_staff=True)
    administrator.refresh_from_db()
    admin = verified(Client(), administrator)
    before = _last_id()
    added = admin.post("/admin/configuration/skill/add/", {"code": "rsa", "name": "RSA"})
    assert added.status_code == 302
    assert Skill.objects.filter(code="rsa", organisation=caf.org).exists()
    user = caf.agent
    changed = admin.post(
        f"/admin/auth/user/{user.pk}/change/",
        {
            "username": user.username,
            "is_active": "on",
            "is_staff": "on",
            "groups": [Group.objects.get(name="supervisor").pk],
            "date_joined_0": "2026-01-01",
            "date_joined_1": "10:00:00",
        },
    )
    assert changed.status_code == 302
    assert list(user.groups.values_list("name", flat=True)) == ["supervisor"]
    lines = _config_since(before)
    seen = {(r.object_type, r.details["op"], r.actor_name) for r in lines}
    assert ("routing_skill", "insert", "caf-admin") in seen
    assert ("auth_user_groups", "insert", "caf-admin") in seen  # a role given
    assert ("auth_user_groups", "delete", "caf-admin") in seen  # a role taken away
    staff = next(r for r in lines if r.object_type == "auth_user")
    assert (staff.details["old"]["is_staff"], staff.details["new"]["is_staff"]) == (False, True)
    assert {r.organisation_id for r in lines} == {caf.org.pk}


def test_queue_hours_survey_settings_and_access_rights_are_audited_without_secrets(
    caf: Body,
) -> None:
    from django.utils import timezone

    from supervision.models import QueueHours
    from surveys.models import SurveySettings
    from webhooks.models import Subscription

    before = _last_id()
    QueueHours.objects.create(queue=caf.queue, calendar={"mon": [["08:30", "17:00"]]})
    SurveySettings.objects.create(queue=caf.queue, enabled=True)
    Subscription.objects.create(
        organisation=caf.org, name="GRC", url="https://grc.example.fr/hook", secret="s3cr3t-x"
    )
    type(caf.agent).objects.filter(pk=caf.agent.pk).update(is_superuser=True)
    type(caf.agent).objects.filter(pk=caf.agent.pk).update(last_login=timezone.now())
    Subscription.objects.filter(organisation=caf.org).update(consecutive_failures=3)
    lines = _config_since(before)
    assert [(r.object_type, r.details["op"]) for r in lines] == [
        ("supervision_queuehours", "insert"),
        ("surveys_surveysettings", "insert"),
        ("webhooks_subscription", "insert"),
        ("auth_user", "update"),  # a superuser made; a login or a failure count is no change
    ]
    assert {r.organisation_id for r in lines} == {caf.org.pk}
    text = str([r.details for r in lines])
    assert "s3cr3t-x" not in text
    assert "pbkdf2" not in text  # no password hash
