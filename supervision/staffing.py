"""Staffing advice: how many agents each queue needs for its answer target, by Erlang C
(``routing.erlang``), from the last hour's arrivals and handle times, beside how many are
logged in.

Erlang C assumes each agent handles one contact at a time and nobody hangs up, so it is
pessimistic for chat (several at once) and when citizens hang up; it is a floor for planning,
not a schedule. Queues sharing agents are counted separately (an agent with two skills counts
as logged in for both), so the figures are per queue.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count

from configuration.models import Queue
from interactions.models import Interaction
from routing import erlang

from .access import Scope
from .selectors import first_answer_and_close, logged_in_agents, queue_open_now

WINDOW = timedelta(hours=1)
MAX_TARGET = 0.999  # Erlang C cannot promise 100 %


@dataclass(frozen=True, slots=True)
class Advice:
    arrivals: int  # in the window
    handled: int  # contacts whose handling ended in the window (the AHT sample)
    aht_s: float | None
    traffic_erlangs: float
    needed: int | None  # None: no handle time known yet
    logged_in: int
    predicted_service_level: float | None  # with the agents logged in now

    @property
    def gap(self) -> int | None:
        return None if self.needed is None else self.logged_in - self.needed


def advise(
    *,
    arrivals: int,
    window_s: float,
    handle_times: list[float],
    target_s: float,
    target_percent: int,
    logged_in: int,
) -> Advice:
    """Pure: the advice for one queue from its recent figures."""
    rate = arrivals / window_s if window_s > 0 else 0.0
    aht = sum(handle_times) / len(handle_times) if handle_times else None
    if aht is None or aht <= 0:
        return Advice(arrivals, len(handle_times), aht, 0.0, None, logged_in, None)
    goal = min(MAX_TARGET, target_percent / 100)
    needed = erlang.agents_needed(rate, aht, target_s, goal) if rate > 0 else 0
    predicted = erlang.service_level(logged_in, rate, aht, target_s) if logged_in else None
    if rate == 0:
        predicted = 1.0
    return Advice(
        arrivals=arrivals,
        handled=len(handle_times),
        aht_s=aht,
        traffic_erlangs=erlang.traffic_erlangs(rate, aht),
        needed=needed,
        logged_in=logged_in,
        predicted_service_level=predicted,
    )


@dataclass(frozen=True)
class QueueAdvice:
    queue: Queue
    advice: Advice
    open_now: bool | None


def staffing_advice(scope: Scope, now: datetime) -> list[QueueAdvice]:
    """One line per active queue the supervisor sees."""
    since = now - WINDOW
    queues = list(scope.queues().filter(active=True).order_by("name"))
    arrivals = dict(
        Interaction.objects.filter(queue__in=queues, queued_at__gte=since, queued_at__lt=now)
        .values_list("queue_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    ended = list(
        Interaction.objects.filter(
            queue__in=queues, closed_at__gte=since, closed_at__lt=now
        ).values_list("pk", "queue_id")
    )
    times = first_answer_and_close(pk for pk, _ in ended)
    handles: dict[int, list[float]] = {}
    for pk, queue_id in ended:
        answered, closed = times[pk]
        if answered is not None and closed is not None:
            handles.setdefault(queue_id, []).append((closed - answered).total_seconds())
    opening = queue_open_now(queues, now)
    lines = []
    for q in queues:
        lines.append(
            QueueAdvice(
                queue=q,
                advice=advise(
                    arrivals=arrivals.get(q.pk, 0),
                    window_s=WINDOW.total_seconds(),
                    handle_times=handles.get(q.pk, []),
                    target_s=q.sla_target_seconds,
                    target_percent=q.sla_target_percent,
                    logged_in=logged_in_agents(q, now),
                ),
                open_now=opening.get(q.pk),
            )
        )
    return lines
