"""Traffic recorded from the running system: the production routing, driven in virtual time.

A small event loop calls the real actions (no mock): citizens arrive (``do_create_interaction``),
routing passes offer them (``do_route_pending``), agents accept after a few seconds
(``do_accept_offer``), sometimes let an offer ring out (``do_expire_offers``: they are paused
"missed" and come back a minute later), handle the contact, go through wrap-up (a call's
after-call work blocks the agent until the timer, ``do_end_wrap_ups``, or until they close it)
and close it; they log in, take breaks and log out (``do_set_agent_state``); citizens hang up
when their patience runs out. Everything lands in the database as it would in production, and
the what-if replay then reads it back like any recorded day.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings

from agents.models import AgentPresence, AgentProfile, AgentState, PauseReason
from agents.presence import do_end_wrap_ups, do_set_agent_state
from configuration.models import Queue
from interactions.actions import do_create_interaction, do_transition_interaction
from interactions.lifecycle import Status
from interactions.models import Interaction
from routing.claims import do_route_pending
from routing.models import Offer, OfferStatus
from routing.offers import do_accept_offer, do_expire_offers


@dataclass(frozen=True)
class ChannelTraffic:
    """How one channel's contacts of a queue behave."""

    per_hour: float
    handle_s: float  # mean handling (assigned -> wrap-up), exponential
    patience_s: float | None  # mean patience, exponential (None: nobody gives up)
    after_work_s: tuple[float, float] = (5.0, 15.0)  # wrap-up -> closed, uniform


@dataclass
class TrafficPlan:
    """What the day looks like: queues, their channels' traffic, agents' shifts and breaks."""

    start: datetime
    end: datetime  # arrivals stop here (the day goes on until every contact is done)
    traffic: dict[Queue, dict[str, ChannelTraffic]]
    shifts: dict[AgentProfile, list[tuple[datetime, datetime]]]
    breaks: dict[AgentProfile, list[tuple[datetime, datetime]]] = field(default_factory=dict)
    accept_s: tuple[float, float] = (2.0, 8.0)
    miss_share: float = 0.0  # offers an agent lets ring out
    back_after_miss_s: float = 60.0


class RecordedDay:
    """The event loop: each handler calls the production action at its virtual time."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.events: list[tuple[datetime, int, str, Any]] = []
        self.seq = 0
        self.far: datetime | None = None
        self.plan: TrafficPlan | None = None
        self.handled: dict[int, ChannelTraffic] = {}
        self.missed_offers = 0

    def at(self, when: datetime, kind: str, what: Any) -> None:
        self.seq += 1
        heapq.heappush(self.events, (when, self.seq, kind, what))

    # ------------------------------------------------------------------ the plan

    def play(self, plan: TrafficPlan) -> None:
        self.plan = plan
        self.far = plan.end + timedelta(days=1)
        for agent, shifts in plan.shifts.items():
            for login, logout in shifts:
                self.at(login, "login", agent)
                self.at(logout, "logout", agent)
        for agent, breaks in plan.breaks.items():
            for begin, back in breaks:
                self.at(begin, "pause", agent)
                self.at(back, "back", agent)
        for queue, channels in plan.traffic.items():
            for channel, spec in channels.items():
                t = plan.start
                while True:
                    t += timedelta(seconds=self.rng.expovariate(spec.per_hour / 3600))
                    if t >= plan.end:
                        break
                    self.at(t, "arrive", (queue, channel, spec))
        self.run()

    def run(self) -> None:
        while self.events:
            now, _, kind, what = heapq.heappop(self.events)
            getattr(self, f"on_{kind}")(now, what)

    # ------------------------------------------------------------------ routing

    def route(self, now: datetime) -> None:
        assert self.plan is not None
        do_route_pending(now=now, explain=False)
        for offer in Offer.objects.filter(status=OfferStatus.PENDING, created_at=now):
            if self.rng.random() < self.plan.miss_share:
                self.at(offer.expires_at, "expire", offer.pk)
            else:
                delay = timedelta(seconds=self.rng.uniform(*self.plan.accept_s))
                self.at(now + delay, "accept", offer.pk)

    def _alive(self, agent: AgentProfile) -> None:
        AgentPresence.objects.filter(agent=agent).update(last_heartbeat_at=self.far)

    # ------------------------------------------------------------------ agents

    def on_login(self, now: datetime, agent: AgentProfile) -> None:
        do_set_agent_state(agent=agent, state=AgentState.AVAILABLE, now=now)
        self._alive(agent)
        self.route(now)

    def on_logout(self, now: datetime, agent: AgentProfile) -> None:
        do_set_agent_state(agent=agent, state=AgentState.OFFLINE, now=now)

    def on_pause(self, now: datetime, agent: AgentProfile) -> None:
        do_set_agent_state(agent=agent, state=AgentState.PAUSED, reason=PauseReason.BREAK, now=now)

    def on_back(self, now: datetime, agent: AgentProfile) -> None:
        presence = AgentPresence.objects.get(agent=agent)
        if presence.state == AgentState.OFFLINE:
            return  # their shift ended meanwhile
        do_set_agent_state(agent=agent, state=AgentState.AVAILABLE, now=now)
        self._alive(agent)
        self.route(now)

    def on_expire(self, now: datetime, offer_id: int) -> None:
        assert self.plan is not None
        offer = Offer.objects.select_related("agent").get(pk=offer_id)
        if offer.status != OfferStatus.PENDING:
            return
        if do_expire_offers(now=now, offer_ids=[offer_id]):
            self.missed_offers += 1
            back = now + timedelta(seconds=self.plan.back_after_miss_s)
            self.at(back, "back", offer.agent)
        self.route(now)

    def on_accept(self, now: datetime, offer_id: int) -> None:
        offer = Offer.objects.select_related("agent", "interaction").get(pk=offer_id)
        if offer.status != OfferStatus.PENDING:
            return
        do_accept_offer(offer_id=offer_id, agent=offer.agent, now=now)
        spec = self.handled[offer.interaction_id]
        talk = timedelta(seconds=self.rng.expovariate(1 / spec.handle_s))
        self.at(now + talk, "wrap_up", offer.interaction_id)

    # ------------------------------------------------------------------ contacts

    def on_arrive(self, now: datetime, what: tuple[Queue, str, ChannelTraffic]) -> None:
        queue, channel, spec = what
        contact = do_create_interaction(channel=channel, contact=None, queue=queue, now=now)
        self.handled[contact.pk] = spec
        if spec.patience_s is not None:
            patience = timedelta(seconds=self.rng.expovariate(1 / spec.patience_s))
            self.at(now + patience, "hang_up", contact.pk)
        self.route(now)

    def on_wrap_up(self, now: datetime, interaction_id: int) -> None:
        contact = Interaction.objects.get(pk=interaction_id)
        do_transition_interaction(interaction=contact, to=Status.WRAP_UP, now=now)
        spec = self.handled[interaction_id]
        self.at(now + timedelta(seconds=self.rng.uniform(*spec.after_work_s)), "close", contact.pk)
        if contact.channel == "voice":
            # After-call work: the agent takes nothing until the timer or the closure.
            timer = now + timedelta(seconds=settings.ROUTING_WRAP_UP_SECONDS)
            self.at(timer, "wrap_up_timer", contact.assigned_agent_id)
        else:
            self.route(now)  # the contact left the agent's load

    def on_wrap_up_timer(self, now: datetime, agent_id: int) -> None:
        if do_end_wrap_ups(now=now, agent_ids=[agent_id]):
            self.route(now)

    def on_close(self, now: datetime, interaction_id: int) -> None:
        contact = Interaction.objects.get(pk=interaction_id)
        in_after_work = (
            contact.channel == "voice"
            and AgentPresence.objects.filter(
                agent_id=contact.assigned_agent_id, state=AgentState.WRAP_UP
            ).exists()
        )
        do_transition_interaction(interaction=contact, to=Status.CLOSED, now=now)
        if in_after_work:
            self.route(now)  # closing the call ended the agent's wrap-up

    def on_hang_up(self, now: datetime, interaction_id: int) -> None:
        contact = Interaction.objects.get(pk=interaction_id)
        if contact.status in (Status.QUEUED, Status.OFFERED):
            do_transition_interaction(interaction=contact, to=Status.ABANDONED, now=now)
            self.route(now)


def poisson_breaks(
    rng: random.Random,
    agents: Sequence[AgentProfile],
    shifts: Callable[[AgentProfile], list[tuple[datetime, datetime]]],
    minutes: float,
) -> dict[AgentProfile, list[tuple[datetime, datetime]]]:
    """One break of ``minutes`` per agent, somewhere in the middle of their first shift."""
    out = {}
    for a in agents:
        login, logout = shifts(a)[0]
        span = (logout - login).total_seconds()
        begin = login + timedelta(seconds=rng.uniform(0.3, 0.6) * span)
        out[a] = [(begin, begin + timedelta(minutes=minutes))]
    return out
