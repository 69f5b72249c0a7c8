"""Supervision with two organisations (a CAF and a mairie): every page, export, socket and the
flow editor read and change only the user's own organisation; a supervisor of no team sees
nothing; a platform administrator chooses the organisation they look at."""

from __future__ import annotations

import asyncio
import csv
import io
from dataclasses import dataclass
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client

from agents.models import AgentProfile, AgentSkill, AgentState
from channels_inbound.models import Endpoint
from configuration.models import Queue, Skill, Team
from contactcentre.asgi import application
from flows.actions import do_bind_flow, do_create_flow_version
from flows.models import EndpointFlow, Flow, FlowVersion
from interactions.actions import do_create_interaction
from interactions.models import Interaction
from kernel.events import (
    SUPERVISORS_GROUP,
    supervisor_groups_of,
    supervisors_group,
)
from organisations.models import Membership, Organisation, OrganisationMismatch
from supervision.access import OutOfScope, scope_for
from supervision.selectors import wallboard_snapshot
from tests.integration.supervision.conftest import verified_session

GRAPH: dict[str, Any] = {
    "start": "accueil",
    "nodes": {
        "accueil": {"type": "message", "text": "Bonjour.", "next": "file"},
        "file": {"type": "queue", "queue": "accueil-caf"},
    },
}


@dataclass
class Body:
    org: Organisation
    team: Team
    queue: Queue
    skill: Skill
    agent: AgentProfile
    supervisor: Any
    admin: Any
    flow: Flow


def _member(username: str, role: str, org: Organisation, team: Team | None = None) -> Any:
    user = get_user_model().objects.create_user(username, f"{username}@example.fr", "pw-Test-26!")
    user.groups.add(Group.objects.get(name=role))
    if role != "agent":
        user.is_staff = True
        user.save(update_fields=["is_staff"])
    Membership.objects.create(user=user, organisation=org)
    AgentProfile.objects.create(user=user, organisation=org, team=team, languages=["fr"])
    return user


def _body(slug: str, name: str) -> Body:
    org = Organisation.objects.create(name=name, slug=slug)
    team = Team.objects.create(name=f"Équipe {slug}", organisation=org)
    queue = Queue.objects.create(code=f"accueil-{slug}", name=f"File {slug}", team=team)
    skill = Skill.objects.create(code="famille", name=f"Famille {slug}", organisation=org)
    agent = _member(f"agent-{slug}", "agent", org, team).agent_profile
    AgentSkill.objects.create(agent=agent, skill=skill, level=2)
    supervisor = _member(f"sup-{slug}", "supervisor", org)
    team.supervisors.add(supervisor)
    admin = _member(f"admin-{slug}", "administrator", org)
    flow = Flow.objects.create(name=f"SVI {slug}", organisation=org)
    return Body(org, team, queue, skill, agent, supervisor, admin, flow)


@pytest.fixture
def bodies(roles: None) -> tuple[Body, Body]:
    return _body("caf", "CAF de Nulle-Part"), _body("mairie", "Mairie de Nulle-Part")


_login = verified_session


PAGES = [
    "/supervision/",
    "/supervision/agents/",
    "/supervision/interactions/",
    "/supervision/skills/",
    "/supervision/skills/history/",
    "/supervision/queues/",
    "/supervision/staffing/",
    "/supervision/what-if/",
    "/supervision/flows/",
]


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["supervisor", "admin"])
def test_every_page_shows_only_the_own_organisation(role: str, bodies: tuple[Body, Body]) -> None:
    caf, _mairie = bodies
    client = _login(getattr(caf, role))
    for url in PAGES:
        page = client.get(url).content.decode()
        assert "agent-mairie" not in page, url
        assert "File mairie" not in page, url
        assert "SVI mairie" not in page, url
        assert "Famille mairie" not in page, url
    assert "agent-caf" in client.get("/supervision/agents/").content.decode()
    assert "File caf" in client.get("/supervision/queues/").content.decode()
    assert "SVI caf" in client.get("/supervision/flows/").content.decode()


@pytest.mark.django_db
def test_a_supervisor_of_no_team_sees_nothing(bodies: tuple[Body, Body]) -> None:
    caf, _mairie = bodies
    lonely = _member("sup-sans-equipe", "supervisor", caf.org)
    scope = scope_for(lonely)
    assert scope is not None
    assert scope.sees_nothing
    assert not scope.agents().exists()
    assert not scope.queues().exists()
    assert not scope.interactions().exists()
    assert not scope.flows().exists()
    assert wallboard_snapshot(scope)["agents"] == []
    client = _login(lonely)
    assert "agent-caf" not in client.get("/supervision/agents/").content.decode()
    assert "File caf" not in client.get("/supervision/queues/").content.decode()
    assert "SVI caf" not in client.get("/supervision/flows/").content.decode()


@pytest.mark.django_db
def test_acting_on_another_organisations_rows_is_refused(bodies: tuple[Body, Body]) -> None:
    caf, mairie = bodies
    client = _login(caf.admin)
    call = do_create_interaction(channel="voice", contact=None, queue=mairie.queue)
    # agents' state, reassigning, queue settings: another organisation's ids are not found
    response = client.post(
        f"/supervision/agents/{mairie.agent.pk}/state/", {"state": AgentState.PAUSED}
    )
    assert response.status_code == 404
    response = client.post(
        f"/supervision/interactions/{call.pk}/reassign/", {"agent": caf.agent.pk}
    )
    assert response.status_code == 404
    assert client.get(f"/supervision/queues/{mairie.queue.pk}/").status_code == 404
    # the skills matrix ignores another organisation's cells, the bulk form its skills
    client.post(
        "/supervision/skills/", {f"level_{mairie.agent.pk}_{mairie.skill.pk}": "5", "note": "x"}
    )
    assert AgentSkill.objects.get(agent=mairie.agent, skill=mairie.skill).level == 2
    client.post(
        "/supervision/skills/team/", {"team": caf.team.pk, "skill": mairie.skill.pk, "level": "4"}
    )
    assert not AgentSkill.objects.filter(agent=caf.agent, skill=mairie.skill).exists()
    # and the actions themselves refuse another organisation's skill or queue
    scope = scope_for(caf.admin)
    assert scope is not None
    with pytest.raises(OutOfScope):
        scope.check_agent(mairie.agent)
    with pytest.raises(OutOfScope):
        scope.check_queue(mairie.queue)


@pytest.mark.django_db
def test_a_queue_overflows_only_within_its_organisation(bodies: tuple[Body, Body]) -> None:
    caf, mairie = bodies
    client = _login(caf.admin)
    page = client.get(f"/supervision/queues/{caf.queue.pk}/").content.decode()
    assert "File mairie" not in page  # not offered as an overflow queue
    client.post(
        f"/supervision/queues/{caf.queue.pk}/",
        {
            "priority": 1,
            "sla_target_seconds": 60,
            "sla_target_percent": 80,
            "overflow_queue": mairie.queue.pk,
            "holidays": "on",
            "steps-TOTAL_FORMS": "0",
            "steps-INITIAL_FORMS": "0",
        },
    )
    caf.queue.refresh_from_db()
    assert caf.queue.overflow_queue_id is None


@pytest.mark.django_db
def test_report_and_csv_count_only_the_own_organisation(bodies: tuple[Body, Body]) -> None:
    caf, mairie = bodies
    do_create_interaction(channel="voice", contact=None, queue=caf.queue)
    for _ in range(3):
        do_create_interaction(channel="voice", contact=None, queue=mairie.queue)
    client = _login(caf.admin)
    response = client.get("/supervision/reports/", {"format": "csv"})
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    header, total = rows[0], rows[-1]
    assert total[header.index("arrived")] == "1"
    # another organisation's queue is not a filter choice either
    response = client.get("/supervision/reports/", {"queue": mairie.queue.pk})
    assert "File mairie" not in response.content.decode()
    assert "report" not in response.context or response.context.get("report") is None


@pytest.mark.django_db
def test_a_platform_administrator_chooses_the_organisation(bodies: tuple[Body, Body]) -> None:
    caf, mairie = bodies
    root = get_user_model().objects.create_superuser("root", "root@example.fr", "pw-Test-26!")
    client = _login(root)
    everything = client.get("/supervision/agents/").content.decode()
    assert "agent-caf" in everything
    assert "agent-mairie" in everything
    one = client.get("/supervision/agents/", {"organisation": mairie.org.pk}).content.decode()
    assert "agent-mairie" in one
    assert "agent-caf" not in one
    # an organisation administrator cannot look at another organisation this way
    other = _login(caf.admin).get("/supervision/agents/", {"organisation": mairie.org.pk})
    assert other.status_code == 403


# --------------------------------------------------------------------------- flow editor


@pytest.mark.django_db
def test_publishing_another_organisations_flow_is_refused(bodies: tuple[Body, Body]) -> None:
    caf, mairie = bodies
    graph = {**GRAPH, "nodes": {**GRAPH["nodes"], "file": {"type": "queue"}}}
    draft = do_create_flow_version(flow=mairie.flow, graph=graph)
    client = _login(caf.supervisor)
    url = f"/supervision/flows/{mairie.flow.pk}/versions/{draft.pk}/publish/"
    assert client.post(url).status_code == 404
    draft.refresh_from_db()
    assert draft.status == FlowVersion.Status.DRAFT
    mairie.flow.refresh_from_db()
    assert mairie.flow.published_version_id is None
    # nor is it opened, validated, saved, rolled back or test-run
    assert client.get(f"/supervision/flows/{mairie.flow.pk}/").status_code == 404
    for action in ("validate/", "versions/", "test/", f"versions/{draft.pk}/rollback/"):
        response = client.post(
            f"/supervision/flows/{mairie.flow.pk}/{action}",
            {"graph": graph},
            content_type="application/json",
        )
        assert response.status_code == 404, action
    assert mairie.flow.versions.count() == 1


@pytest.mark.django_db
def test_a_flow_names_only_its_organisations_queues_and_skills(bodies: tuple[Body, Body]) -> None:
    caf, _mairie = bodies
    client = _login(caf.supervisor)
    url = f"/supervision/flows/{caf.flow.pk}/validate/"
    assert client.post(url, {"graph": GRAPH}, content_type="application/json").json() == {
        "errors": [],
        "problems": [],
    }
    other_queue = {
        **GRAPH,
        "nodes": {**GRAPH["nodes"], "file": {"type": "queue", "queue": "accueil-mairie"}},
    }
    errors = client.post(url, {"graph": other_queue}, content_type="application/json").json()
    assert [p["raw"] for p in errors["problems"]] == [
        "nodes/file/queue: no queue with code 'accueil-mairie'"
    ]
    Skill.objects.create(code="etat-civil", name="État civil", organisation=_mairie.org)
    other_skill = {
        "start": "tri",
        "nodes": {
            "tri": {"type": "set", "skills": {"etat-civil": 2}, "next": "file"},
            "file": {"type": "queue"},
        },
    }
    errors = client.post(url, {"graph": other_skill}, content_type="application/json").json()
    assert [p["raw"] for p in errors["problems"]] == [
        "nodes/tri/skills: no skill with code 'etat-civil'"
    ]
    editor = client.get(f"/supervision/flows/{caf.flow.pk}/").context["editor"]
    assert editor["queues"] == [{"code": "accueil-caf", "name": "File caf"}]
    # the numbers and widgets offered for attaching: the organisation's own only
    page = client.get(f"/supervision/flows/{caf.flow.pk}/")
    assert [e.name for e in page.context["endpoints"]] == []


@pytest.mark.django_db
def test_binding_a_flow_to_another_organisations_endpoint_is_refused(
    bodies: tuple[Body, Body],
) -> None:
    caf, mairie = bodies
    endpoint = Endpoint.objects.create(
        channel="voice", address="+33140000001", name="Mairie", queue=mairie.queue
    )
    with pytest.raises(OrganisationMismatch):
        do_bind_flow(flow=caf.flow, endpoint=endpoint)
    with pytest.raises(OutOfScope):
        do_bind_flow(flow=mairie.flow, endpoint=endpoint, actor=caf.admin)
    assert not EndpointFlow.objects.exists()
    do_bind_flow(flow=mairie.flow, endpoint=endpoint, actor=mairie.admin)
    assert EndpointFlow.objects.get().flow == mairie.flow


@pytest.mark.django_db
def test_the_editor_attaches_a_flow_only_to_its_organisations_numbers(
    bodies: tuple[Body, Body],
) -> None:
    caf, mairie = bodies
    caf_line = Endpoint.objects.create(
        channel="voice", address="+33140000002", name="CAF", queue=caf.queue
    )
    mairie_line = Endpoint.objects.create(
        channel="voice", address="+33140000001", name="Mairie", queue=mairie.queue
    )
    client = _login(caf.supervisor)
    url = f"/supervision/flows/{caf.flow.pk}/bindings/"
    page = client.get(f"/supervision/flows/{caf.flow.pk}/")
    assert [e.name for e in page.context["endpoints"]] == ["CAF"]
    # another organisation's number, through one's own flow: refused, nothing bound
    answer = client.post(url, {"endpoint": mairie_line.pk, "action": "attach"}, follow=True)
    assert "Choisissez l’un des numéros" in answer.content.decode()
    assert not EndpointFlow.objects.exists()
    # another organisation's flow: not found
    other = f"/supervision/flows/{mairie.flow.pk}/bindings/"
    assert client.post(other, {"endpoint": mairie_line.pk, "action": "attach"}).status_code == 404
    # bad input: a clear message, nothing changed
    answer = client.post(url, {"endpoint": "x", "action": "attach"}, follow=True)
    assert "Choisissez l’un des numéros" in answer.content.decode()
    answer = client.post(url, {"endpoint": caf_line.pk, "action": "steal"}, follow=True)
    assert not EndpointFlow.objects.exists()
    # its own number: attached, then detached; both audited
    client.post(url, {"endpoint": caf_line.pk, "action": "attach"})
    assert EndpointFlow.objects.get().flow == caf.flow
    client.post(url, {"endpoint": caf_line.pk, "action": "detach"})
    assert not EndpointFlow.objects.exists()
    # an agent may not
    agent = _login(caf.agent.user)
    assert agent.post(url, {"endpoint": caf_line.pk, "action": "attach"}).status_code == 403


# --------------------------------------------------------------------------- wallboard socket


@pytest.mark.django_db
def test_supervisor_events_go_to_their_organisations_group_only(bodies: tuple[Body, Body]) -> None:
    caf, mairie = bodies
    call = do_create_interaction(channel="voice", contact=None, queue=caf.queue)
    events = supervisor_groups_of(
        [
            ("interaction.status", {"interaction_id": call.pk}, [SUPERVISORS_GROUP]),
            ("agent.state", {"agent_id": mairie.agent.pk}, ["agent.1", SUPERVISORS_GROUP]),
            ("routing.claimed", {"offered": 1, "assigned": 0}, [SUPERVISORS_GROUP]),
        ]
    )
    assert [(e[0], e[2]) for e in events] == [
        ("interaction.status", [supervisors_group(caf.org.pk)]),
        ("agent.state", ["agent.1", supervisors_group(mairie.org.pk)]),
    ]  # an event naming no organisation reaches no wallboard


def _socket(client: Client) -> WebsocketCommunicator:
    name = settings.SESSION_COOKIE_NAME
    cookie = f"{name}={client.cookies[name].value}".encode()
    headers = [(b"host", b"localhost"), (b"origin", b"http://localhost"), (b"cookie", cookie)]
    return WebsocketCommunicator(application, "/ws/supervision/wallboard/", headers=headers)


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
async def test_a_wallboard_hears_nothing_of_another_organisation(roles: None) -> None:
    caf, mairie = (
        await sync_to_async(_body)("caf", "CAF de Nulle-Part"),
        await sync_to_async(_body)("mairie", "Mairie de Nulle-Part"),
    )
    caf_socket = _socket(await sync_to_async(_login)(caf.admin))
    mairie_socket = _socket(await sync_to_async(_login)(mairie.supervisor))
    for socket in (caf_socket, mairie_socket):
        connected, _ = await socket.connect()
        assert connected
        assert (await socket.receive_json_from(timeout=5))["type"] == "snapshot"
    # when a call arrives at the CAF
    call = await sync_to_async(do_create_interaction)(
        channel="voice", contact=None, queue=caf.queue
    )
    update = await caf_socket.receive_json_from(timeout=5)
    assert [q["waiting"] for q in update["data"]["queues"] if q["queue"] == "File caf"] == [1]
    # the mairie's wallboard receives nothing at all (no snapshot, no id)
    assert await mairie_socket.receive_nothing(timeout=1.5)
    # and its own events still reach it
    await sync_to_async(do_create_interaction)(channel="voice", contact=None, queue=mairie.queue)
    update = await mairie_socket.receive_json_from(timeout=5)
    assert call.pk not in {w["interaction_id"] for a in update["data"]["agents"] for w in a["work"]}
    assert [q["queue"] for q in update["data"]["queues"]] == ["File mairie"]
    await asyncio.gather(caf_socket.disconnect(), mairie_socket.disconnect())
    assert await sync_to_async(Interaction.objects.count)() == 2
