"""The supervision pages: access, the skills matrix, agents, interactions, queue settings,
reports with CSV, staffing advice, what-if and the flow editor's endpoints."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from agents.models import AgentPresence, AgentState
from configuration.models import EscalationStep, Team
from flows.models import Flow, FlowVersion
from interactions.actions import do_transition_interaction
from interactions.lifecycle import Status
from routing.claims import do_route_pending
from routing.models import Offer
from routing.offers import do_accept_offer
from supervision.models import SkillChange, SupervisorAction

pytestmark = pytest.mark.django_db


def login(client: Client, user: Any) -> Client:
    """Log in as after the second-factor page (supervisors must pass one)."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.create(user=user, name="test", confirmed=True)
    client.force_login(user)
    session = client.session
    session["otp_device_id"] = device.persistent_id
    session.save()
    return client


@pytest.fixture
def sup_client(client: Client, supervisor: Any) -> Client:
    return login(client, supervisor)


PAGES = [
    "/supervision/",
    "/supervision/agents/",
    "/supervision/interactions/",
    "/supervision/skills/",
    "/supervision/skills/history/",
    "/supervision/queues/",
    "/supervision/reports/",
    "/supervision/staffing/",
    "/supervision/what-if/",
    "/supervision/flows/",
]


@pytest.mark.parametrize("url", PAGES)
def test_pages_answer_supervisors_only(
    url: str, queue: Any, agent: Any, sup_client: Client, make_user: Any
) -> None:
    queue("caf", {"apl": 1})
    agent("alice", {"apl": 2})
    assert sup_client.get(url).status_code == 200
    plain = Client()
    plain.force_login(make_user("agent007"))
    assert plain.get(url).status_code == 403
    assert Client().get(url).status_code == 302  # to the login page


def test_the_skills_matrix_saves_changes_with_their_audit(
    agent: Any, skill: Any, sup_client: Client, supervisor: Any
) -> None:
    alice = agent("alice", {"apl": 2})
    apl, rsa = skill("apl"), skill("rsa")
    page = sup_client.get("/supervision/skills/").content.decode()
    assert f'name="level_{alice.pk}_{apl.pk}"' in page
    response = sup_client.post(
        "/supervision/skills/",
        {f"level_{alice.pk}_{apl.pk}": "4", f"level_{alice.pk}_{rsa.pk}": "1", "note": "formation"},
    )
    assert response.status_code == 302
    assert alice.skill_levels() == {"apl": 4, "rsa": 1}
    assert set(SkillChange.objects.values_list("skill__code", "before", "after", "note")) == {
        ("apl", 2, 4, "formation"),
        ("rsa", None, 1, "formation"),
    }
    assert SkillChange.objects.filter(changed_by=supervisor).count() == 2
    # bulk edit by team
    team = Team.objects.create(name="Nord")
    alice.team = team
    alice.save()
    response = sup_client.post(
        "/supervision/skills/team/", {"team": team.pk, "skill": rsa.pk, "level": "3"}
    )
    assert response.status_code == 302
    assert alice.skill_levels()["rsa"] == 3
    history = sup_client.get("/supervision/skills/history/").content.decode()
    assert "formation" in history


def test_agents_page_pauses_and_logs_out(agent: Any, sup_client: Client) -> None:
    bob = agent("bob", {})
    sup_client.post(f"/supervision/agents/{bob.pk}/state/", {"state": "paused", "reason": ""})
    presence = AgentPresence.objects.get(agent=bob)
    assert (presence.state, presence.pause_reason) == (AgentState.PAUSED, "supervisor")
    sup_client.post(f"/supervision/agents/{bob.pk}/state/", {"state": "offline"})
    assert AgentPresence.objects.get(agent=bob).state == AgentState.OFFLINE
    assert SupervisorAction.objects.filter(kind="log_out", agent=bob).exists()


def test_reassign_and_take_from_the_interactions_page(
    queue: Any, agent: Any, arrive: Any, sup_client: Client, supervisor: Any
) -> None:
    q = queue("caf", {})
    carl = agent("carl", {})
    chat = arrive(q, "chat")
    do_route_pending()
    do_accept_offer(offer_id=Offer.objects.get(interaction=chat).pk, agent=carl)
    dina = agent("dina", {})
    assert (
        f"/supervision/interactions/{chat.pk}/reassign/"
        in sup_client.get("/supervision/interactions/").content.decode()
    )
    sup_client.post(f"/supervision/interactions/{chat.pk}/reassign/", {"agent": dina.pk})
    chat.refresh_from_db()
    assert (chat.status, chat.assigned_agent) == (Status.OFFERED, dina)
    sup_client.post(f"/supervision/interactions/{chat.pk}/reassign/", {"take": "1"})
    chat.refresh_from_db()
    assert (chat.status, chat.assigned_agent.user) == (Status.ASSIGNED, supervisor)


def test_queue_settings_page(queue: Any, sup_client: Client) -> None:
    q = queue("caf", {})
    spill = queue("spill", {})
    form = {
        "priority": "2",
        "sla_target_seconds": "40",
        "sla_target_percent": "85",
        "overflow_queue": str(spill.pk),
        "holidays": "on",
        "hours_mon": "08:30-12:30, 13:30-17:00",
        "steps-TOTAL_FORMS": "2",
        "steps-INITIAL_FORMS": "0",
        "steps-MIN_NUM_FORMS": "0",
        "steps-MAX_NUM_FORMS": "10",
        "steps-0-after_seconds": "30",
        "steps-0-min_level_cap": "2",
        "steps-1-after_seconds": "",
    }
    response = sup_client.post(f"/supervision/queues/{q.pk}/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    q.refresh_from_db()
    assert (q.priority, q.sla_target_seconds, q.sla_target_percent) == (2, 40, 85)
    assert list(EscalationStep.objects.filter(queue=q).values_list("after_seconds", flat=True)) == [
        30
    ]
    assert q.hours.calendar["weekly"] == {"mon": [["08:30", "12:30"], ["13:30", "17:00"]]}
    # a wrong interval is shown on its field
    bad = {**form, "hours_tue": "18:00-09:00"}
    page = sup_client.post(f"/supervision/queues/{q.pk}/", bad)
    assert page.status_code == 200
    html = page.content.decode()
    errors = html[html.index('id="id_hours_tue_error"') :]
    assert "La période se termine avant de commencer." in errors[: errors.index("</ul>")]


def test_reports_page_and_csv(queue: Any, agent: Any, arrive: Any, sup_client: Client) -> None:
    q = queue("caf", {}, sla_target_seconds=60)
    ana = agent("ana", {})
    t0 = timezone.now() - timedelta(minutes=30)
    call = arrive(q, now=t0)
    do_route_pending(now=t0)
    do_accept_offer(
        offer_id=Offer.objects.get(interaction=call).pk, agent=ana, now=t0 + timedelta(seconds=10)
    )
    call.refresh_from_db()
    do_transition_interaction(interaction=call, to=Status.CLOSED, now=t0 + timedelta(seconds=130))
    page = sup_client.get("/supervision/reports/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-figure="service_level">100' in html
    day = timezone.localdate(t0).isoformat()
    response = sup_client.get(f"/supervision/reports/?date_from={day}&date_to={day}&format=csv")
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    total = rows[-1]
    assert total["hour"] == "total"
    assert (total["answered"], total["service_level"], total["aht_s"]) == (
        "1",
        "1.0000",
        "120.0000",
    )
    assert len(rows) in (24, 26, 24 + 1)  # the day's hours + total (23 or 25 on DST days)


def test_staffing_page(queue: Any, agent: Any, arrive: Any, sup_client: Client) -> None:
    q = queue("caf", {"apl": 1}, sla_target_seconds=20, sla_target_percent=80)
    agent("eva", {"apl": 2})
    now = timezone.now()
    for i in range(20):
        call = arrive(q, now=now - timedelta(minutes=50 - i))
        do_transition_interaction(
            interaction=call, to=Status.ASSIGNED, now=now - timedelta(minutes=49 - i)
        )
        do_transition_interaction(
            interaction=call, to=Status.CLOSED, now=now - timedelta(minutes=46 - i)
        )
    html = sup_client.get("/supervision/staffing/").content.decode()
    assert f'data-queue="{q.pk}"' in html
    # 20 calls/h of 180 s = 1 Erlang: Erlang C needs 3 agents for 80 % in 20 s
    assert 'data-field="needed">3<' in html
    assert 'data-field="logged_in">1<' in html


def test_whatif_page_compares(queue: Any, agent: Any, arrive: Any, sup_client: Client) -> None:
    q = queue("caf", {}, sla_target_seconds=60)
    agent("finn", {})
    yesterday = timezone.localdate() - timedelta(days=1)
    response = sup_client.post(
        "/supervision/what-if/",
        {
            "date_from": yesterday.isoformat(),
            "date_to": yesterday.isoformat(),
            f"q{q.pk}_priority": "0",
            f"q{q.pk}_target": "30",
        },
    )
    assert response.status_code == 200
    assert 'id="whatif-table"' in response.content.decode()


GRAPH: dict[str, Any] = {
    "start": "accueil",
    "nodes": {
        "accueil": {"type": "message", "text": "Bonjour.", "next": "menu"},
        "menu": {
            "type": "menu",
            "prompt": {"text": "Tapez 1 pour la CAF."},
            "options": [{"key": "1", "next": "file"}],
        },
        "file": {"type": "queue", "queue": "caf"},
    },
}


def test_flow_editor_endpoints(queue: Any, sup_client: Client) -> None:
    queue("caf", {})
    sup_client.post("/supervision/flows/", {"name": "Accueil"})
    flow = Flow.objects.get(name="Accueil")
    assert sup_client.get(f"/supervision/flows/{flow.pk}/").status_code == 200
    post = lambda url, body: sup_client.post(url, json.dumps(body), content_type="application/json")  # noqa: E731
    broken = {**GRAPH, "nodes": {**GRAPH["nodes"], "file": {"type": "queue", "queue": "cpam"}}}
    found = post(f"/supervision/flows/{flow.pk}/validate/", {"graph": broken}).json()
    assert [p["raw"] for p in found["problems"]] == ["nodes/file/queue: no queue with code 'cpam'"]
    assert [p["nodes"] for p in found["problems"]] == [["file"]]
    errors = found["errors"]  # in words, in the page's language (French by default)
    assert errors == ["Il n’y a pas de file «\u00a0cpam\u00a0» dans cet organisme."]
    # a test run with chosen keys
    run = post(
        f"/supervision/flows/{flow.pk}/test/",
        {"graph": GRAPH, "inputs": ["9", "1"], "at": "2026-06-02T10:00"},
    ).json()
    assert [s["kind"] for s in run["transcript"]] == [
        "say",
        "ask",
        "input",
        "ask",
        "input",
        "queue",
    ]
    assert run["outcome"]["queue"] == "caf"
    # save, publish, save again, publish, roll back
    saved = post(f"/supervision/flows/{flow.pk}/versions/", {"graph": GRAPH, "note": "v1"}).json()
    v1 = FlowVersion.objects.get(pk=saved["version"]["id"])
    sup_client.post(f"/supervision/flows/{flow.pk}/versions/{v1.pk}/publish/")
    flow.refresh_from_db()
    assert flow.published_version == v1
    other = {
        **GRAPH,
        "nodes": {**GRAPH["nodes"], "accueil": {**GRAPH["nodes"]["accueil"], "text": "Salut."}},
    }
    v2_id = post(f"/supervision/flows/{flow.pk}/versions/", {"graph": other}).json()["version"][
        "id"
    ]
    sup_client.post(f"/supervision/flows/{flow.pk}/versions/{v2_id}/publish/")
    sup_client.post(f"/supervision/flows/{flow.pk}/versions/{v1.pk}/rollback/")
    flow.refresh_from_db()
    assert flow.published_version is not None
    assert flow.published_version.number == 3
    assert flow.published_version.graph == GRAPH
    assert SupervisorAction.objects.filter(kind="flow").count() == 3
    # a broken draft cannot be published
    bad_id = post(f"/supervision/flows/{flow.pk}/versions/", {"graph": broken}).json()["version"][
        "id"
    ]
    answer = sup_client.post(
        f"/supervision/flows/{flow.pk}/versions/{bad_id}/publish/", HTTP_ACCEPT="application/json"
    ).json()
    assert answer["ok"] is False
    assert answer["errors"] == errors


def test_whatif_proposal_is_applied_through_the_audited_actions(
    queue: Any, agent: Any, skill: Any, sup_client: Client
) -> None:
    q = queue("caf", {"apl": 1}, sla_target_seconds=60)
    gus = agent("gus", {"apl": 1})
    apl = skill("apl")
    yesterday = timezone.localdate() - timedelta(days=1)
    form = {
        "date_from": yesterday.isoformat(),
        "date_to": yesterday.isoformat(),
        f"q{q.pk}_priority": "5",
        f"q{q.pk}_target": "45",
        "s0_agent": str(gus.pk),
        "s0_skill": str(apl.pk),
        "s0_level": "4",
    }
    page = sup_client.post("/supervision/what-if/", form)
    assert 'name="apply"' in page.content.decode()  # a proposal was replayed: it can be applied
    response = sup_client.post("/supervision/what-if/", {**form, "apply": "1"})
    assert response.status_code == 302
    q.refresh_from_db()
    assert (q.priority, q.sla_target_seconds) == (5, 45)
    assert gus.skill_levels() == {"apl": 4}
    assert SkillChange.objects.get(agent=gus).note == "proposition simulée"
    assert SupervisorAction.objects.filter(kind="queue").exists()
