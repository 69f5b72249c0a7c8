"""Routing and presence failure paths (issue 12).

- declined contacts never hide newer ones from the agent who declined them (work-conserving);
- offers and wrap-ups end at their deadline with a real worker and no beat;
- an agent whose console vanished gives their work back (in front) and goes offline with a
  reason; the wallboard counts only live consoles as connected;
- the embedded scheduler knows and runs every periodic task.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from agents.models import AgentPresence, AgentState, PauseReason
from contactcentre.celery import ROUTE_QUEUE
from interactions.actions import do_transition_interaction
from interactions.lifecycle import Status
from interactions.models import Interaction
from routing.claims import do_route_pending
from routing.models import Offer, OfferStatus
from routing.offers import do_accept_offer, do_decline_offer
from routing.tasks import sweep
from tests.support import celery_broker, clear_broker, redis_db_url, start_workers, stop_workers

ROOT = Path(__file__).resolve().parents[3]
CONNECTION_LOST = "connection_lost"  # agents.models.OfflineReason.CONNECTION_LOST


def pending_offer(interaction: Interaction) -> Offer:
    return Offer.objects.get(interaction=interaction, status=OfferStatus.PENDING)


# --------------------------------------------------------------------------- declines


@pytest.mark.django_db
def test_declined_sms_do_not_hide_a_new_one_from_the_agent_who_declined_them(
    queue: Any, agent: Any, arrive: Any
) -> None:
    # given an agent taking SMS (capacity 5) who declined five SMS
    q = queue("sms", {"x": 1})
    a = agent("a", {"x": 1}, channels=["sms"], capacity_sms=5)
    declined = [arrive(q, "sms") for _ in range(5)]
    assert do_route_pending().offered == 5
    for sms in declined:
        do_decline_offer(offer_id=pending_offer(sms).pk, agent=a)

    # when a sixth SMS arrives (newer than the declined ones, in the same queue)
    sixth = arrive(q, "sms")
    result = do_route_pending()

    # then the next pass offers it to that agent: nobody idles while a contact they may take waits
    assert result.offered == 1
    assert pending_offer(sixth).agent == a
    for sms in declined:
        sms.refresh_from_db()
        assert sms.status == Status.QUEUED


@pytest.mark.django_db
def test_declines_by_several_agents_never_leave_a_free_agent_idle(
    queue: Any, agent: Any, arrive: Any
) -> None:
    # given two agents who each declined different SMS of one queue
    q = queue("sms", {"x": 1})
    a = agent("a", {"x": 1}, channels=["sms"], capacity_sms=3)
    b = agent("b", {"x": 1}, channels=["sms"], capacity_sms=3)
    older = [arrive(q, "sms") for _ in range(6)]
    assert do_route_pending().offered == 6
    for sms in older:
        offer = pending_offer(sms)
        do_decline_offer(offer_id=offer.pk, agent=offer.agent)
    newer = [arrive(q, "sms") for _ in range(2)]

    # when the router runs
    do_route_pending()

    # then every SMS someone may take is offered: each declined one to the other agent
    for sms in older + newer:
        sms.refresh_from_db()
    offered = [s for s in older + newer if s.status == Status.OFFERED]
    assert len(offered) == 6  # 2 x capacity 3, every slot used
    assert {s.assigned_agent_id for s in offered} == {a.pk, b.pk}
    for sms in offered:
        assert not Offer.objects.filter(
            interaction=sms, agent_id=sms.assigned_agent_id, status=OfferStatus.DECLINED
        ).exists()


# --------------------------------------------------------------------------- timers, no beat


@pytest.fixture
def worker_no_beat(settings: Any) -> Iterator[None]:
    """One real Celery worker on this test's Redis db (REDIS_URL), and no beat at all."""

    broker = settings.REDIS_URL
    clear_broker(broker)
    settings.ROUTING_OFFER_TIMEOUTS = {**settings.ROUTING_OFFER_TIMEOUTS, "chat": 2}
    settings.ROUTING_WRAP_UP_SECONDS = 2
    with celery_broker(broker, settings):
        processes = start_workers(
            1,
            broker,
            extra_env={"ROUTING_OFFER_TIMEOUT_CHAT": "2", "ROUTING_WRAP_UP_SECONDS": "2"},
        )
        try:
            yield
        finally:
            stop_workers(processes)


def _wait_for(check: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return bool(check())


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_offers_and_wrap_ups_end_at_their_deadline_without_beat(
    worker_no_beat: None, queue: Any, agent: Any, arrive: Any
) -> None:
    # given an agent who is offered a chat (the worker routes it) and never answers
    q = queue("chat", {"x": 1})
    absent = agent("absent", {"x": 1}, channels=["chat"])
    chat = arrive(q, "chat")
    assert _wait_for(lambda: Offer.objects.filter(interaction=chat).exists(), 20)
    offer = Offer.objects.get(interaction=chat)
    assert offer.agent_id == absent.pk

    # then, with no beat and no sweep, the offer expires within its timeout + a few seconds
    # (the slack is for a loaded machine: the worker's own queue may be behind)
    deadline = (offer.expires_at - timezone.now()).total_seconds() + 20
    assert _wait_for(
        lambda: Offer.objects.get(pk=offer.pk).status == OfferStatus.EXPIRED, deadline
    ), "the offer never expired without beat"
    presence = AgentPresence.objects.get(agent=absent)
    assert presence.state == AgentState.PAUSED
    assert presence.pause_reason == PauseReason.MISSED
    chat.refresh_from_db()
    assert chat.status == Status.QUEUED

    # and a call's wrap-up ends at its timer, too
    v = queue("voice", {"y": 1})
    b = agent("b", {"y": 1}, channels=["voice"])
    call = arrive(v, "voice")
    assert _wait_for(
        lambda: Offer.objects.filter(interaction=call, status=OfferStatus.PENDING).exists(), 20
    )
    do_accept_offer(offer_id=pending_offer(call).pk, agent=b)
    call.refresh_from_db()
    do_transition_interaction(interaction=call, to=Status.WRAP_UP)
    assert AgentPresence.objects.get(agent=b).state == AgentState.WRAP_UP
    assert _wait_for(
        lambda: AgentPresence.objects.get(agent=b).state == AgentState.AVAILABLE, 2 + 20
    ), "the wrap-up never ended without beat"


def test_the_visibility_timeout_covers_the_longest_countdown(settings: Any) -> None:
    from contactcentre.celery import app

    visibility = app.conf.broker_transport_options["visibility_timeout"]
    assert visibility == settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    longest_timer = max(
        *settings.ROUTING_OFFER_TIMEOUTS.values(),
        settings.ROUTING_WRAP_UP_SECONDS,
        settings.ROUTING_HEARTBEAT_WINDOW_SECONDS + settings.ROUTING_CONSOLE_GRACE_SECONDS,
    )
    assert longest_timer <= settings.CELERY_LONGEST_COUNTDOWN_SECONDS
    assert visibility > settings.CELERY_LONGEST_COUNTDOWN_SECONDS
    assert visibility < 3600  # a message a killed worker held comes back well within the hour


# --------------------------------------------------------------------------- lost consoles


@pytest.fixture
def administrator(make_user: Any) -> Any:
    from organisations.models import Membership, sole_organisation

    user = make_user("admin-lost", role="administrator")
    Membership.objects.create(user=user, organisation_id=sole_organisation())
    return user


@pytest.mark.django_db
def test_an_agent_whose_console_vanished_gives_work_back_in_front_and_goes_offline(
    queue: Any, agent: Any, arrive: Any, settings: Any, administrator: Any
) -> None:
    from console.models import AgentEvent
    from supervision.access import scope_for
    from supervision.selectors import connected_count, wallboard_snapshot

    settings.ROUTING_HEARTBEAT_WINDOW_SECONDS = 45
    settings.ROUTING_CONSOLE_GRACE_SECONDS = 60
    # given an agent handling one chat and offered another
    q = queue("chat", {"x": 1})
    gone = agent("gone", {"x": 1}, channels=["chat"], capacity_chat=2)
    handled, offered = arrive(q, "chat"), arrive(q, "chat")
    assert do_route_pending().offered == 2
    do_accept_offer(offer_id=pending_offer(handled).pk, agent=gone)
    handled.refresh_from_db()
    first_queued_at = handled.queued_at
    newer = arrive(q, "chat")  # a newer citizen waits too

    # when the console stops sending heartbeats: past the window, within the grace period
    now = timezone.now()
    AgentPresence.objects.filter(agent=gone).update(last_heartbeat_at=now - timedelta(seconds=50))
    sweep.apply()
    handled.refresh_from_db()
    assert handled.status == Status.ASSIGNED  # not yet: a short network cut keeps the work
    assert AgentPresence.objects.get(agent=gone).state == AgentState.AVAILABLE
    scope = scope_for(administrator)
    assert scope is not None
    rows = {r["agent_id"]: r for r in wallboard_snapshot(scope)["agents"]}
    assert rows[gone.pk]["connected"] is False  # but the wallboard no longer counts it
    # and a colleague with a live console who has room for one chat
    colleague = agent("colleague", {"x": 1}, channels=["chat"], capacity_chat=1)

    # and past the window plus the grace period
    AgentPresence.objects.filter(agent=gone).update(
        last_heartbeat_at=now - timedelta(seconds=45 + 60 + 1)
    )
    sweep.apply()

    # then both chats go back to the queue, keeping their place (queued_at)...
    handled.refresh_from_db()
    offered.refresh_from_db()
    newer.refresh_from_db()
    assert handled.queued_at == first_queued_at
    assert Offer.objects.get(interaction=offered, agent=gone).status == OfferStatus.CANCELLED
    # ...in front: the colleague's one free slot goes to the oldest, not to the newer citizen
    assert pending_offer(handled).agent == colleague
    assert offered.status == Status.QUEUED
    assert offered.assigned_agent_id is None
    assert newer.status == Status.QUEUED
    assert not Interaction.objects.filter(
        assigned_agent=gone, status__in=(Status.OFFERED, Status.ASSIGNED)
    ).exists()
    # the agent is offline with the reason, told to their console (shown on reconnect)
    presence = AgentPresence.objects.get(agent=gone)
    assert presence.state == AgentState.OFFLINE
    assert presence.pause_reason == CONNECTION_LOST
    event = AgentEvent.objects.filter(agent_id=gone.pk, event="agent.state").latest("id")
    assert event.payload["state"] == AgentState.OFFLINE
    assert event.payload["reason"] == CONNECTION_LOST
    # and the wallboard shows them not connected
    board = wallboard_snapshot(scope)["agents"]
    rows = {r["agent_id"]: r for r in board}
    assert rows[gone.pk]["connected"] is False
    assert rows[gone.pk]["state"] == AgentState.OFFLINE
    assert rows[gone.pk]["pause_reason"] == CONNECTION_LOST
    assert rows[colleague.pk]["connected"] is True
    assert connected_count(board) == 1

    # a second sweep changes nothing more (idempotent)
    sweep.apply()
    assert AgentEvent.objects.filter(agent_id=gone.pk, event="agent.state").latest("id") == event


# --------------------------------------------------------------------------- embedded default

EMBEDDED_CHECK = """
import json
import django
django.setup()
from django.conf import settings
from contactcentre.embedded import EmbeddedScheduler
from contactcentre.celery import app
scheduler = EmbeddedScheduler()
names = sorted({entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()})
missing = [name for name in names if name not in app.tasks]
failures = scheduler.run_all_once()
print(json.dumps({"names": names, "missing": missing, "failures": failures}))
"""


@pytest.mark.django_db
def test_the_embedded_scheduler_knows_and_runs_every_periodic_task(settings: Any) -> None:
    from django.db import connection

    # given a fresh process on the embedded default (eager tasks, no broker, no worker)
    db = connection.settings_dict
    env = {
        **{k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "CELERY_BROKER_URL"}},
        "DJANGO_SETTINGS_MODULE": "contactcentre.settings_test",
        "TEST_CELERY_EAGER": "true",
    }
    if settings.IS_POSTGRES:
        env["DATABASE_URL"] = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    # when its scheduler starts and runs each entry once
    out = subprocess.run(
        [sys.executable, "-c", EMBEDDED_CHECK],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])

    # then every task of CELERY_BEAT_SCHEDULE is registered and ran without error
    assert {"routing.sweep", "channels_chat.sweep", "channels_sms.sweep_inbound"} <= set(
        report["names"]
    )
    assert report["missing"] == []
    assert report["failures"] == {}


@pytest.mark.django_db
def test_a_closed_console_is_checked_at_the_end_of_its_grace_one_agent_only(
    queue: Any, agent: Any, arrive: Any, settings: Any
) -> None:
    from routing.tasks import release_lost_console

    q = queue("chat", {"x": 1})
    gone = agent("gone", {"x": 1}, channels=["chat"])
    other = agent("other", {"x": 1}, channels=["chat"])
    chat = arrive(q, "chat")
    do_route_pending()
    holder = pending_offer(chat).agent
    stale = timezone.now() - timedelta(
        seconds=settings.ROUTING_HEARTBEAT_WINDOW_SECONDS
        + settings.ROUTING_CONSOLE_GRACE_SECONDS
        + 1
    )
    AgentPresence.objects.update(last_heartbeat_at=stale)
    bystander = other if holder == gone else gone

    # the timer of the console that closed releases that agent only
    assert release_lost_console.apply(args=(holder.pk,)).get(disable_sync_subtasks=False) == {
        "released": 1
    }
    assert AgentPresence.objects.get(agent=holder).state == AgentState.OFFLINE
    assert AgentPresence.objects.get(agent=bystander).state == AgentState.AVAILABLE
    chat.refresh_from_db()
    assert chat.assigned_agent_id != holder.pk
    # and a console that came back (a heartbeat since) is left alone
    AgentPresence.objects.filter(agent=bystander).update(last_heartbeat_at=timezone.now())
    assert release_lost_console.apply(args=(bystander.pk,)).get(disable_sync_subtasks=False) == {
        "released": 0
    }
    assert AgentPresence.objects.get(agent=bystander).state == AgentState.AVAILABLE


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_timers_are_sent_to_the_broker_at_their_deadline(
    settings: Any, queue: Any, agent: Any, arrive: Any
) -> None:
    import base64

    import redis

    from routing.timers import schedule_console_check

    # A database of its own beside the configured one: no worker of another test (still
    # draining) listens there, so the scheduled messages stay to be read. Only its queue key
    # is cleared, nothing else of a developer's Redis.
    broker = redis_db_url(7)
    client = redis.Redis.from_url(broker)
    clear_broker(broker)
    with celery_broker(broker, settings):
        # given an agent offered a chat by a pass (no worker: the messages stay in the broker)
        q = queue("chat", {"x": 1})
        a = agent("a", {"x": 1}, channels=["chat"])
        arrive(q, "chat")
        do_route_pending()
        schedule_console_check(a.pk)

    messages = [json.loads(raw) for raw in client.lrange(ROUTE_QUEUE, 0, -1)]
    timers = {
        m["headers"]["task"]: (m["headers"]["eta"], json.loads(base64.b64decode(m["body"]))[0])
        for m in messages
        if m["headers"]["task"] != "routing.route_pending"
    }
    offer = Offer.objects.get(agent=a)
    assert timers["routing.expire_offers"][1] == [[offer.pk]]
    assert datetime.fromisoformat(timers["routing.expire_offers"][0]) >= offer.expires_at
    assert timers["routing.release_lost_console"][1] == [a.pk]
