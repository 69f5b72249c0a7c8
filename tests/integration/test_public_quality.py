"""The public quality page and its open data (issue 14): per organisation, no login, the last
month and the last 12 months per channel, figures equal to the supervisors' report for the same
period, commitments beside them, CSV and JSON with a stable schema and a licence."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from configuration.models import Queue
from interactions.actions import do_create_interaction, do_transition_interaction
from interactions.lifecycle import Status
from interactions.models import Interaction
from organisations.models import Membership, Organisation
from publicquality.figures import LAST_12_MONTHS, LAST_MONTH, public_periods
from publicquality.models import Commitment
from supervision.models import SatisfactionResponse
from supervision.periods import PARIS, Period

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

CHANNELS = ("voice", "sms", "email", "chat", "all")
# The stable schema (version 1.0) of one channel's record, in this order (JSON and CSV).
CHANNEL_FIELDS = (
    "channel",
    "contacts",
    "offered",
    "answered",
    "answer_rate",
    "within_announced_delay_rate",
    "average_delay_seconds",
    "satisfaction_rate",
    "satisfaction_responses",
    "announced_delay_seconds",
    "answer_rate_target",
    "within_delay_target",
)


@dataclass
class World:
    a: Organisation
    b: Organisation
    periods: dict[str, Period]


def _at(day: date, hour: int = 10) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=PARIS)


def arrive(
    queue: Queue,
    channel: str,
    at: datetime,
    *,
    wait_s: float | None = None,
    abandon_s: float | None = None,
    close_unanswered: bool = False,
    csat: int | None = None,
) -> Interaction:
    """One interaction's life: answered after ``wait_s`` (then closed), abandoned after
    ``abandon_s``, closed unanswered, or still waiting."""
    interaction = do_create_interaction(channel=channel, contact=None, queue=queue, now=at)
    if wait_s is not None:
        answered = at + timedelta(seconds=wait_s)
        do_transition_interaction(interaction=interaction, to=Status.ASSIGNED, now=answered)
        end = answered + timedelta(minutes=4)
        do_transition_interaction(interaction=interaction, to=Status.WRAP_UP, now=end)
        do_transition_interaction(interaction=interaction, to=Status.CLOSED, now=end)
    elif abandon_s is not None:
        left = at + timedelta(seconds=abandon_s)
        do_transition_interaction(interaction=interaction, to=Status.ABANDONED, now=left)
    elif close_unanswered:
        do_transition_interaction(
            interaction=interaction, to=Status.CLOSED, now=at + timedelta(hours=1)
        )
    if csat is not None:
        SatisfactionResponse.objects.create(
            interaction=interaction, score=csat, at=at + timedelta(hours=2)
        )
    return interaction


def _queues(org: Organisation) -> dict[str, Queue]:
    targets = {"voice": 60, "sms": 3600, "email": 86400, "chat": 120}
    return {
        ch: Queue.objects.create(
            organisation=org, code=f"q-{ch}", name=f"File {ch} {org.slug}", sla_target_seconds=s
        )
        for ch, s in targets.items()
    }


@pytest.fixture
def world(settings: Any) -> World:
    settings.PUBLIC_QUALITY_CACHE_SECONDS = 0
    a = Organisation.objects.create(name="CAF de l'Ain", slug="caf-ain", siret="53421212100015")
    b = Organisation.objects.create(name="Mairie de Bourg", slug="mairie-bourg")
    periods = public_periods(timezone.localdate())
    last = periods[LAST_MONTH]
    older = periods[LAST_12_MONTHS].first + timedelta(days=9)  # in the 12 months only
    qa, qb = _queues(a), _queues(b)
    # A, last month. Voice: answered in 30 s and 150 s (target 60 s), abandoned after 20 s and
    # after 2 s (a short abandon: out of the within-delay rate), closed unanswered.
    day = last.first + timedelta(days=3)
    arrive(qa["voice"], "voice", _at(day), wait_s=30)
    arrive(qa["voice"], "voice", _at(day, 11), wait_s=150)
    arrive(qa["voice"], "voice", _at(day, 12), abandon_s=20)
    arrive(qa["voice"], "voice", _at(day, 13), abandon_s=2)
    arrive(qa["voice"], "voice", _at(day, 14), close_unanswered=True)
    # E-mail: two answered within the day, rated 5 and 2; chat: one answered, rated 4.
    arrive(qa["email"], "email", _at(last.last, 9), wait_s=3 * 3600, csat=5)
    arrive(qa["email"], "email", _at(last.last, 9), wait_s=5 * 3600, csat=2)
    arrive(qa["chat"], "chat", _at(last.first), wait_s=60, csat=4)
    # A, earlier in the 12 months: two voice calls answered at once; before them, one outside.
    arrive(qa["voice"], "voice", _at(older), wait_s=10)
    arrive(qa["voice"], "voice", _at(older, 15), wait_s=10)
    arrive(qa["voice"], "voice", _at(periods[LAST_12_MONTHS].first - timedelta(days=3)), wait_s=5)
    # A, this month: in neither period.
    arrive(qa["voice"], "voice", timezone.now() - timedelta(minutes=5), wait_s=10)
    # B, last month: nine SMS, all abandoned (never in A's figures).
    for n in range(9):
        arrive(qb["sms"], "sms", _at(day, 8 + n), abandon_s=600)
    Commitment.objects.create(
        organisation=a,
        channel="voice",
        answer_delay_seconds=60,
        answer_rate_target=85,
        within_delay_target=80,
    )
    Commitment.objects.create(organisation=a, channel="email", answer_delay_seconds=2 * 86400)
    Commitment.objects.create(organisation=b, channel="sms", answer_delay_seconds=7 * 86400)
    return World(a=a, b=b, periods=periods)


def open_data(org: Organisation) -> dict[str, Any]:
    response = Client().get(f"/qualite/{org.slug}/donnees.json")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    return json.loads(response.content)


def record(data: dict[str, Any], period: str, channel: str) -> dict[str, Any]:
    (p,) = [p for p in data["periods"] if p["period"] == period]
    (c,) = [c for c in p["channels"] if c["channel"] == channel]
    return c


def test_the_figures_are_those_of_the_published_periods(world: World) -> None:
    data = open_data(world.a)
    voice = record(data, LAST_MONTH, "voice")
    assert voice["contacts"] == 5
    assert voice["answered"] == 2
    assert voice["offered"] == 5
    assert voice["answer_rate"] == 0.4  # 2 answered out of 5 needing an agent
    assert voice["within_announced_delay_rate"] == round(1 / 3, 4)  # 1 of (2 + 2 - 1 short)
    assert voice["average_delay_seconds"] == 90.0
    assert voice["satisfaction_rate"] is None  # no survey answer: not measured
    assert voice["announced_delay_seconds"] == 60
    assert voice["answer_rate_target"] == 85
    email = record(data, LAST_MONTH, "email")
    assert email["satisfaction_rate"] == 0.5
    assert email["satisfaction_responses"] == 2
    assert email["within_announced_delay_rate"] == 1.0
    assert record(data, LAST_MONTH, "sms")["contacts"] == 0  # B's SMS are not A's
    assert record(data, LAST_MONTH, "all")["contacts"] == 8
    year = record(data, LAST_12_MONTHS, "voice")
    assert year["contacts"] == 7  # the two older calls, not the one before nor this month's
    assert year["answered"] == 4
    assert data["organisation"] == {
        "name": "CAF de l'Ain",
        "slug": "caf-ain",
        "siret": "53421212100015",
    }


def _login_admin(org: Organisation, make_user: Any) -> Client:
    from django_otp.plugins.otp_totp.models import TOTPDevice

    user = make_user(f"admin-{org.slug}", role="administrator", profile=False)
    Membership.objects.create(user=user, organisation=org)
    device = TOTPDevice.objects.create(user=user, name="test", confirmed=True)
    client = Client()
    client.force_login(user)
    session = client.session
    session["otp_device_id"] = device.persistent_id
    session.save()
    return client


REPORT_TO_OPEN_DATA = {
    "arrived": "contacts",
    "offered": "offered",
    "answered": "answered",
    "answer_rate": "answer_rate",
    "service_level": "within_announced_delay_rate",
    "asa_s": "average_delay_seconds",
    "csat": "satisfaction_rate",
    "csat_responses": "satisfaction_responses",
}


@pytest.mark.parametrize("org_name", ["a", "b"])
def test_public_figures_agree_with_the_supervisors_report(
    world: World, make_user: Any, org_name: str
) -> None:
    """For each organisation, period and channel: the open data equal the total line of the
    supervisors' report (CSV) of the organisation's administrator for the same days."""
    org = getattr(world, org_name)
    admin = _login_admin(org, make_user)
    data = open_data(org)
    compared = 0
    for key, period in world.periods.items():
        for channel in CHANNELS:
            query = f"date_from={period.first}&date_to={period.last}&format=csv"
            if channel != "all":
                query += f"&channel={channel}"
            response = admin.get(f"/supervision/reports/?{query}")
            assert response.status_code == 200
            rows = list(csv.DictReader(io.StringIO(response.content.decode())))
            total = rows[-1]
            assert next(iter(total.values())) == "total"
            published = record(data, key, channel)
            for report_column, field in REPORT_TO_OPEN_DATA.items():
                value = published[field]
                cell = total[report_column]
                if value is None:
                    assert cell == "", (key, channel, report_column)
                else:
                    assert float(cell) == pytest.approx(value, abs=1e-4), (key, channel, field)
                compared += 1
    assert compared == 2 * len(CHANNELS) * len(REPORT_TO_OPEN_DATA)


def test_open_data_schema_is_stable(world: World) -> None:
    data = open_data(world.a)
    assert set(data) == {"schema_version", "licence", "organisation", "generated_at", "periods"}
    assert data["schema_version"] == "1.0"
    assert data["licence"]["id"] == "etalab-2.0"
    assert data["licence"]["name"] == "Licence Ouverte / Open Licence version 2.0"
    assert [p["period"] for p in data["periods"]] == [LAST_MONTH, LAST_12_MONTHS]
    for p in data["periods"]:
        assert set(p) == {"period", "first_day", "last_day", "channels"}
        assert [c["channel"] for c in p["channels"]] == list(CHANNELS)
        for c in p["channels"]:
            assert tuple(c) == CHANNEL_FIELDS
    assert data["periods"][0]["first_day"] == world.periods[LAST_MONTH].first.isoformat()

    response = Client().get(f"/qualite/{world.a.slug}/donnees.csv")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert tuple(rows[0]) == (
        "organisation",
        "period",
        "first_day",
        "last_day",
        *CHANNEL_FIELDS,
        "licence",
    )
    assert len(rows) == 1 + 2 * len(CHANNELS)
    voice = dict(zip(rows[0], rows[1], strict=True))
    assert voice["channel"] == "voice"
    assert voice["answer_rate"] == "0.4000"
    assert voice["satisfaction_rate"] == ""  # not measured: empty, never 0
    assert voice["licence"] == "etalab-2.0"
    assert {r[0] for r in rows[1:]} == {"caf-ain"}


def test_the_page_shows_results_beside_commitments_with_definitions(world: World) -> None:
    response = Client().get(f"/qualite/{world.a.slug}/")
    assert response.status_code == 200
    text = response.content.decode()
    assert '<html lang="fr">' in text
    assert "Qualité de service de CAF de l&#x27;Ain" in text
    assert "Le mois dernier" in text
    assert "Les 12 derniers mois" in text
    assert "Taux de décroché" in text
    assert "40,0 %" in text  # voice answer rate, French number format
    assert "85 %" in text  # the commitment beside it
    assert "non mesuré" in text  # voice satisfaction without any survey answer
    assert "Définitions" in text
    assert "Licence Ouverte / Etalab 2.0" in text
    english = Client().get(f"/qualite/{world.a.slug}/?lang=en").content.decode()
    assert '<html lang="en">' in english
    assert "Last 12 months" in english
    assert "not measured" in english


def test_each_organisation_publishes_only_its_own_figures(world: World) -> None:
    b = open_data(world.b)
    assert record(b, LAST_MONTH, "sms")["contacts"] == 9
    assert record(b, LAST_MONTH, "voice")["contacts"] == 0
    assert record(b, LAST_MONTH, "sms")["announced_delay_seconds"] == 7 * 86400
    assert record(b, LAST_MONTH, "voice")["announced_delay_seconds"] is None  # A's is not B's
    page_b = Client().get(f"/qualite/{world.b.slug}/").content.decode()
    assert "CAF de l&#x27;Ain" not in page_b
    assert "85 %" not in page_b


def test_unknown_and_inactive_organisations_are_not_found(world: World) -> None:
    assert Client().get("/qualite/nulle-part/").status_code == 404
    assert Client().get("/qualite/nulle-part/donnees.json").status_code == 404
    Organisation.objects.filter(pk=world.b.pk).update(active=False)
    assert Client().get(f"/qualite/{world.b.slug}/").status_code == 404
    assert Client().get(f"/qualite/{world.b.slug}/donnees.csv").status_code == 404
