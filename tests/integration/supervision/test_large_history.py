"""The wallboard and reports on history: counters kept event by event agree with a scan of the
interactions, multi-day reports read from the daily roll-up equal reports computed from the
interactions (and follow late changes), and the history generator writes what reports read."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from agents.models import AgentProfile
from configuration.models import Queue, Team
from interactions.lifecycle import Status
from interactions.models import Interaction, InteractionTransition, Message
from organisations.authz import principal_for
from routing.claims import do_route_pending
from routing.models import Offer, OfferStatus
from routing.offers import do_accept_offer, do_decline_offer
from routing.signals import claims_written
from routing.transfers import do_transfer_to_queue
from supervision.access import Scope, scope_for
from supervision.actions import do_record_satisfaction
from supervision.models import QueueDayStats, ReportDay
from supervision.periods import Period, day_bounds, local_day, period_bounds
from supervision.reports import Figures, Report, ReportFilter, build_report
from supervision.rollup import period_report
from supervision.selectors import report_facts, wallboard_snapshot
from supervision.stats import on_claims, rebuild_day
from tests.integration.supervision.test_stats import counters, move

pytestmark = pytest.mark.django_db

FLOATS = ("wait_sum_s", "handle_sum_s")


def same(a: Figures, b: Figures) -> bool:
    """Equal counts, and sums equal to the rounding of a different order of additions."""
    for name in Figures.__dataclass_fields__:
        x, y = getattr(a, name), getattr(b, name)
        if name in FLOATS:
            if x != pytest.approx(y, rel=1e-9, abs=1e-6):
                return False
        elif x != y:
            return False
    return True


def same_report(a: Report, b: Report) -> bool:
    return (
        [r.label for r in a.rows] == [r.label for r in b.rows]
        and all(same(x.figures, y.figures) for x, y in zip(a.rows, b.rows, strict=True))
        and same(a.total, b.total)
    )


def from_interactions(period: Period, flt: ReportFilter, scope: Any = None) -> Report:
    start, end = period_bounds(period)
    return build_report(report_facts(start, end, scope=scope), period, flt)


def assert_reports_agree(period: Period, filters: list[ReportFilter], scope: Any) -> None:
    for flt in filters:
        rolled_up = period_report(period, flt, scope=scope)
        assert same_report(rolled_up, from_interactions(period, flt, scope)), flt


def offer_of(interaction: Interaction) -> Offer:
    return Offer.objects.get(interaction=interaction, status=OfferStatus.PENDING)


def busy_day(queue: Any, agent: Any, arrive: Any, t0: Any) -> dict[str, Any]:
    """Routed traffic on one day: answers, a decline then an answer, a transfer, abandons while
    waiting and while ringing, closures with and without an agent, a survey."""
    caf = queue("caf", {"apl": 1}, sla_target_seconds=60)
    cpam = queue("cpam", {}, sla_target_seconds=30)
    alice = agent("alice", {"apl": 3}, channels=["voice", "chat", "email"])
    bob = agent("bob", {"apl": 2}, channels=["voice", "chat", "email"])
    s = lambda n: t0 + timedelta(seconds=n)  # noqa: E731

    call = arrive(caf, "voice", now=s(0))
    chat = arrive(caf, "chat", now=s(1))
    do_route_pending(now=s(2))
    for ix, at in ((call, 12), (chat, 9)):
        offer = offer_of(ix)
        agent_ = alice if offer.agent_id == alice.pk else bob
        do_accept_offer(offer_id=offer.pk, agent=agent_, now=s(at))
    move(call, Status.WRAP_UP, s(200))
    move(call, Status.CLOSED, s(230))
    do_record_satisfaction(interaction=call, score=2)
    # the chat goes to another queue, where it is answered again (once for the report)
    holder = Interaction.objects.get(pk=chat.pk).assigned_agent
    assert holder is not None
    do_transfer_to_queue(interaction_id=chat.pk, agent=holder, queue=cpam, now=s(300))

    # a call declined once, then taken by the other agent
    second = arrive(caf, "voice", now=s(400))
    do_route_pending(now=s(401))
    first_offer = offer_of(second)
    first_agent = alice if first_offer.agent_id == alice.pk else bob
    do_decline_offer(offer_id=first_offer.pk, agent=first_agent, now=s(405))
    do_route_pending(now=s(406))
    if Offer.objects.filter(interaction=second, status=OfferStatus.PENDING).exists():
        retry = offer_of(second)
        do_accept_offer(
            offer_id=retry.pk, agent=alice if retry.agent_id == alice.pk else bob, now=s(420)
        )

    # hang-ups: after 3 s (short), after 90 s, and one while an offer rings
    move(arrive(cpam, "voice", now=s(500)), Status.ABANDONED, s(503))
    move(arrive(cpam, "voice", now=s(510)), Status.ABANDONED, s(600))
    ringing = arrive(caf, "voice", now=s(700))
    do_route_pending(now=s(701))
    move(ringing, Status.ABANDONED, s(720))
    # an e-mail closed without an agent, one still waiting
    move(arrive(caf, "email", now=s(800)), Status.CLOSED, s(1800))
    arrive(cpam, "email", now=s(900))
    return {"caf": caf, "cpam": cpam, "alice": alice, "bob": bob}


def test_counters_agree_with_a_scan_after_routed_traffic(
    queue: Any,
    agent: Any,
    arrive: Any,
    everything: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given an hour of routed traffic today, counters moved event by event (from an hour ago,
    # but never before midnight in Paris: the whole hour is today's, also just after midnight)
    now = timezone.now()
    t0 = max(now - timedelta(hours=1), day_bounds(local_day(now))[0])
    day = local_day(t0)
    with django_capture_on_commit_callbacks(execute=True):
        world = busy_day(queue, agent, arrive, t0)
    # (a queue a transfer left keeps a row of zeros; a scan writes none)
    live = {k: f for k, f in counters(day).items() if f != Figures()}
    assert sum(f.arrived for f in live.values()) == 8

    # when the day is recomputed by scanning the interactions
    rebuild_day(day)
    scanned = counters(day)

    # then every queue and channel has the same figures
    assert set(live) == set(scanned)
    for key, figures in live.items():
        assert same(figures, scanned[key]), key
    total = sum(live.values(), Figures())
    assert total.answered >= 2  # the call, the chat (once), maybe the declined call
    assert (total.abandoned, total.abandoned_short) == (3, 1)
    assert (total.closed_unanswered, total.csat_responses) == (1, 1)
    # and the wallboard shows the scan's figures with the waiting e-mail
    board = wallboard_snapshot(everything)
    rows = {(r["queue_id"], r["channel"]): r for r in board["queues"]}
    assert rows[(world["cpam"].pk, "email")]["waiting"] == 1
    assert rows[(world["cpam"].pk, "voice")]["abandoned"] == 2


def test_multi_day_reports_from_the_roll_up_equal_reports_from_the_interactions(
    queue: Any,
    agent: Any,
    arrive: Any,
    everything: Any,
    make_user: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given traffic three days ago, two days ago and today
    now = timezone.now()
    today = local_day(now)
    day_start = lambda d: day_bounds(d)[0] + timedelta(hours=9)  # noqa: E731
    with django_capture_on_commit_callbacks(execute=True):
        world = busy_day(queue, agent, arrive, day_start(today - timedelta(days=3)))
        waiting_mail = arrive(world["caf"], "email", now=day_start(today - timedelta(days=2)))
        move(
            arrive(world["cpam"], "voice", now=day_start(today - timedelta(days=2))),
            Status.ABANDONED,
            day_start(today - timedelta(days=2)) + timedelta(seconds=40),
        )
        arrive(world["caf"], "chat", now=now - timedelta(minutes=1))
    period = Period(today - timedelta(days=3), today)
    team = Team.objects.create(name="Équipe CPAM")
    Queue.objects.filter(pk=world["cpam"].pk).update(team=team)
    AgentProfile.objects.filter(pk=world["bob"].pk).update(team=team)
    team_supervisor = make_user("cpam-sup", role="supervisor")
    team.supervisors.add(team_supervisor)
    team_scope = scope_for(team_supervisor)
    assert team_scope is not None

    # when reports are read, with every filter, and as the team's supervisor
    filters = [
        ReportFilter(),
        ReportFilter(channel="voice"),
        ReportFilter(queue_ids=frozenset({world["cpam"].pk})),
        ReportFilter(team_ids=frozenset({team.pk})),
        ReportFilter(agent_id=world["alice"].pk),
    ]
    # then the roll-up (past days) plus today equals the report from the interactions
    assert_reports_agree(period, filters, everything)
    assert_reports_agree(period, [ReportFilter(team_ids=team_scope.team_ids)], team_scope)
    assert ReportDay.objects.filter(day__lt=today).count() == 3

    # when an e-mail of two days ago is answered today
    with django_capture_on_commit_callbacks(execute=True):
        do_route_pending(now=now)
        offer = Offer.objects.filter(interaction=waiting_mail, status=OfferStatus.PENDING).first()
        if offer is None:  # nobody free for it: a supervisor takes it to an agent
            move(waiting_mail, Status.CLOSED, now)
        else:
            holder = world["alice"] if offer.agent_id == world["alice"].pk else world["bob"]
            do_accept_offer(offer_id=offer.pk, agent=holder, now=now)

    # then that day's roll-up was dropped, and the report follows the change
    assert not ReportDay.objects.filter(day=today - timedelta(days=2)).exists()
    assert_reports_agree(period, filters, everything)


def test_generate_history_writes_what_reports_read(django_user_model: Any) -> None:
    root = django_user_model.objects.create_superuser("root", password="x")
    every_organisation = Scope(principal=principal_for(root), organisation_id=None, team_ids=None)

    # when a small year of history is generated
    call_command("generate_history", interactions=400, messages=2000, months=2, seed=3)

    # then interactions, messages and status changes are there, on every channel
    generated = Interaction.objects.filter(organisation__slug__startswith="hist-")
    assert generated.count() == 400
    assert set(generated.values_list("channel", flat=True)) == {"voice", "chat", "email", "sms"}
    assert Message.objects.filter(interaction__in=generated).count() == pytest.approx(2000, rel=0.2)
    assert InteractionTransition.objects.filter(interaction__in=generated).count() >= 800
    # and the past days are rolled up: the report equals one computed from the interactions
    today = local_day(timezone.now())
    period = Period(today - timedelta(days=61), today)
    report = period_report(period, ReportFilter(), scope=every_organisation)
    assert report.total.arrived == 400
    assert same_report(report, from_interactions(period, ReportFilter(), every_organisation))
    # and today's wallboard counters were built
    assert (
        QueueDayStats.objects.filter(day=today).exists()
        == generated.filter(queued_at__gte=day_bounds(today)[0]).exists()
    )


def test_figures_add_every_counter() -> None:
    # Figures.__add__ names each counter: a new counter must be added there too
    names = list(Figures.__dataclass_fields__)
    one = Figures(**{name: i + 1 for i, name in enumerate(names)})
    two = Figures(**{name: 10 * (i + 1) for i, name in enumerate(names)})
    assert (one + two).as_dict() == {name: 11 * (i + 1) for i, name in enumerate(names)}


def test_a_claim_of_yesterdays_contacts_reaches_yesterdays_report(
    queue: Any,
    agent: Any,
    arrive: Any,
    everything: Any,
    make_user: Any,
    settings: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given an e-mail and an SMS that arrived yesterday and still wait in the CAF's queue, an
    # agent of another team free for both (SMS auto-accepted), and yesterday rolled up
    settings.ROUTING_AUTO_ACCEPT_CHANNELS = ["sms"]
    now = timezone.now()
    today = local_day(now)
    yesterday = today - timedelta(days=1)
    arrived_at = day_bounds(yesterday)[0] + timedelta(hours=10)
    caf = queue("caf", {"apl": 1})
    with django_capture_on_commit_callbacks(execute=True):
        arrive(caf, "email", now=arrived_at)
        arrive(caf, "sms", now=arrived_at + timedelta(minutes=1))
    team = Team.objects.create(name="Renfort")
    alice = agent("alice", {"apl": 3}, channels=["email", "sms"], team=team)
    team_supervisor = make_user("renfort-sup", role="supervisor")
    team.supervisors.add(team_supervisor)
    team_scope = scope_for(team_supervisor)
    assert team_scope is not None
    period = Period(yesterday, today)
    team_only = ReportFilter(team_ids=team_scope.team_ids)
    before = period_report(period, scope=everything).rows[0].figures
    assert (before.arrived, before.answered) == (2, 0)
    assert period_report(period, scope=team_scope).total.arrived == 0
    assert ReportDay.objects.filter(day=yesterday).exists()

    # when the router claims both today: the e-mail offered to alice, the SMS answered by her
    with django_capture_on_commit_callbacks(execute=True):
        result = do_route_pending(now=now)
    assert (result.offered, result.assigned) == (1, 1)

    # then yesterday's figures follow: the SMS answered; alice's team's supervisor sees both
    # (the contacts its agents hold), its team's report the one alice answered
    after = period_report(period, scope=everything).rows[0].figures
    assert (after.arrived, after.answered) == (2, 1)
    assert after.wait_sum_s == pytest.approx((now - arrived_at).total_seconds() - 60)
    seen = period_report(period, scope=team_scope).rows[0].figures
    assert (seen.arrived, seen.answered) == (2, 1)
    answered_by_team = period_report(period, team_only, scope=team_scope).rows[0].figures
    assert (answered_by_team.arrived, answered_by_team.answered) == (1, 1)
    # and every report still equals one computed from the interactions
    assert_reports_agree(
        period,
        [ReportFilter(), ReportFilter(channel="sms"), ReportFilter(agent_id=alice.pk)],
        everything,
    )
    assert_reports_agree(period, [ReportFilter(), team_only], team_scope)


def test_the_claim_path_reads_nothing_for_supervision_on_offers(
    queue: Any,
    agent: Any,
    arrive: Any,
    everything: Any,
    settings: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given e-mails that arrived yesterday and today, an SMS of yesterday (auto-accepted),
    # yesterday rolled up, and the queries of supervision's claim receiver counted
    settings.ROUTING_AUTO_ACCEPT_CHANNELS = ["sms"]
    now = timezone.now()
    yesterday = local_day(now) - timedelta(days=1)
    arrived_at = day_bounds(yesterday)[0] + timedelta(hours=10)
    caf = queue("caf", {"apl": 1})
    with django_capture_on_commit_callbacks(execute=True):
        arrive(caf, "email", now=arrived_at)
        arrive(caf, "email", now=now - timedelta(seconds=5))
    period_report(Period(yesterday, local_day(now)), scope=everything)
    agent("alice", {"apl": 3}, channels=["email"])
    counted: list[int] = []

    def counting(**kwargs: Any) -> None:
        with CaptureQueriesContext(connection) as queries:
            on_claims(**kwargs)
        counted.append(len(queries))

    claims_written.disconnect(dispatch_uid="supervision.claims")
    claims_written.connect(counting, dispatch_uid="test.supervision.claims")
    try:
        # when the router offers both e-mails
        with django_capture_on_commit_callbacks(execute=True):
            assert do_route_pending(now=now).offered == 2
        # then supervision read nothing for them (it used to read their arrival days), and
        # yesterday's roll-up stays (the e-mail still waits: reports read it live)
        assert counted == [0]
        assert ReportDay.objects.filter(day=yesterday).exists()

        # when an SMS of yesterday is answered by the router (auto-accepted) by bob
        with django_capture_on_commit_callbacks(execute=True):
            arrive(caf, "sms", now=arrived_at)
        period_report(Period(yesterday, local_day(now)), scope=everything)
        agent("bob", {"apl": 3}, channels=["sms"])
        with django_capture_on_commit_callbacks(execute=True):
            assert do_route_pending(now=now).assigned == 1
        # then its counters read what they always did (the interaction, then its answers and
        # closings in one read: first answer? closed before?) and nothing more, and
        # yesterday's roll-up is dropped: it has an answer now
        assert counted[1:] == [2]
        assert not ReportDay.objects.filter(day=yesterday).exists()
    finally:
        claims_written.disconnect(dispatch_uid="test.supervision.claims")
        claims_written.connect(on_claims, dispatch_uid="supervision.claims")
