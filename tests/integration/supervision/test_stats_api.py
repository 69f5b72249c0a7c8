"""The stats API (/api/v1/stats/): the same figures as the wallboard and the reports page for the
same routed traffic, scoped like the pages (a supervisor sees their teams' queues, nothing of
another organisation), token authentication, clear 400s, and its OpenAPI description."""

from __future__ import annotations

import csv
import io
import itertools
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone
from rest_framework.test import APIClient

from agents.models import AgentPresence, AgentProfile, AgentSkill, AgentState
from apitokens.actions import do_create_service_token, do_issue_personal_token
from configuration.models import Queue, QueueSkill, Skill, Team
from interactions.actions import do_create_interaction, do_transition_interaction
from interactions.lifecycle import Status
from interactions.models import Interaction
from organisations.models import Membership, Organisation
from routing.claims import do_route_pending
from routing.models import Offer, OfferStatus
from routing.offers import do_accept_offer
from supervision.access import scope_for
from supervision.actions import do_record_satisfaction
from supervision.periods import Period, day_bounds, local_day
from supervision.reports import CSV_COLUMNS, Figures, ReportFilter
from supervision.rollup import period_report
from supervision.selectors import wallboard_snapshot
from tests.integration.supervision.conftest import verified_session

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

# Chat, not voice: a voice answer also bridges the call at the provider (none here).
CHANNEL = "chat"
LIVE, REPORTS = "/api/v1/stats/live/", "/api/v1/stats/reports/"


# --------------------------------------------------------------------------- the world


def _user(username: str, role: str, org: Organisation) -> Any:
    user = get_user_model().objects.create_user(username, f"{username}@example.fr", "pw-T-2026!")
    user.groups.add(Group.objects.get(name=role))
    if role != "agent":
        user.is_staff = True
        user.save(update_fields=["is_staff"])
    Membership.objects.create(user=user, organisation=org)
    return user


def _agent(username: str, team: Team, skill: Skill, now: datetime) -> AgentProfile:
    user = _user(username, "agent", team.organisation)
    profile = AgentProfile.objects.create(
        user=user, organisation=team.organisation, team=team, languages=["fr"]
    )
    AgentSkill.objects.create(agent=profile, skill=skill, level=3)
    AgentPresence.objects.filter(agent=profile).update(
        state=AgentState.AVAILABLE,
        last_heartbeat_at=now,
        state_since=now,
        idle_since=now,
        channels_enabled=[CHANNEL],
    )
    return profile


def _queue(org: Organisation, team: Team, code: str, skill: Skill) -> Queue:
    queue = Queue.objects.create(
        organisation=org, team=team, code=code, name=f"File {code}", sla_target_seconds=60
    )
    QueueSkill.objects.create(queue=queue, skill=skill, min_level=1)
    return queue


@dataclass
class World:
    a: Organisation
    b: Organisation
    q1: Queue  # A, team 1 (supervised by sup1)
    q2: Queue  # A, team 2
    qb: Queue  # B
    alice: AgentProfile  # A, team 1
    bob: AgentProfile  # A, team 2
    carol: AgentProfile  # B
    sup1: Any
    admin_a: Any
    sup_b: Any
    lone: Any
    dpo: Any
    platform: Any


def _answered(queue: Queue, agent: AgentProfile, at: datetime, *, wait: int, close: int) -> None:
    call = do_create_interaction(channel=CHANNEL, contact=None, queue=queue, now=at)
    do_route_pending(now=at + timedelta(seconds=wait - 2))  # offered 2 s before the answer
    offer = Offer.objects.get(interaction=call, status=OfferStatus.PENDING)
    assert offer.agent_id == agent.pk
    do_accept_offer(offer_id=offer.pk, agent=agent, now=at + timedelta(seconds=wait))
    _move(call, Status.WRAP_UP, at + timedelta(seconds=close - 10))
    _move(call, Status.CLOSED, at + timedelta(seconds=close))
    AgentPresence.objects.filter(agent=agent).update(state=AgentState.AVAILABLE)


def _move(interaction: Interaction, to: str, at: datetime) -> Interaction:
    interaction.refresh_from_db()
    return do_transition_interaction(interaction=interaction, to=to, now=at)


def _abandoned(queue: Queue, at: datetime, *, after: int) -> None:
    call = do_create_interaction(channel=CHANNEL, contact=None, queue=queue, now=at)
    _move(call, Status.ABANDONED, at + timedelta(seconds=after))


@pytest.fixture
def world(roles: None, django_capture_on_commit_callbacks: Any) -> World:
    now = timezone.now()
    a = Organisation.objects.create(name="CAF de Nulle-Part", slug="caf")
    b = Organisation.objects.create(name="Mairie de Nulle-Part", slug="mairie")
    team1 = Team.objects.create(organisation=a, name="Équipe familles")
    team2 = Team.objects.create(organisation=a, name="Équipe logement")
    team_b = Team.objects.create(organisation=b, name="Équipe état civil")
    skill_a = Skill.objects.create(organisation=a, code="accueil", name="Accueil CAF")
    skill_b = Skill.objects.create(organisation=b, code="accueil", name="Accueil mairie")
    q1 = _queue(a, team1, "familles", skill_a)
    q2 = _queue(a, team2, "logement", skill_a)
    qb = _queue(b, team_b, "etat-civil", skill_b)
    sup1 = _user("sup-familles", "supervisor", a)
    team1.supervisors.add(sup1)
    sup_b = _user("sup-mairie", "supervisor", b)
    team_b.supervisors.add(sup_b)
    world = World(
        a=a,
        b=b,
        q1=q1,
        q2=q2,
        qb=qb,
        alice=_agent("alice", team1, skill_a, now),
        bob=_agent("bob", team2, skill_a, now),
        carol=_agent("carol", team_b, skill_b, now),
        sup1=sup1,
        admin_a=_user("admin-caf", "administrator", a),
        sup_b=sup_b,
        lone=_user("sup-sans-equipe", "supervisor", a),
        dpo=_user("dpo-caf", "data_protection_officer", a),
        platform=get_user_model().objects.create_superuser("platform", "p@example.fr", "pw-T-1!"),
    )
    # bob only answers logement, alice only familles (their queues' teams' skills are equal:
    # keep each on one queue by routing one call at a time)
    AgentPresence.objects.filter(agent=world.bob).update(state=AgentState.PAUSED)
    two_days_ago = now - timedelta(days=2)
    past = two_days_ago.replace(hour=10, minute=0, second=0, microsecond=0)
    midnight, _end = day_bounds(local_day(now))
    today_start = max(now - timedelta(minutes=30), midnight + timedelta(minutes=1))
    with django_capture_on_commit_callbacks(execute=True):
        # two days ago: one answered in 10 s, one abandoned after 40 s (familles)
        _answered(q1, world.alice, past, wait=10, close=200)
        _abandoned(q1, past + timedelta(minutes=5), after=40)
        # today, familles: answered in 15 s (and rated 5), answered in 90 s, abandoned (3 s)
        _answered(q1, world.alice, today_start, wait=15, close=130)
        call = Interaction.objects.filter(queue=q1).order_by("-pk").first()
        assert call is not None
        do_record_satisfaction(interaction=call, score=5)
        _answered(q1, world.alice, today_start + timedelta(minutes=3), wait=90, close=300)
        _abandoned(q1, today_start + timedelta(minutes=9), after=3)
        # the mairie: carol answers one call
        AgentPresence.objects.filter(agent=world.alice).update(state=AgentState.PAUSED)
        _answered(qb, world.carol, today_start, wait=5, close=60)
        # logement: bob answers one, then one e-mail waits
        AgentPresence.objects.filter(agent=world.bob).update(state=AgentState.AVAILABLE)
        _answered(q2, world.bob, today_start + timedelta(minutes=1), wait=20, close=100)
        # and now a call waits on familles: alice is paused, bob in wrap-up
        AgentPresence.objects.filter(agent=world.bob).update(state=AgentState.WRAP_UP)
        do_create_interaction(
            channel=CHANNEL, contact=None, queue=q1, now=now - timedelta(seconds=45)
        )
        do_create_interaction(channel="email", contact=None, queue=q2, now=now)
    return world


# --------------------------------------------------------------------------- clients


def _client(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def _bearer(raw: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


TOKEN_NAMES = itertools.count(1)


def _service(world: World, org: Organisation, scope: str = "read") -> APIClient:
    name = f"tableau de bord {next(TOKEN_NAMES)}"
    _row, raw = do_create_service_token(
        world.platform, name=name, organisation_id=org.pk, scope=scope
    )
    return _bearer(raw)


def _queues(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {q["code"]: q for q in body["queues"]}


def _pct(value: float | None) -> float | None:
    return None if value is None else round(100 * value, 1)


# --------------------------------------------------------------------------- live figures


def test_live_figures_are_the_wallboards(world: World) -> None:
    # given the figures the wallboard shows the supervisor of team 1
    snapshot = wallboard_snapshot(scope_for(world.sup1))  # type: ignore[arg-type]
    board = {(r["queue_id"], r["channel"]): r for r in snapshot["queues"]}

    # when they read the live stats
    response = _client(world.sup1).get(LIVE)

    # then they see their team's queue only, with the wallboard's figures line by line
    assert response.status_code == 200
    body = response.json()
    assert set(_queues(body)) == {"familles"}
    familles = _queues(body)["familles"]
    assert [line["channel"] for line in familles["channels"]] == [CHANNEL]
    for line in familles["channels"]:
        row = board[(world.q1.pk, line["channel"])]
        today = line["today"]
        for name in ("arrived", "offered", "answered", "abandoned", "waiting"):
            assert (today | line)[name] == row[name], name
        for name in ("service_level", "abandonment_rate", "answer_rate", "csat"):
            assert _pct(today[name]) == row[name], name
        assert round(today["asa_s"], 1) == row["asa_s"]
        assert line["alert"] == row["alert"]
        assert abs(line["longest_wait_s"] - row["longest_wait_s"]) <= 1
    # and the figures are the day's: 3 answered or abandoned today, 1 waiting now
    today = familles["today"]
    assert (today["arrived"], today["answered"], today["abandoned"]) == (4, 2, 1)
    assert (today["abandoned_short"], today["answered_within_sla"]) == (1, 1)
    assert today["service_level"] == pytest.approx(1 / 2)  # the 3 s hang-up counts for nothing
    assert today["asa_s"] == pytest.approx((15 + 90) / 2)
    assert today["csat"] == 1.0
    assert (familles["waiting"], familles["longest_wait_s"] >= 45) == (1, True)
    assert familles["alert"] == "service_level_below_goal"
    # the agents who could answer familles (alice and bob hold its skill), by state
    assert familles["agents"] == {
        "logged_in": 2,
        "available": 0,
        "wrap_up": 1,
        "paused": 1,
        "busy": 0,
    }
    # and the agents' table is the wallboard's: team 1's agent only, with their state
    assert [a["name"] for a in body["agents"]] == [a["name"] for a in snapshot["agents"]]
    assert [(a["agent_id"], a["state"]) for a in body["agents"]] == [
        (world.alice.pk, AgentState.PAUSED)
    ]
    assert body["agent_states"] == {"offline": 0, "available": 0, "wrap_up": 0, "paused": 1}
    assert body["agents_connected"] == 1


def test_live_figures_follow_the_next_event(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    client = _client(world.admin_a)
    before = _queues(client.get(LIVE).json())["familles"]
    # when the waiting caller hangs up
    waiting = Interaction.objects.get(queue=world.q1, status=Status.QUEUED)
    with django_capture_on_commit_callbacks(execute=True):
        _move(waiting, Status.ABANDONED, timezone.now())
    after = _queues(client.get(LIVE).json())["familles"]
    assert (before["waiting"], after["waiting"]) == (1, 0)
    assert after["today"]["abandoned"] == before["today"]["abandoned"] + 1
    assert after["longest_wait_s"] is None


def test_one_queue_of_the_live_figures(world: World) -> None:
    client = _client(world.admin_a)
    body = client.get(LIVE, {"queue": world.q2.pk}).json()
    assert list(_queues(body)) == ["logement"]
    assert _queues(body)["logement"]["waiting"] == 1
    assert body["agents"] == []  # a queue's figures: not the agents' table
    # a queue the caller does not see, or not a number: said clearly
    for value in (world.qb.pk, "abc"):
        refused = client.get(LIVE, {"queue": value})
        assert refused.status_code == 400
        assert "queue" in refused.json()
    assert _client(world.sup1).get(LIVE, {"queue": world.q2.pk}).status_code == 400


def test_who_sees_which_queues(world: World) -> None:
    def codes(client: APIClient, **params: Any) -> set[str]:
        response = client.get(LIVE, params)
        assert response.status_code == 200, response.content
        return set(_queues(response.json()))

    assert codes(_client(world.sup1)) == {"familles"}
    assert codes(_client(world.admin_a)) == {"familles", "logement"}
    assert codes(_client(world.sup_b)) == {"etat-civil"}
    assert codes(_client(world.lone)) == set()
    assert _client(world.lone).get(LIVE).json()["agents"] == []
    assert codes(_client(world.platform)) == {"familles", "logement", "etat-civil"}
    assert codes(_client(world.platform), organisation=world.b.pk) == {"etat-civil"}
    # a service token reads its organisation (read scope is enough)
    assert codes(_service(world, world.a)) == {"familles", "logement"}
    assert codes(_service(world, world.b, "write")) == {"etat-civil"}
    # another organisation is never reachable
    assert _client(world.admin_a).get(LIVE, {"organisation": world.b.pk}).status_code == 403
    assert _service(world, world.a).get(LIVE, {"organisation": world.b.pk}).status_code == 403
    # agents, the data-protection officer: refused; nobody: 401
    for user in (world.alice.user, world.dpo):
        for url in (LIVE, REPORTS):
            assert _client(user).get(url).status_code == 403
    for url in (LIVE, REPORTS):
        anonymous = APIClient().get(url)
        assert anonymous.status_code == 401
        assert anonymous["WWW-Authenticate"].startswith("Bearer")


def test_personal_and_service_tokens(world: World) -> None:
    _row, raw = do_issue_personal_token(world.sup1, second_factor=True)
    assert set(_queues(_bearer(raw).get(LIVE).json())) == {"familles"}
    assert _bearer(raw).get(REPORTS).status_code == 200
    assert _bearer("ccp_nothing_butgarbage").get(LIVE).status_code == 401
    _row, agent_raw = do_issue_personal_token(world.alice.user, second_factor=True)
    assert _bearer(agent_raw).get(LIVE).status_code == 403


# --------------------------------------------------------------------------- reports


def _page_csv(user: Any, **params: str) -> bytes:
    query = {"date_from": params["date_from"], "date_to": params["date_to"], "format": "csv"}
    query.update({k: v for k, v in params.items() if k not in query})
    response = verified_session(user).get("/supervision/reports/", query)
    assert response.status_code == 200
    return response.content


@pytest.mark.parametrize("days", [1, 3])
@pytest.mark.parametrize("who", ["sup1", "admin_a", "platform"])
def test_reports_are_the_pages(world: World, days: int, who: str) -> None:
    user = getattr(world, who)
    last = local_day(timezone.now())
    first = last - timedelta(days=days - 1)
    client = _client(user)

    # the JSON figures are the engine's for the caller's scope
    response = client.get(REPORTS, {"from": first.isoformat(), "to": last.isoformat()})
    assert response.status_code == 200, response.content
    body = response.json()
    scope = scope_for(user)
    assert scope is not None
    report = period_report(Period(first, last), ReportFilter(team_ids=scope.team_ids), scope=scope)
    assert (body["from"], body["to"]) == (first.isoformat(), last.isoformat())
    assert body["granularity"] == ("hour" if days == 1 else "day")
    assert body["total"] == _as_json(report.total)
    assert [r["label"] for r in body["rows"]] == [r.label for r in report.rows]
    assert [r["figures"] for r in body["rows"]] == [_as_json(r.figures) for r in report.rows]
    assert len(body["rows"]) in ((23, 24, 25) if days == 1 else (3,))

    # the CSV is the page's, byte for byte, and says the same as the JSON
    dates = {"date_from": first.isoformat(), "date_to": last.isoformat()}
    api_csv = client.get(
        REPORTS, {"from": first.isoformat(), "to": last.isoformat(), "format": "csv"}
    )
    assert api_csv.status_code == 200
    assert api_csv["Content-Type"].startswith("text/csv")
    assert api_csv.content == _page_csv(user, **dates)
    lines = list(csv.DictReader(io.StringIO(api_csv.content.decode())))
    total = lines[-1]
    assert next(iter(total.values())) == "total"
    for column in CSV_COLUMNS:
        value = body["total"][column]
        expected = f"{value:.4f}" if isinstance(value, float) else str(value)
        if value is None:
            expected = ""
        assert total[column] == expected, column


def _as_json(figures: Figures) -> dict[str, Any]:
    return {column: getattr(figures, column) for column in CSV_COLUMNS}


def test_report_figures_of_the_traffic(world: World) -> None:
    """Hand-checked: the supervisor of team 1 over three days (familles only)."""
    body = _client(world.sup1).get(REPORTS, {"period": "last_7_days"}).json()
    total = body["total"]
    assert body["days"] == 7
    # two days ago 1 answered + 1 abandoned; today 2 answered + 1 short abandon + 1 waiting
    assert (total["arrived"], total["answered"], total["abandoned"]) == (6, 3, 2)
    assert (total["abandoned_short"], total["answered_within_sla"]) == (1, 2)
    assert total["service_level"] == pytest.approx(2 / 4)
    assert total["asa_s"] == pytest.approx((10 + 15 + 90) / 3)
    assert (total["csat"], total["csat_responses"]) == (1.0, 1)
    # the same filters as the page: a channel, a queue, an agent
    client = _client(world.admin_a)
    week: dict[str, Any] = {"period": "last_7_days"}
    by_queue = client.get(REPORTS, {**week, "queue": world.q2.pk}).json()
    assert (by_queue["total"]["answered"], by_queue["filters"]["queue"]) == (1, world.q2.pk)
    by_agent = client.get(REPORTS, {**week, "agent": world.alice.pk}).json()
    assert (by_agent["total"]["answered"], by_agent["total"]["abandoned"]) == (3, 0)
    # with filters, the CSV is still the page's
    last = local_day(timezone.now())
    dates = {"date_from": (last - timedelta(days=6)).isoformat(), "date_to": last.isoformat()}
    filters = {"queue": str(world.q1.pk), "channel": CHANNEL}
    api_csv = client.get(REPORTS, {**week, **filters, "format": "csv"}).content
    assert api_csv == _page_csv(world.admin_a, **dates, **filters)
    email = client.get(REPORTS, {**week, "channel": "email"}).json()
    assert (email["total"]["arrived"], email["total"]["offered"]) == (1, 0)
    # a day's rows carry their bounds
    day = client.get(REPORTS, {"period": "today"}).json()
    first_hour = day["rows"][0]
    assert first_hour["label"] == "00:00"
    start = datetime.fromisoformat(first_hour["start"])
    assert (datetime.fromisoformat(first_hour["end"]) - start) == timedelta(hours=1)


def test_another_organisations_figures_never_reach_a_report(world: World) -> None:
    week: dict[str, Any] = {"period": "last_7_days"}
    mairie = _client(world.sup_b).get(REPORTS, week).json()["total"]
    assert (mairie["arrived"], mairie["answered"]) == (1, 1)
    caf = _service(world, world.a).get(REPORTS, week).json()["total"]
    assert (caf["arrived"], caf["answered"]) == (8, 4)  # familles 6 + logement 2
    # the mairie's queue, team or agent as a filter: not among the choices
    client = _client(world.admin_a)
    for name, value in (("queue", world.qb.pk), ("agent", world.carol.pk)):
        refused = client.get(REPORTS, {**week, name: value})
        assert refused.status_code == 400
        assert name in refused.json()
    lone = _client(world.lone).get(REPORTS, week).json()["total"]
    assert lone["arrived"] == 0


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2026-13-01"}, "from"),
        ({"from": "hier"}, "from"),
        ({"from": "2026-12-01", "to": "2026-02-30"}, "to"),
        ({"from": "2026-12-03", "to": "2026-12-01"}, "non_field_errors"),
        ({"from": "2024-01-01", "to": "2026-01-01"}, "non_field_errors"),
        ({"period": "fortnight"}, "period"),
        ({"period": "today", "from": "2026-12-01"}, "period"),
        ({"channel": "fax"}, "channel"),
        ({"queue": "abc"}, "queue"),
        ({"team": "999999"}, "team"),
        ({"organisation": "caf"}, "organisation"),
        ({"from": "2026-13-01", "format": "csv"}, "from"),
    ],
)
def test_bad_parameters_are_a_clear_400(
    supervisor: Any, params: dict[str, str], field: str
) -> None:
    response = _client(supervisor).get(REPORTS, params)
    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert list(body) == [field]
    messages = body[field] if isinstance(body[field], list) else [body[field]]
    assert messages
    assert all(isinstance(m, str) and m for m in messages)


# --------------------------------------------------------------------------- OpenAPI


def test_the_openapi_schema_describes_the_stats(world: World) -> None:
    schema = APIClient().get("/api/v1/schema/", {"format": "json"}).json()
    live = schema["paths"]["/api/v1/stats/live/"]["get"]
    reports = schema["paths"]["/api/v1/stats/reports/"]["get"]
    ok = live["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/LiveStats"}
    assert {p["name"] for p in live["parameters"]} == {"queue", "organisation"}
    assert {p["name"] for p in reports["parameters"]} >= {"period", "from", "to", "queue"}
    content = reports["responses"]["200"]["content"]
    assert content["application/json"]["schema"] == {"$ref": "#/components/schemas/ReportStats"}
    assert "text/csv" in content
    assert {"400", "401", "403"} <= set(reports["responses"]) & set(live["responses"])
    components = schema["components"]["schemas"]
    assert set(components["ReportStats"]["properties"]) >= {"from", "to", "total", "rows"}
    assert set(components["Figures"]["properties"]) == set(CSV_COLUMNS)
    queue = components["QueueLive"]["properties"]
    assert {"waiting", "longest_wait_s", "today", "agents", "channels"} <= set(queue)
