"""Report figures against values computed by hand, on fixture days including both DST changes.

Fixture days (Europe/Paris):

* 2026-03-29, spring forward: 02:00 does not exist, the day lasts 23 hours;
* 2026-10-25, fall back: 02:00-03:00 happens twice, the day lasts 25 hours.

Queue 1 is a phone queue (target 60 s, team 10), queue 2 a chat queue (target 120 s, team 20).
Agents 1 and 2 are in team 10, agent 3 in team 20.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from supervision.periods import PARIS, Period, day_bounds, hour_buckets, local_day, period_bounds
from supervision.reports import (
    InteractionFacts,
    ReportFilter,
    abandon_delta,
    answer_delta,
    arrival_delta,
    build_report,
    close_delta,
    csat_delta,
    figures_of,
    report_csv,
    summarize,
)

SPRING = date(2026, 3, 29)
AUTUMN = date(2026, 10, 25)


def paris(day: date, hh: int, mm: int, ss: int = 0, *, fold: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, ss, tzinfo=PARIS, fold=fold)


def after(moment: datetime, seconds: float) -> datetime:
    """Real elapsed time (aware arithmetic in UTC, so DST jumps do not distort it)."""
    return (moment.astimezone(UTC) + timedelta(seconds=seconds)).astimezone(PARIS)


def phone(iid: int, queued: datetime, **kw: object) -> InteractionFacts:
    return InteractionFacts(
        interaction_id=iid,
        channel="voice",
        queue_id=1,
        queue_team_id=10,
        queued_at=queued,
        sla_target_s=60,
        **kw,  # type: ignore[arg-type]
    )


def chat(iid: int, queued: datetime, **kw: object) -> InteractionFacts:
    return InteractionFacts(
        interaction_id=iid,
        channel="chat",
        queue_id=2,
        queue_team_id=20,
        queued_at=queued,
        sla_target_s=120,
        **kw,  # type: ignore[arg-type]
    )


def spring_day() -> list[InteractionFacts]:
    t1 = paris(SPRING, 1, 30)  # +01:00, before the change
    t2 = paris(SPRING, 3, 10)  # +02:00, after it
    t5 = paris(SPRING, 10, 0)
    t6 = paris(SPRING, 23, 59, 30)
    return [
        # 1: answered in 40 s (within 60), handled 360 s, very satisfied
        phone(1, t1, answered_at=after(t1, 40), closed_at=after(t1, 400), agent_id=1,
              agent_team_id=10, csat=5),
        # 2: answered in 120 s (late), handled 480 s, unhappy
        phone(2, t2, answered_at=after(t2, 120), closed_at=after(t2, 600), agent_id=2,
              agent_team_id=10, csat=2),
        # 3: hung up after 4 s (a short abandon), 4: after 90 s
        phone(3, paris(SPRING, 9, 0), abandoned_at=after(paris(SPRING, 9, 0), 4)),
        phone(4, paris(SPRING, 9, 5), abandoned_at=after(paris(SPRING, 9, 5), 90)),
        # 5: chat answered in 60 s (within 120), handled 600 s
        chat(5, t5, answered_at=after(t5, 60), closed_at=after(t5, 660), agent_id=3,
             agent_team_id=20),
        # 6: arrived before midnight, answered after it (60 s), still in wrap-up
        chat(6, t6, answered_at=after(t6, 60), agent_id=3, agent_team_id=20),
        # 7: closed with no agent ever taking it
        chat(7, paris(SPRING, 12, 0), closed_at=paris(SPRING, 12, 30)),
        # 8: still waiting when the report is read
        phone(8, paris(SPRING, 15, 0)),
        # 9 and 10: the days around (left out of a one-day report)
        phone(9, paris(SPRING - timedelta(days=1), 23, 59, 59),
              answered_at=paris(SPRING, 0, 0, 30)),
        phone(10, paris(SPRING + timedelta(days=1), 0, 0),
              abandoned_at=paris(SPRING + timedelta(days=1), 0, 1)),
    ]  # fmt: skip


def test_period_bounds_follow_local_midnights_across_dst() -> None:
    start, end = day_bounds(SPRING)
    assert start == datetime(2026, 3, 28, 23, 0, tzinfo=UTC)
    assert end == datetime(2026, 3, 29, 22, 0, tzinfo=UTC)
    assert end - start == timedelta(hours=23)
    start, end = day_bounds(AUTUMN)
    assert start == datetime(2026, 10, 24, 22, 0, tzinfo=UTC)
    assert end - start == timedelta(hours=25)
    assert period_bounds(Period(date(2026, 3, 28), date(2026, 3, 30))) == (
        datetime(2026, 3, 27, 23, 0, tzinfo=UTC),
        datetime(2026, 3, 30, 22, 0, tzinfo=UTC),
    )
    assert local_day(datetime(2026, 3, 29, 22, 30, tzinfo=UTC)) == date(2026, 3, 30)
    with pytest.raises(ValueError, match="naive"):
        local_day(datetime(2026, 3, 29, 12, 0))  # noqa: DTZ001 - the refused case


def test_hour_buckets_have_23_24_or_25_hours() -> None:
    spring = [b.label for b in hour_buckets(SPRING)]
    assert len(spring) == 23
    assert spring[:3] == ["00:00", "01:00", "03:00"]
    autumn = [b.label for b in hour_buckets(AUTUMN)]
    assert len(autumn) == 25
    assert autumn[2:4] == ["02:00 (UTC+02:00)", "02:00 (UTC+01:00)"]
    assert len(hour_buckets(date(2026, 6, 1))) == 24


def test_spring_forward_day_by_hand() -> None:
    report = build_report(spring_day(), Period(SPRING, SPRING))
    t = report.total
    assert (t.arrived, t.answered, t.answered_within_sla) == (8, 4, 3)
    assert (t.abandoned, t.abandoned_short, t.closed_unanswered) == (2, 1, 1)
    assert t.offered == 7  # 4 answered + 2 abandoned + 1 closed unanswered; #8 is pending
    assert t.service_level == pytest.approx(3 / 5)  # 3 / (4 answered + 2 abandoned - 1 short)
    assert t.asa_s == pytest.approx((40 + 120 + 60 + 60) / 4)
    assert t.aht_s == pytest.approx((360 + 480 + 600) / 3)  # #6 is not closed yet
    assert t.abandonment_rate == pytest.approx(2 / 7)
    assert t.answer_rate == pytest.approx(4 / 7)
    assert t.csat == pytest.approx(1 / 2)
    # one row per real hour: 01:30 is the second bucket, 03:10 the third (02:00 never was)
    assert report.granularity == "hour"
    assert len(report.rows) == 23
    assert report.rows[1].label == "01:00"
    assert report.rows[1].figures.answered == 1
    assert report.rows[2].label == "03:00"
    assert report.rows[2].figures.answered_within_sla == 0
    assert report.rows[-1].label == "23:00"
    assert report.rows[-1].figures.answered == 1  # #6, answered just after midnight


def test_spring_day_filters_by_hand() -> None:
    day = Period(SPRING, SPRING)
    facts = spring_day()
    phone_only = build_report(facts, day, ReportFilter(channel="voice")).total
    assert (phone_only.arrived, phone_only.answered, phone_only.abandoned) == (5, 2, 2)
    assert phone_only.service_level == pytest.approx(1 / 3)  # 1 / (2 + 2 - 1)
    assert phone_only.asa_s == pytest.approx(80)
    assert phone_only.aht_s == pytest.approx(420)
    assert phone_only.abandonment_rate == pytest.approx(1 / 2)
    team20 = build_report(facts, day, ReportFilter(team_ids=frozenset({20}))).total
    assert (team20.answered, team20.closed_unanswered) == (2, 1)
    assert team20.service_level == pytest.approx(1.0)
    assert team20.answer_rate == pytest.approx(2 / 3)
    assert team20.csat is None  # nobody answered the survey
    agent2 = build_report(facts, day, ReportFilter(agent_id=2)).total
    assert (agent2.answered, agent2.service_level, agent2.aht_s) == (1, 0.0, 480)
    queue2 = build_report(facts, day, ReportFilter(queue_ids=frozenset({2}))).total
    assert queue2 == team20


def test_fall_back_day_by_hand() -> None:
    first = paris(AUTUMN, 2, 30, fold=0)  # 00:30 UTC
    second = paris(AUTUMN, 2, 30, fold=1)  # 01:30 UTC, one real hour later
    assert (second - first) == timedelta(0)  # same wall clock...
    assert second.astimezone(UTC) - first.astimezone(UTC) == timedelta(hours=1)  # ...an hour apart
    late = paris(AUTUMN, 23, 30)
    facts = [
        phone(1, first, answered_at=after(first, 30), closed_at=after(first, 330), agent_id=1),
        phone(2, second, answered_at=after(second, 90), closed_at=after(second, 390), agent_id=1),
        phone(3, late, abandoned_at=after(late, 10)),
    ]
    report = build_report(facts, Period(AUTUMN, AUTUMN))
    t = report.total
    assert (t.arrived, t.answered, t.answered_within_sla, t.abandoned) == (3, 2, 1, 1)
    assert t.service_level == pytest.approx(1 / 3)  # 10 s is not a short abandon
    assert t.asa_s == pytest.approx(60)
    assert t.aht_s == pytest.approx(300)
    assert t.abandonment_rate == pytest.approx(1 / 3)
    assert len(report.rows) == 25
    assert report.rows[2].figures.answered_within_sla == 1  # 02:30, first time (UTC+2)
    assert report.rows[3].figures.answered == 1  # 02:30, second time (UTC+1)
    assert report.rows[3].figures.answered_within_sla == 0
    assert report.rows[24].figures.abandoned == 1


def test_a_multi_day_report_has_a_row_per_local_day() -> None:
    report = build_report(spring_day(), Period(date(2026, 3, 28), date(2026, 3, 30)))
    assert report.granularity == "day"
    assert [r.label for r in report.rows] == ["2026-03-28", "2026-03-29", "2026-03-30"]
    assert [r.figures.arrived for r in report.rows] == [1, 8, 1]
    assert report.rows[0].figures.answered_within_sla == 1  # #9: 31 s
    assert (report.rows[2].figures.abandoned, report.rows[2].figures.abandoned_short) == (1, 0)
    assert report.total.arrived == 10


def test_event_deltas_sum_to_the_interaction_figures() -> None:
    # given the life of #1 event by event, as the wallboard counters see it
    f = spring_day()[0]
    assert f.answered_at is not None
    assert f.closed_at is not None
    events = (
        arrival_delta()
        + answer_delta(wait_s=40, sla_target_s=60)
        + close_delta(handle_s=360)
        + csat_delta(5)
    )
    # then the counters equal the report's view of it
    assert events == figures_of(f)
    assert abandon_delta(wait_s=5.0).abandoned_short == 1
    assert abandon_delta(wait_s=5.1).abandoned_short == 0
    assert summarize([]).service_level is None


def test_csv_export() -> None:
    report = build_report(spring_day(), Period(date(2026, 3, 28), date(2026, 3, 30)))
    lines = report_csv(report, "day").splitlines()
    assert lines[0].startswith("day,arrived,offered,answered,answered_within_sla")
    assert lines[2].startswith("2026-03-29,8,7,4,3,2,1,1,0.6000,70.0000,480.0000,")
    assert lines[-1].startswith("total,10,")
