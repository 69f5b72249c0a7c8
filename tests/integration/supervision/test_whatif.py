"""What-if replay against a recorded day.

The day is produced by the production router in the database, driven in virtual time: citizens
call (Poisson), agents log in and out, accept offers after a few seconds, hang up; citizens hang
up when their patience runs out. Replaying that recording with unchanged settings must give the
day's service level within 2 points; a proposal (one more skilled agent) must then improve it.
"""

from __future__ import annotations

import heapq
import random
from datetime import date, datetime, timedelta
from typing import Any

import pytest

from agents.models import AgentPresence, AgentProfile, AgentState
from agents.presence import do_set_agent_state
from interactions.actions import do_create_interaction, do_transition_interaction
from interactions.lifecycle import Status
from interactions.models import Interaction
from routing.claims import do_route_pending
from routing.models import Offer, OfferStatus
from routing.offers import do_accept_offer
from supervision.periods import PARIS
from supervision.whatif import Proposal, compare, record

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

DAY = date(2026, 6, 2)


def paris(hh: int, mm: int = 0) -> datetime:
    return datetime(DAY.year, DAY.month, DAY.day, hh, mm, tzinfo=PARIS)


class RecordedDay:
    """A small event loop that drives the real routing actions in virtual time."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.events: list[tuple[datetime, int, str, Any]] = []
        self.seq = 0
        self.far = paris(23)

    def at(self, when: datetime, kind: str, what: Any) -> None:
        self.seq += 1
        heapq.heappush(self.events, (when, self.seq, kind, what))

    def route(self, now: datetime) -> None:
        do_route_pending(now=now)
        for offer in Offer.objects.filter(status=OfferStatus.PENDING, created_at=now):
            delay = timedelta(seconds=self.rng.uniform(2, 8))
            self.at(now + delay, "accept", offer.pk)

    def run(self) -> None:
        while self.events:
            now, _, kind, what = heapq.heappop(self.events)
            getattr(self, f"on_{kind}")(now, what)

    def on_login(self, now: datetime, agent: AgentProfile) -> None:
        do_set_agent_state(agent=agent, state=AgentState.AVAILABLE, now=now)
        AgentPresence.objects.filter(agent=agent).update(last_heartbeat_at=self.far)
        self.route(now)

    def on_logout(self, now: datetime, agent: AgentProfile) -> None:
        do_set_agent_state(agent=agent, state=AgentState.OFFLINE, now=now)

    def on_arrive(self, now: datetime, spec: tuple[Any, float, float]) -> None:
        queue, _aht, patience = spec
        call = do_create_interaction(channel="voice", contact=None, queue=queue, now=now)
        self.at(now + timedelta(seconds=self.rng.expovariate(1 / patience)), "hang_up", call.pk)
        self.route(now)

    def on_accept(self, now: datetime, offer_id: int) -> None:
        offer = Offer.objects.get(pk=offer_id)
        if offer.status != OfferStatus.PENDING:
            return
        do_accept_offer(offer_id=offer_id, agent=offer.agent, now=now)
        aht = 180.0
        self.at(now + timedelta(seconds=self.rng.expovariate(1 / aht)), "end", offer.interaction_id)

    def on_end(self, now: datetime, interaction_id: int) -> None:
        call = Interaction.objects.get(pk=interaction_id)
        do_transition_interaction(interaction=call, to=Status.CLOSED, now=now)
        self.route(now)

    def on_hang_up(self, now: datetime, interaction_id: int) -> None:
        call = Interaction.objects.get(pk=interaction_id)
        if call.status == Status.OFFERED:
            Offer.objects.filter(interaction=call, status=OfferStatus.PENDING).update(
                status=OfferStatus.CANCELLED, responded_at=now
            )
        if call.status in (Status.QUEUED, Status.OFFERED):
            do_transition_interaction(interaction=call, to=Status.ABANDONED, now=now)


def test_a_replay_with_unchanged_settings_reproduces_the_day(
    queue: Any, agent: Any, supervisor: Any
) -> None:
    # given two queues (family benefits: 60 calls/h; minimum income: 30 calls/h) and six agents
    # working shifts with a break, recorded by the production router over a morning
    caf = queue("caf", {"apl": 1}, sla_target_seconds=60)
    rsa = queue("rsa", {"rsa": 1}, sla_target_seconds=120)
    agents = [
        agent("a1", {"apl": 3}, available=False),
        agent("a2", {"apl": 2}, available=False),
        agent("a3", {"apl": 4}, available=False),
        agent("b1", {"rsa": 3}, available=False),
        agent("b2", {"rsa": 2}, available=False),
        agent("c1", {"apl": 2, "rsa": 4}, available=False),
    ]
    day = RecordedDay(seed=7)
    shifts = {
        "a1": [(paris(8), paris(12))],
        "a2": [(paris(8), paris(10)), (paris(10, 20), paris(12))],
        "a3": [(paris(9), paris(12))],
        "b1": [(paris(8), paris(11))],
        "b2": [(paris(8, 30), paris(12))],
        "c1": [(paris(8), paris(9, 45)), (paris(10), paris(12))],
    }
    for a in agents:
        for login, logout in shifts[a.user.username]:
            day.at(login, "login", a)
            day.at(logout, "logout", a)
    for q, per_hour in ((caf, 60.0), (rsa, 30.0)):
        t = paris(8)
        while True:
            t += timedelta(seconds=day.rng.expovariate(per_hour / 3600))
            if t >= paris(11, 45):
                break
            day.at(t, "arrive", (q, 180.0, 240.0))
    day.run()
    recorded = Interaction.objects.filter(queued_at__gte=paris(8), queued_at__lt=paris(12))
    assert recorded.count() > 250
    assert recorded.filter(status=Status.ABANDONED).exists()

    # when the morning is replayed with unchanged settings
    recording = record(paris(8), paris(12))
    result = compare(recording, None)

    # then the replay gives the recorded service level within 2 points, queue by queue too
    actual, replayed = result.actual[None], result.baseline[None]
    assert actual.service_level is not None
    assert replayed.service_level is not None
    assert abs(actual.service_level - replayed.service_level) <= 0.02, (actual, replayed)
    # (the replayed column adds up result.runs replays: compare its rate of hang-ups)
    assert abs(actual.abandoned - replayed.abandoned / result.runs) <= 0.02 * actual.offered + 2
    for q in (caf, rsa):
        a_sl, r_sl = result.actual[q.pk].service_level, result.baseline[q.pk].service_level
        assert a_sl is not None
        assert r_sl is not None
        assert abs(a_sl - r_sl) <= 0.05, (q.code, a_sl, r_sl)

    # and a proposal giving a1 the minimum-income skill improves that queue
    proposal = Proposal(skill_levels={(agents[0].pk, "rsa"): 3})
    with_help = compare(recording, proposal)
    assert with_help.proposed is not None
    helped = with_help.proposed[rsa.pk].service_level
    assert helped is not None
    assert helped > result.baseline[rsa.pk].service_level  # type: ignore[operator]
