"""The what-if replay of traffic recorded from the running system reproduces what happened.

A morning of calls, chats and e-mails is driven through the production routing in the
database (``recorded_traffic.py``: real passes, offers, accepts, missed offers and "missed"
pauses, breaks, a call's wrap-up timer). Agents close a chat or an e-mail minutes after its
wrap-up and a call after the wrap-up timer, as they do: a contact in wrap-up no longer holds the
agent's capacity. Replayed with unchanged settings, the morning must give the recorded service
level within 2 points (measured: docs/supervision.md, "What-if replay").
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pytest

from interactions.lifecycle import Status
from interactions.models import Interaction
from supervision.periods import PARIS
from supervision.whatif import compare, record

from .recorded_traffic import ChannelTraffic, RecordedDay, TrafficPlan, poisson_breaks

# About 2,000 routing passes against PostgreSQL: a few minutes on a busy machine.
pytestmark = [pytest.mark.django_db, pytest.mark.slow, pytest.mark.timeout(900)]

DAY = date(2026, 6, 2)


def paris(hh: int, mm: int = 0) -> datetime:
    return datetime(DAY.year, DAY.month, DAY.day, hh, mm, tzinfo=PARIS)


def test_an_unchanged_replay_of_a_recorded_multichannel_morning_gives_its_service_level(
    queue: Any, agent: Any
) -> None:
    # given two queues and seven agents on calls, chats and e-mails, with breaks, recorded by
    # the production router over a morning
    caf = queue("caf", {"apl": 1}, sla_target_seconds=60)
    rsa = queue("rsa", {"rsa": 1}, sla_target_seconds=120)
    channels = ["voice", "chat", "email"]
    team = [
        agent("a1", {"apl": 3}, available=False, channels=channels),
        agent("a2", {"apl": 2}, available=False, channels=channels),
        agent("a3", {"apl": 4}, available=False, channels=channels),
        agent("a4", {"apl": 3, "rsa": 2}, available=False, channels=channels),
        agent("b1", {"rsa": 3}, available=False, channels=channels),
        agent("b2", {"rsa": 2}, available=False, channels=channels),
        agent("c1", {"apl": 2, "rsa": 4}, available=False, channels=channels),
    ]
    shifts = {a: [(paris(8), paris(12))] for a in team}
    day = RecordedDay(seed=5)
    closed_later = (300.0, 900.0)  # chat, e-mail: wrap-up -> closed
    call_closed = (40.0, 120.0)  # beyond the 30 s wrap-up timer
    plan = TrafficPlan(
        start=paris(8),
        end=paris(11, 45),
        traffic={
            caf: {
                "voice": ChannelTraffic(45, 200, 240, call_closed),
                "chat": ChannelTraffic(20, 400, 300, closed_later),
                "email": ChannelTraffic(10, 300, None, closed_later),
            },
            rsa: {
                "voice": ChannelTraffic(25, 200, 240, call_closed),
                "chat": ChannelTraffic(10, 400, 300, closed_later),
            },
        },
        shifts=shifts,
        breaks=poisson_breaks(day.rng, team, lambda a: shifts[a], 15),
        miss_share=0.03,
    )
    day.play(plan)
    recorded = Interaction.objects.filter(queued_at__gte=paris(8), queued_at__lt=paris(12))
    assert recorded.count() > 350
    assert recorded.filter(status=Status.ABANDONED).exists()
    assert day.missed_offers > 0

    # when it is replayed with unchanged settings
    result = compare(record(paris(8), paris(12)), None)

    # then the service level is the recorded one within 2 points, the abandons and the average
    # speed of answer close (ASA: within 20 % or 10 s; a few hundred short waits are noisy)
    actual, replayed = result.actual[None], result.baseline[None]
    assert actual.service_level is not None
    assert replayed.service_level is not None
    assert abs(actual.service_level - replayed.service_level) <= 0.02, (actual, replayed)
    assert abs(actual.abandoned - replayed.abandoned / result.runs) <= 0.02 * actual.offered + 2
    assert actual.asa_s is not None
    assert replayed.asa_s is not None
    assert abs(actual.asa_s - replayed.asa_s) <= max(10.0, 0.2 * actual.asa_s)
    assert replayed.aht_s == pytest.approx(actual.aht_s, rel=0.05)
    for q in (caf, rsa):
        a_sl, r_sl = result.actual[q.pk].service_level, result.baseline[q.pk].service_level
        assert a_sl is not None
        assert r_sl is not None
        assert abs(a_sl - r_sl) <= 0.05, (q.code, a_sl, r_sl)
    print(f"recorded: {actual}\nreplayed: {replayed}")
