"""The wallboard counters: moved event by event, equal to a rebuild from the database and to
the report of the same day (old counters + events == fresh state)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from interactions.actions import do_create_interaction, do_transition_interaction
from interactions.lifecycle import Status
from interactions.models import Interaction
from routing.claims import do_route_pending
from routing.models import Offer, OfferStatus
from routing.offers import do_accept_offer
from supervision.actions import do_record_satisfaction
from supervision.models import QueueDayStats
from supervision.periods import Period, day_bounds, local_day
from supervision.reports import Figures, ReportFilter, build_report
from supervision.selectors import report_facts, wallboard_snapshot
from supervision.stats import rebuild_day

pytestmark = pytest.mark.django_db


def counters(day: Any) -> dict[tuple[int, str], Figures]:
    return {
        (r.queue_key, r.channel): Figures(
            **{n: getattr(r, n) for n in Figures.__dataclass_fields__}
        )
        for r in QueueDayStats.objects.filter(day=day)
    }


def move(interaction: Interaction, to: str, at: Any) -> Interaction:
    interaction.refresh_from_db()
    return do_transition_interaction(interaction=interaction, to=to, now=at)


def test_counters_follow_the_events_and_equal_a_rebuild_and_the_report(
    queue: Any, agent: Any, arrive: Any, django_capture_on_commit_callbacks: Any, everything: Any
) -> None:
    # given a phone queue (answer within 60 s) and one agent
    q = queue("caf", {"apl": 1}, sla_target_seconds=60)
    alice = agent("alice", {"apl": 3})
    t0 = timezone.now() - timedelta(minutes=10)
    day = local_day(t0)

    with django_capture_on_commit_callbacks(execute=True):
        # a call offered to alice at once, answered after 15 s, wrap-up, closed 130 s in
        call = arrive(q, "voice", now=t0)
        do_route_pending(now=t0)
        offer = Offer.objects.get(interaction=call, status=OfferStatus.PENDING)
        do_accept_offer(offer_id=offer.pk, agent=alice, now=t0 + timedelta(seconds=15))
        move(call, Status.WRAP_UP, t0 + timedelta(seconds=100))
        move(call, Status.CLOSED, t0 + timedelta(seconds=130))
        do_record_satisfaction(interaction=call, score=4)
        # a caller hangs up after 3 s (short), another after 80 s
        short = arrive(q, "voice", now=t0 + timedelta(seconds=20))
        move(short, Status.ABANDONED, t0 + timedelta(seconds=23))
        long_ = arrive(q, "voice", now=t0 + timedelta(seconds=30))
        move(long_, Status.ABANDONED, t0 + timedelta(seconds=110))
        # an e-mail closed without any agent, and one still waiting
        mail = do_create_interaction(channel="email", contact=None, queue=q, now=t0)
        move(mail, Status.CLOSED, t0 + timedelta(seconds=300))
        do_create_interaction(channel="email", contact=None, queue=q, now=t0)

    # then the counters moved by exactly what happened
    live = counters(day)
    voice = live[(q.pk, "voice")]
    assert (voice.arrived, voice.answered, voice.answered_within_sla) == (3, 1, 1)
    assert (voice.abandoned, voice.abandoned_short) == (2, 1)
    assert voice.wait_sum_s == pytest.approx(15)
    assert (voice.handled, voice.handle_sum_s) == (1, pytest.approx(115))
    assert (voice.csat_responses, voice.csat_satisfied) == (1, 1)
    assert voice.service_level == pytest.approx(1 / 2)  # 1 / (1 answered + 2 - 1 short)
    email = live[(q.pk, "email")]
    assert (email.arrived, email.closed_unanswered, email.offered) == (2, 1, 1)

    # and they equal a rebuild from the database...
    rebuild_day(day)
    assert counters(day) == live
    # ...and the report of the day
    start, end = day_bounds(day)
    report = build_report(report_facts(start, end), Period(day, day), ReportFilter(channel="voice"))
    assert report.total == voice

    # and the wallboard shows them with the waiting e-mail
    board = wallboard_snapshot(everything)
    rows = {(r["queue_id"], r["channel"]): r for r in board["queues"]}
    assert rows[(q.pk, "voice")]["service_level"] == 50.0
    assert rows[(q.pk, "voice")]["answered"] == 1
    assert rows[(q.pk, "email")]["waiting"] == 1
    assert rows[(q.pk, "email")]["longest_wait_s"] >= 600


def test_a_transferred_interaction_is_answered_once(
    queue: Any, agent: Any, arrive: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from routing.transfers import do_transfer_to_queue

    q = queue("caf", {}, sla_target_seconds=60)
    other = queue("cpam", {})
    alice = agent("alice", {})
    t0 = timezone.now() - timedelta(minutes=5)
    with django_capture_on_commit_callbacks(execute=True):
        chat = arrive(q, "chat", now=t0)
        do_route_pending(now=t0)
        offer = Offer.objects.get(interaction=chat, status=OfferStatus.PENDING)
        do_accept_offer(offer_id=offer.pk, agent=alice, now=t0 + timedelta(seconds=5))
        do_transfer_to_queue(
            interaction_id=chat.pk, agent=alice, queue=other, now=t0 + timedelta(seconds=60)
        )
    day = local_day(t0)
    live = counters(day)
    assert sum(f.answered for f in live.values()) == 1
    assert sum(f.arrived for f in live.values()) == 1
    rebuild_day(day)
    rebuilt = counters(day)
    assert sum(f.answered for f in rebuilt.values()) == 1


def test_an_overflowed_interaction_is_counted_in_its_new_queue(
    queue: Any, agent: Any, arrive: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from configuration.models import EscalationStep

    accueil = queue("accueil", {"accueil": 1}, sla_target_seconds=60)
    logement = queue("logement", {"apl": 3}, sla_target_seconds=60)
    EscalationStep.objects.create(queue=logement, after_seconds=60, overflow_to=accueil)
    t0 = timezone.now() - timedelta(minutes=5)
    day = local_day(t0)
    generalist = agent("generalist", {"accueil": 3}, now=t0 + timedelta(seconds=61))
    with django_capture_on_commit_callbacks(execute=True):
        chat = arrive(logement, "chat", now=t0)
    assert counters(day)[(logement.pk, "chat")].arrived == 1
    with django_capture_on_commit_callbacks(execute=True):
        assert do_route_pending(now=t0 + timedelta(seconds=61)).overflowed == 1
        do_route_pending(now=t0 + timedelta(seconds=62))
        offer = Offer.objects.get(interaction=chat, status=OfferStatus.PENDING)
        do_accept_offer(offer_id=offer.pk, agent=generalist, now=t0 + timedelta(seconds=70))
    live = counters(day)
    # its arrival left the queue it overflowed from, with it: one contact, arrived and answered
    # in the queue that took it, as the report and a rebuild count it
    assert live[(logement.pk, "chat")].arrived == 0
    assert (live[(accueil.pk, "chat")].arrived, live[(accueil.pk, "chat")].answered) == (1, 1)
    rebuild_day(day)
    rebuilt = counters(day)
    for key in set(live) | set(rebuilt):
        assert live.get(key, Figures()) == rebuilt.get(key, Figures()), key
