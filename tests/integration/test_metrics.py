"""The metrics endpoint (docs/operations.md, "Metrics"): what an operator's Prometheus finds
after real traffic, per organisation and queue, and who is refused.

Routing runs as in tests/integration/routing (the real pass on the database); the Celery queue
lengths are read from a real Redis broker; the multi-process test routes through a real Celery
worker process and reads its counters from the shared directory.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from agents.models import AgentPresence, AgentProfile, AgentSkill, AgentState
from configuration.models import Queue, QueueSkill, Skill, Team
from interactions.actions import do_create_interaction, do_transition_interaction
from interactions.lifecycle import Status
from interactions.models import Interaction
from organisations.models import Organisation
from routing.claims import do_route_pending
from routing.models import Offer, OfferStatus
from routing.offers import do_accept_offer
from tests.support import celery_broker, clear_broker, redis_db_url, start_workers, stop_workers

TOKEN = "metrics-test-token-0123456789abcdef"
REDIS_DB = 5  # this test's broker database: REDIS_URL's + 5 (tests/support.py)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: Client, token: str | None = TOKEN, **extra: Any) -> Samples:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    response = client.get("/metrics", headers=headers, **extra)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value (0 when it is not there: a counter never moved)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def series(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


@pytest.fixture
def metrics_on(settings: Any) -> None:
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_NETWORKS = ["127.0.0.0/8", "::1/128"]
    settings.TRUSTED_PROXIES = []
    settings.PROMETHEUS_MULTIPROC_DIR = ""


def _organisation(slug: str) -> Organisation:
    return Organisation.objects.create(name=f"Organisation {slug}", slug=slug)


def _queue(org: Organisation, code: str) -> Queue:
    team, _ = Team.objects.get_or_create(organisation=org, name=f"Équipe {org.slug}")
    queue = Queue.objects.create(
        organisation=org, code=code, name=code, team=team, sla_target_seconds=60
    )
    skill, _ = Skill.objects.get_or_create(
        organisation=org, code="accueil", defaults={"name": "Accueil"}
    )
    QueueSkill.objects.create(queue=queue, skill=skill, min_level=1)
    return queue


def _agent(org: Organisation, username: str, **profile: Any) -> AgentProfile:
    user = get_user_model().objects.create_user(username, password="x")
    team = Team.objects.get(organisation=org)
    agent = AgentProfile.objects.create(user=user, team=team, languages=["fr"], **profile)
    AgentSkill.objects.create(agent=agent, skill=Skill.objects.get(organisation=org), level=3)
    now = timezone.now()
    AgentPresence.objects.filter(agent=agent).update(
        state=AgentState.AVAILABLE, last_heartbeat_at=now, state_since=now, idle_since=now
    )
    return agent


# --------------------------------------------------------------------------- figures


@pytest.mark.django_db
def test_a_scrape_after_routed_traffic_finds_the_counters_moved_and_each_body_its_own_figures(
    client: Client, metrics_on: None, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    # given: two bodies; the CAF has one agent who takes one chat at a time, the mairie nobody
    caf, mairie = _organisation("caf"), _organisation("mairie")
    caf_queue, mairie_queue = _queue(caf, "caf-accueil"), _queue(mairie, "etat-civil")
    agent = _agent(caf, "camille", capacity_chat=1)
    before = scrape(client)
    earlier = timezone.now() - timedelta(seconds=90)
    with django_capture_on_commit_callbacks(execute=True):
        first = do_create_interaction(channel="chat", contact=None, queue=caf_queue)
        do_create_interaction(channel="chat", contact=None, queue=caf_queue)
        do_create_interaction(channel="voice", contact=None, queue=mairie_queue, now=earlier)
        left = do_create_interaction(channel="voice", contact=None, queue=mairie_queue, now=earlier)
    # when: the router runs (each arrival requests a pass after its commit, run inline here;
    # one more pass finds nothing to claim), the agent answers, a citizen of the mairie hangs up
    do_route_pending()
    offer = Offer.objects.get(interaction=first, status=OfferStatus.PENDING)
    with django_capture_on_commit_callbacks(execute=True):
        do_accept_offer(offer_id=offer.pk, agent=agent)
        do_transition_interaction(interaction=left, to=Status.ABANDONED, reason="hung_up")
    after = scrape(client)

    # then: the routing counters moved by what happened
    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("cc_routing_claims_total", kind="offered") == 1
    assert moved("cc_routing_claims_total", kind="assigned") == 0
    assert moved("cc_routing_pass_duration_seconds_count", outcome="planned") >= 1
    assert moved("cc_routing_pass_duration_seconds_sum", outcome="planned") > 0
    # and each body's queue figures are its own (the wallboard's definitions)
    chat = {"organisation": "caf", "queue": "caf-accueil", "channel": "chat"}
    voice = {"organisation": "mairie", "queue": "etat-civil", "channel": "voice"}
    assert value(after, "cc_queue_waiting_contacts", **chat) == 1  # the second chat
    assert value(after, "cc_queue_answered_today", **chat) == 1
    assert value(after, "cc_queue_offered_today", **chat) == 1
    assert value(after, "cc_queue_abandoned_today", **chat) == 0
    assert value(after, "cc_queue_service_level_ratio", **chat) == 1.0
    assert 0 <= value(after, "cc_queue_oldest_wait_seconds", **chat) < 60
    assert value(after, "cc_queue_waiting_contacts", **voice) == 1
    assert value(after, "cc_queue_abandoned_today", **voice) == 1
    assert value(after, "cc_queue_answered_today", **voice) == 0
    assert value(after, "cc_queue_service_level_ratio", **voice) == 0.0
    assert value(after, "cc_queue_oldest_wait_seconds", **voice) >= 90
    assert value(
        after, "cc_queue_service_level_goal_ratio", organisation="caf", queue="caf-accueil"
    )
    # and no queue shows under another body's name
    pairs = {
        (dict(labels)["organisation"], dict(labels)["queue"])
        for (name, labels) in after
        if name.startswith("cc_queue_")
    }
    assert ("caf", "caf-accueil") in pairs
    assert ("mairie", "etat-civil") in pairs
    assert ("caf", "etat-civil") not in pairs
    assert ("mairie", "caf-accueil") not in pairs
    assert value(after, "cc_scrape_up", source="queues") == 1
    # and the figures agree with the database
    assert Interaction.objects.filter(queue=caf_queue, status=Status.QUEUED).count() == 1


@pytest.mark.django_db
def test_an_idle_pass_is_timed_apart_from_the_passes_that_plan(
    client: Client, metrics_on: None
) -> None:
    before = value(scrape(client), "cc_routing_pass_duration_seconds_count", outcome="idle")
    do_route_pending()  # nothing waiting: one index probe
    after = value(scrape(client), "cc_routing_pass_duration_seconds_count", outcome="idle")
    assert after - before == 1


# --------------------------------------------------------------------------- who may scrape


@pytest.mark.django_db
def test_without_a_token_configured_the_endpoint_is_off(client: Client, settings: Any) -> None:
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer wrong-token", f"Token {TOKEN}", f"Basic {TOKEN}", TOKEN],
)
def test_a_missing_or_wrong_token_is_refused(
    client: Client, metrics_on: None, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 403
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"cc_" not in response.content


@pytest.mark.django_db
def test_a_signed_in_user_of_any_role_gets_nothing_more(
    client: Client, metrics_on: None, make_user: Callable[..., Any]
) -> None:
    for role in ("agent", "supervisor", "administrator", "platform_administrator"):
        user = make_user(f"user-{role}", role, profile=role == "agent")
        client.force_login(user)
        assert client.get("/metrics").status_code == 403, role
    superuser = get_user_model().objects.create_superuser("root", "root@example.fr", "x")
    client.force_login(superuser)
    assert client.get("/metrics").status_code == 403


@pytest.mark.django_db
def test_callers_outside_the_allowed_networks_are_refused_even_with_the_token(
    client: Client, metrics_on: None, settings: Any
) -> None:
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    # a public address
    assert client.get("/metrics", headers=bearer, REMOTE_ADDR="203.0.113.9").status_code == 404
    # a request relayed by a proxy nobody declared, whatever it says the client is
    relayed = client.get(
        "/metrics", headers=bearer, REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="127.0.0.1"
    )
    assert relayed.status_code == 404
    # through a trusted proxy, the client's own address counts
    settings.TRUSTED_PROXIES = ["10.0.0.2"]
    settings.METRICS_ALLOWED_NETWORKS = ["192.168.10.0/24"]
    inside = client.get(
        "/metrics", headers=bearer, REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="192.168.10.7"
    )
    outside = client.get(
        "/metrics", headers=bearer, REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.4"
    )
    assert inside.status_code == 200
    assert outside.status_code == 404


@pytest.mark.django_db
def test_only_get(client: Client, metrics_on: None) -> None:
    response = client.post("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 405


# --------------------------------------------------------------------------- Celery queues


@pytest.fixture
def broker(settings: Any) -> Iterator[str]:
    url = redis_db_url(REDIS_DB)
    clear_broker(url)
    with celery_broker(url, settings):
        yield url
    clear_broker(url)


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db
def test_celery_queue_lengths_are_read_from_the_broker(
    client: Client, metrics_on: None, broker: str
) -> None:
    from contactcentre.celery import app
    from kernel.queues import QUEUES

    # given: no worker consumes; three routing passes and one report task are waiting
    for _ in range(3):
        app.send_task("routing.route_pending")
    app.send_task("supervision.build_day", args=["2026-01-01"])
    # when
    samples = scrape(client)
    # then
    lengths = {
        dict(labels)["queue"]: v for labels, v in series(samples, "cc_celery_queue_length").items()
    }
    assert set(lengths) == set(QUEUES)
    assert lengths["route"] == 3
    assert lengths["reports"] == 1
    assert lengths["ingest"] == lengths["outbound"] == lengths["celery"] == 0
    assert value(samples, "cc_scrape_up", source="celery") == 1


@pytest.mark.django_db
def test_a_broker_that_does_not_answer_leaves_the_rest_of_the_scrape(
    client: Client, metrics_on: None, settings: Any
) -> None:
    import socket

    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{port}/0"
    samples = scrape(client)
    assert value(samples, "cc_scrape_up", source="celery") == 0
    assert value(samples, "cc_scrape_up", source="queues") == 1
    assert not series(samples, "cc_celery_queue_length")


# --------------------------------------------------------------------------- several processes


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_process_routes_and_the_web_endpoint_adds_up_its_counters(
    client: Client, metrics_on: None, settings: Any, tmp_path: Path
) -> None:
    from contactcentre.celery import app

    # given: a real Celery worker writing its metrics to the shared directory
    shared = tmp_path / "metrics"
    url = redis_db_url(REDIS_DB)
    clear_broker(url)
    caf = _organisation("caf")
    queue = _queue(caf, "caf-accueil")
    _agent(caf, "camille")
    with celery_broker(url, settings):
        workers = start_workers(1, url, extra_env={"PROMETHEUS_MULTIPROC_DIR": str(shared)})
        try:
            # when: a contact arrives; its routing pass runs in the worker
            do_create_interaction(channel="chat", contact=None, queue=queue)
            deadline = timezone.now() + timedelta(seconds=60)
            while timezone.now() < deadline:
                if Offer.objects.filter(interaction__queue=queue).exists():
                    break
                app.send_task("routing.route_pending")
                time.sleep(0.2)
        finally:
            stop_workers(workers)
    clear_broker(url)
    assert Offer.objects.filter(interaction__queue=queue).exists()
    # then: the web endpoint, in multi-process mode, reads the worker's files
    settings.PROMETHEUS_MULTIPROC_DIR = str(shared)
    files = sorted(p.name for p in shared.iterdir())
    assert any(name.startswith("counter_") for name in files), files
    assert all(
        re.fullmatch(r"(counter|histogram|gauge_liveall)_[A-Za-z0-9.-]+-\d+\.db", n) for n in files
    )
    samples = scrape(client)
    assert value(samples, "cc_routing_claims_total", kind="offered") == 1
    assert value(samples, "cc_routing_pass_duration_seconds_count", outcome="planned") >= 1
    assert (
        value(
            samples,
            "cc_queue_waiting_contacts",
            **{"organisation": "caf", "queue": "caf-accueil", "channel": "chat"},
        )
        == 1
    )  # offered, not answered yet: still waiting for the citizen


def test_multiprocess_files_are_named_after_the_host_and_the_process(tmp_path: Path) -> None:
    """Two containers sharing the directory both have a process 7: their files must differ."""
    code = (
        "from kernel import instruments\n"
        "instruments.outbound_retry('sms')\n"
        "instruments.console_sockets(3)\n"
        "print(instruments.process_id())\n"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    ran = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    identifier = ran.stdout.strip()
    host = identifier.rsplit("-", 1)[0]
    assert host
    assert "_" not in identifier
    names = sorted(p.name for p in tmp_path.iterdir())
    assert f"counter_{identifier}.db" in names
    # the process ended: its per-process gauge went with it, its counter stayed
    assert f"gauge_liveall_{identifier}.db" not in names


@pytest.mark.django_db
def test_the_grafana_dashboard_uses_only_metrics_the_endpoint_serves(
    client: Client, metrics_on: None
) -> None:
    import json

    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    served: set[str] = set()
    for family in text_string_to_metric_families(response.content.decode()):
        served |= {family.name + suffix for suffix in ("", "_total", "_bucket", "_count", "_sum")}
    dashboard = json.loads(
        (Path(__file__).resolve().parents[2] / "docs/grafana/contactcentre.json").read_text()
    )
    expressions = [
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
    ] + [
        v["query"]["query"]
        for v in dashboard["templating"]["list"]
        if "query" in v and isinstance(v["query"], dict)
    ]
    used = {name for expr in expressions for name in re.findall(r"\bcc_[a-z_]+", expr)}
    assert used
    assert used <= served, sorted(used - served)


def test_a_short_token_is_warned_about_and_a_malformed_network_is_an_error(settings: Any) -> None:
    from metrics.checks import check_metrics_settings

    settings.METRICS_TOKEN = "short"
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8", "not-a-network"]
    assert sorted(str(m.id) for m in check_metrics_settings()) == ["metrics.E001", "metrics.W001"]
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    settings.PROMETHEUS_MULTIPROC_DIR = ""
    assert check_metrics_settings() == []
    # the directory named in the settings only, not in the process's environment
    settings.PROMETHEUS_MULTIPROC_DIR = "/run/metrics"
    assert [m.id for m in check_metrics_settings()] == ["metrics.W002"]
