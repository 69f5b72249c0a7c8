"""Reads for supervision: report facts, the wallboard snapshot, the skills matrix."""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, cast

from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Case, Count, Min, Q, QuerySet, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from agents.models import AgentPresence, AgentProfile, AgentSkill, AgentState
from configuration.models import Queue, QueueSkill, Skill
from interactions.lifecycle import Status
from interactions.models import Interaction, InteractionTransition

from .access import Scope
from .models import QueueDayStats, QueueHours, SatisfactionResponse
from .periods import PARIS, local_day
from .reports import ZERO, Figures, InteractionFacts

DEFAULT_SLA_TARGET_S = 60.0
WAITING = (Status.QUEUED, Status.OFFERED)
AGENT_WORK = (Status.OFFERED, Status.ASSIGNED, Status.WRAP_UP)
LOGGED_IN_STATES = (AgentState.AVAILABLE, AgentState.WRAP_UP, AgentState.PAUSED)
FACT_CHUNK = 2000


# --------------------------------------------------------------------------- report facts


def sla_target_of(
    queued_at: datetime | None, sla_due_at: datetime | None, queue_target: int | None
) -> float:
    """The interaction's own answer target (set from its queue when it arrived)."""
    if queued_at is not None and sla_due_at is not None:
        return max(0.0, (sla_due_at - queued_at).total_seconds())
    return float(queue_target) if queue_target is not None else DEFAULT_SLA_TARGET_S


def first_answer_and_close(
    interaction_ids: Iterable[int],
) -> dict[int, tuple[datetime | None, datetime | None]]:
    """Interaction -> (first answer, end of handling): the first move to "in progress", and the
    first closure after it (or the first closure, when nobody ever answered)."""
    ids = list(interaction_ids)
    answers: dict[int, datetime] = {}
    closes: dict[int, list[datetime]] = defaultdict(list)
    for start in range(0, len(ids), FACT_CHUNK):
        rows = (
            InteractionTransition.objects.filter(
                interaction_id__in=ids[start : start + FACT_CHUNK],
                to_status__in=(Status.ASSIGNED, Status.CLOSED),
            )
            .order_by("at", "id")
            .values_list("interaction_id", "to_status", "at")
        )
        for interaction_id, to_status, at in rows:
            if to_status == Status.ASSIGNED:
                answers.setdefault(interaction_id, at)
            else:
                closes[interaction_id].append(at)
    out: dict[int, tuple[datetime | None, datetime | None]] = {}
    for interaction_id in ids:
        answered = answers.get(interaction_id)
        ends = closes.get(interaction_id, [])
        if answered is not None:
            ends = [at for at in ends if at >= answered]
        out[interaction_id] = (answered, ends[0] if ends else None)
    return out


def report_facts(
    start: datetime, end: datetime, *, scope: Scope | None = None, settled_only: bool = False
) -> list[InteractionFacts]:
    """Facts of the interactions that first reached a queue in [start, end); ``settled_only``
    leaves out those still waiting (queued or offered), as a past day's roll-up does."""
    qs = (scope.interactions() if scope else Interaction.objects.all()).filter(
        queued_at__gte=start, queued_at__lt=end
    )
    if settled_only:
        qs = qs.exclude(status__in=WAITING)
    csat = SatisfactionResponse.objects.filter(
        interaction__queued_at__gte=start, interaction__queued_at__lt=end
    )
    return _facts(qs, csat)


def live_report_facts(
    past_start: datetime, today_start: datetime, end: datetime, *, scope: Scope | None = None
) -> list[InteractionFacts]:
    """What a multi-day report reads from the interactions beside the daily roll-up: the
    contacts that arrived in [today_start, end), and those that arrived in [past_start,
    today_start) and still wait (queued or offered). A past day's roll-up leaves the waiting
    ones out (``report_facts(settled_only=True)``): the router claims them in bulk, without
    reading their arrival day, so their figures are read here, as today's are."""

    def arrived(prefix: str) -> Q:
        today = Q(**{f"{prefix}queued_at__gte": today_start, f"{prefix}queued_at__lt": end})
        waiting = Q(
            **{
                f"{prefix}queued_at__gte": past_start,
                f"{prefix}queued_at__lt": today_start,
                f"{prefix}status__in": WAITING,
            }
        )
        return today | waiting

    qs = (scope.interactions() if scope else Interaction.objects.all()).filter(arrived(""))
    return _facts(qs, SatisfactionResponse.objects.filter(arrived("interaction__")))


def interaction_facts(interaction_id: int) -> InteractionFacts | None:
    """One interaction's facts so far (None: it never reached a queue)."""
    facts = _facts(
        Interaction.objects.filter(pk=interaction_id, queued_at__isnull=False),
        SatisfactionResponse.objects.filter(interaction_id=interaction_id),
    )
    return facts[0] if facts else None


def _facts(qs: Any, csat_qs: Any) -> list[InteractionFacts]:
    rows = list(
        qs.values(
            "id",
            "channel",
            "queue_id",
            "queue__team_id",
            "queue__sla_target_seconds",
            "queued_at",
            "sla_due_at",
            "abandoned_at",
            "assigned_agent_id",
            "assigned_agent__team_id",
        ).order_by("queued_at", "id")
    )
    times = first_answer_and_close(r["id"] for r in rows)
    csat = dict(csat_qs.values_list("interaction_id", "score"))
    facts = []
    for r in rows:
        answered, closed = times[r["id"]]
        facts.append(
            InteractionFacts(
                interaction_id=r["id"],
                channel=r["channel"],
                queue_id=r["queue_id"],
                queued_at=cast(datetime, r["queued_at"]),  # filtered on it: never None
                sla_target_s=sla_target_of(
                    r["queued_at"], r["sla_due_at"], r["queue__sla_target_seconds"]
                ),
                answered_at=answered,
                closed_at=closed,
                abandoned_at=r["abandoned_at"] if answered is None else None,
                agent_id=r["assigned_agent_id"] if answered is not None else None,
                agent_team_id=r["assigned_agent__team_id"] if answered is not None else None,
                queue_team_id=r["queue__team_id"],
                csat=csat.get(r["id"]),
            )
        )
    return facts


# --------------------------------------------------------------------------- wallboard


COUNTER_NAMES = tuple(Figures.__dataclass_fields__)
QUEUE_FIELDS = [f.attname for f in Queue._meta.concrete_fields]
QUEUE_READS = 4  # _queue_reads: queues, waiting, today's counters, opening hours


Compiled = tuple[Any, str, tuple[Any, ...]] | None  # (compiler, SQL, parameters)


@dataclass(frozen=True)
class Reads:
    """Querysets compiled once (their SQL and converters), to be run together."""

    db: str
    items: tuple[Compiled, ...]


def compile_reads(querysets: Sequence[QuerySet[Any]]) -> Reads:
    """Compile ``values_list`` querysets of one database (one that can match nothing: None)."""
    db = querysets[0].db if querysets else DEFAULT_DB_ALIAS
    items: list[Compiled] = []
    for qs in querysets:
        compiler = qs.query.get_compiler(using=qs.db)
        try:
            sql, params = compiler.as_sql()
        except EmptyResultSet:
            items.append(None)
        else:
            items.append((compiler, sql, tuple(params)))
    return Reads(db, tuple(items))


def fetch_together(reads: Reads) -> list[list[tuple[Any, ...]]]:
    """The rows of each compiled read (converted as the ORM converts them), all read in one
    round trip on PostgreSQL: one multi-statement ``execute`` (psycopg's client-side binding
    cursor, as Django uses it), each result read with ``nextset()``; elsewhere (SQLite,
    server-side binding) one execute each."""
    raw: list[list[Any]] = [[] for _ in reads.items]
    todo = [(i, item) for i, item in enumerate(reads.items) if item is not None]
    connection = connections[reads.db]
    with connection.cursor() as cursor:
        if _one_round_trip(connection) and len(todo) > 1:
            cursor.execute(
                ";\n".join(sql for _i, (_c, sql, _p) in todo),
                [param for _i, (_c, _sql, params) in todo for param in params],
            )
            for n, (i, _item) in enumerate(todo):
                if n:
                    cursor.nextset()
                raw[i] = cursor.fetchall()
        else:
            for i, (_c, sql, params) in todo:
                cursor.execute(sql, params)
                raw[i] = cursor.fetchall()
    return [
        list(item[0].results_iter(results=[raw[i]], tuple_expected=True)) if item else []
        for i, item in enumerate(reads.items)
    ]


SNAPSHOT_READS_KEPT = 64
_snapshot_reads: OrderedDict[tuple[Any, ...], Reads] = OrderedDict()


def snapshot_reads(scope: Scope, now: datetime) -> Reads:
    """The wallboard's six reads for ``scope``, compiled once per scope, local day and
    connection (a snapshot's SQL changes with nothing else: queues, agents and their teams
    are subqueries, read afresh each time), the latest few kept."""
    day = local_day(now, PARIS)
    key = (id(connections[DEFAULT_DB_ALIAS]), scope, day)
    reads = _snapshot_reads.get(key)
    if reads is None:
        reads = compile_reads([*_queue_reads(scope, day), *_agent_reads(scope)])
        _snapshot_reads[key] = reads
        while len(_snapshot_reads) > SNAPSHOT_READS_KEPT:
            _snapshot_reads.popitem(last=False)
    return reads


def _one_round_trip(connection: BaseDatabaseWrapper) -> bool:
    """Several statements in one ``execute``: PostgreSQL with client-side binding only."""
    options = connection.settings_dict.get("OPTIONS", {})
    return connection.vendor == "postgresql" and not options.get("server_side_binding")


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _pct(value: float | None) -> float | None:
    return round(100 * value, 1) if value is not None else None


def _secs(value: float | None) -> float | None:
    return round(value, 1) if value is not None else None


@dataclass(frozen=True)
class QueueLine:
    queue: Queue
    channel: str
    waiting: int
    oldest_queued_at: datetime | None
    figures: Figures
    open_now: bool | None


def _queue_reads(scope: Scope, day: date) -> list[QuerySet[Any]]:
    """What the queue lines read: the scope's active queues, their waiting contacts (count,
    oldest), today's counters and opening hours (the queues as a subquery of each)."""
    queues = scope.queues().filter(active=True)
    ids = queues.values("pk")
    return [
        queues.values_list(*QUEUE_FIELDS),
        Interaction.objects.filter(status__in=WAITING, queue_id__in=ids)
        .values("queue_id", "channel")
        .annotate(n=Count("id"), oldest=Min("queued_at"))
        .values_list("queue_id", "channel", "n", "oldest")
        .order_by(),
        QueueDayStats.objects.filter(day=day, queue_key__in=ids).values_list(
            "queue_key", "channel", *COUNTER_NAMES
        ),
        QueueHours.objects.filter(queue_id__in=ids).values_list("queue_id", "calendar"),
    ]


def _queue_lines_of(
    rows: list[list[tuple[Any, ...]]], now: datetime, db: str = DEFAULT_DB_ALIAS
) -> list[QueueLine]:
    queue_rows, waiting_rows, counter_rows, hours_rows = rows
    queues = {q.pk: q for q in (Queue.from_db(db, QUEUE_FIELDS, r) for r in queue_rows)}
    # (each statement reads its own snapshot: a queue changed in between is left out)
    waiting = {(q, channel): (n, oldest) for q, channel, n, oldest in waiting_rows if q in queues}
    figures = {(r[0], r[1]): Figures(*r[2:]) for r in counter_rows if r[0] in queues}
    opening = _open_now(queues, hours_rows, now)
    keys = sorted(set(waiting) | set(figures), key=lambda k: (queues[k[0]].name, k[1]))
    # A queue with no activity today still shows, on its usual channel (none known: "-").
    seen = {k[0] for k in keys}
    nobody: tuple[int, datetime | None] = (0, None)
    lines = [
        QueueLine(
            queue=queues[qid],
            channel=channel,
            waiting=waiting.get((qid, channel), nobody)[0],
            oldest_queued_at=waiting.get((qid, channel), nobody)[1],
            figures=figures.get((qid, channel), ZERO),
            open_now=opening.get(qid),
        )
        for qid, channel in keys
    ]
    lines += [
        QueueLine(q, "", 0, None, ZERO, opening.get(q.pk))
        for q in sorted(queues.values(), key=lambda q: q.name)
        if q.pk not in seen
    ]
    return lines


def queue_lines(scope: Scope, now: datetime) -> list[QueueLine]:
    reads = compile_reads(_queue_reads(scope, local_day(now, PARIS)))
    return _queue_lines_of(fetch_together(reads), now, reads.db)


def _open_now(
    queue_ids: Iterable[int], hours: Iterable[tuple[int, dict[str, Any]]], now: datetime
) -> dict[int, bool | None]:
    from flows.calendar import Opening, opening_at

    out: dict[int, bool | None] = dict.fromkeys(queue_ids)
    for queue_id, calendar in hours:
        if calendar.get("weekly"):
            out[queue_id] = opening_at(calendar, now) is Opening.OPEN
    return out


def queue_open_now(queues: Iterable[Queue], now: datetime) -> dict[int, bool | None]:
    """Queue -> open now per its opening hours (None: no hours set, i.e. always staffed)."""
    ids = [q.pk for q in queues]
    hours = QueueHours.objects.filter(queue_id__in=ids).values_list("queue_id", "calendar")
    return _open_now(ids, hours, now)


def sla_alert(line: QueueLine, now: datetime) -> str | None:
    """Why a queue is in breach of its SLA right now (None: it is not)."""
    if line.open_now is False:
        return None
    target_s = line.queue.sla_target_seconds
    if (
        line.oldest_queued_at is not None
        and (now - line.oldest_queued_at).total_seconds() > target_s
    ):
        return "waiting_over_target"
    sl = line.figures.service_level
    if sl is not None and 100 * sl < line.queue.sla_target_percent:
        return "service_level_below_goal"
    return None


def longest_wait_s(oldest_queued_at: datetime | None, now: datetime) -> int | None:
    """Whole seconds the oldest waiting contact has waited (None: nobody waits)."""
    if oldest_queued_at is None:
        return None
    return round((now - oldest_queued_at).total_seconds())


@dataclass(frozen=True)
class QueueLive:
    """One queue's live figures (the stats API): its channels' wallboard lines, those lines
    added up (``total``, channel ""), and the agents who could answer it by state."""

    queue: Queue
    total: QueueLine
    channels: list[QueueLine]
    agents: dict[str, int]  # logged_in, available, wrap_up, paused, busy


def live_queues(scope: Scope, now: datetime, *, queue_id: int | None = None) -> list[QueueLive]:
    """The wallboard's queue lines grouped by queue (one queue with ``queue_id``), with the
    agents logged in who could answer each queue (staffing's count) by state; ``busy``: those
    of them offered or handling at least one contact."""
    per_queue: dict[int, list[QueueLine]] = {}
    for line in queue_lines(scope, now):
        if queue_id is None or line.queue.pk == queue_id:
            per_queue.setdefault(line.queue.pk, []).append(line)
    states = queue_agent_states(lines[0].queue for lines in per_queue.values())
    busy = agents_with_work({agent for by_agent in states.values() for agent in by_agent})
    out = []
    for pk, lines in per_queue.items():
        queue = lines[0].queue
        figures = Figures()
        for line in lines:
            figures += line.figures
        oldest = [line.oldest_queued_at for line in lines if line.oldest_queued_at is not None]
        total = QueueLine(
            queue=queue,
            channel="",
            waiting=sum(line.waiting for line in lines),
            oldest_queued_at=min(oldest, default=None),
            figures=figures,
            open_now=lines[0].open_now,
        )
        by_state = list(states[pk].values())
        agents = {
            "logged_in": len(by_state),
            **{s.value: by_state.count(s) for s in LOGGED_IN_STATES},
            "busy": len(busy & set(states[pk])),
        }
        channels = [line for line in lines if line.channel]  # "": a queue idle today
        out.append(QueueLive(queue=queue, total=total, channels=channels, agents=agents))
    return out


def wallboard_snapshot(scope: Scope, now: datetime | None = None) -> dict[str, Any]:
    """Everything the wallboard shows, as JSON (the consumer sends it; the page renders it):
    six reads in one round trip (``fetch_together``), plain rows, no model instance but the
    queues'."""
    now = now or timezone.now()
    reads = snapshot_reads(scope, now)
    rows = fetch_together(reads)
    queue_rows = []
    for line in _queue_lines_of(rows[:QUEUE_READS], now, reads.db):
        f = line.figures
        queue = line.queue
        queue_rows.append(
            {
                "queue_id": queue.pk,
                "queue": queue.name,
                "channel": line.channel,
                "waiting": line.waiting,
                "oldest_queued_at": _iso(line.oldest_queued_at),
                "longest_wait_s": longest_wait_s(line.oldest_queued_at, now),
                "arrived": f.arrived,
                "offered": f.offered,
                "answered": f.answered,
                "abandoned": f.abandoned,
                "service_level": _pct(f.service_level),
                "abandonment_rate": _pct(f.abandonment_rate),
                "answer_rate": _pct(f.answer_rate),
                "csat": _pct(f.csat),  # today's survey answers at 4 or 5 of 5 (surveys/)
                "asa_s": _secs(f.asa_s),
                "sla_target_s": queue.sla_target_seconds,
                "sla_goal_percent": queue.sla_target_percent,
                "open": line.open_now,
                "alert": sla_alert(line, now),
            }
        )
    return {
        "now": now.isoformat(),
        "queues": queue_rows,
        "agents": _agent_rows_of(*rows[QUEUE_READS:]),
    }


def _agent_name(first_name: str, last_name: str, username: str) -> str:
    """``str(agent)`` without loading the user: the full name, else the username."""
    return f"{first_name} {last_name}".strip() or username


def _agent_reads(scope: Scope) -> list[QuerySet[Any]]:
    """What the agents' table reads: the scope's agents with a presence row, and their work
    (offered, in progress, in wrap-up; the agents as a subquery)."""
    agents = scope.agents().filter(presence__isnull=False)
    return [
        agents.order_by("user__username").values_list(
            "pk",
            "user__first_name",
            "user__last_name",
            "user__username",
            "team__name",
            "presence__state",
            "presence__last_heartbeat_at",
            "presence__pause_reason",
            "presence__state_since",
        ),
        Interaction.objects.filter(assigned_agent_id__in=agents.values("pk"), status__in=AGENT_WORK)
        .order_by("pk")
        .values_list(
            "pk", "channel", "status", "assigned_agent_id", Coalesce("assigned_at", "offered_at")
        ),
    ]


def _agent_rows_of(
    agents: list[tuple[Any, ...]], work_rows: list[tuple[Any, ...]]
) -> list[dict[str, Any]]:
    work: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for pk, channel, status, agent_id, since in work_rows:
        work[agent_id].append(
            {
                "interaction_id": pk,
                "channel": channel,
                "status": status,
                "since": since.isoformat() if since else None,
            }
        )
    rows = []
    live_since = timezone.now() - timedelta(seconds=settings.ROUTING_HEARTBEAT_WINDOW_SECONDS)
    offline = AgentState.OFFLINE.value
    for pk, first, last, username, team, state, heartbeat, pause, since in agents:
        rows.append(
            {
                "agent_id": pk,
                "name": _agent_name(first, last, username),
                "team": team or "",
                "state": state,
                # Connected: logged in with a live console (a heartbeat within the window).
                "connected": state != offline and heartbeat is not None and heartbeat >= live_since,
                "pause_reason": pause,
                "state_since": since.isoformat() if since else None,
                "work": work.get(pk, []),
            }
        )
    return rows


def agent_rows(scope: Scope) -> list[dict[str, Any]]:
    # Plain values, not model instances: the wallboard reads every agent at each snapshot.
    return _agent_rows_of(*fetch_together(compile_reads(_agent_reads(scope))))


def state_counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    counts = dict.fromkeys(AgentState.values, 0)
    for r in rows:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    return counts


def connected_count(rows: list[dict[str, Any]]) -> int:
    """Agents with a live console (not merely "not offline" in the database)."""
    return sum(1 for r in rows if r["connected"])


# --------------------------------------------------------------------------- skills matrix


@dataclass(frozen=True)
class Matrix:
    skills: list[Skill]
    agents: list[AgentProfile]
    levels: dict[tuple[int, int], int]  # (agent id, skill id) -> level


def skills_matrix(scope: Scope, *, team_id: int | None = None) -> Matrix:
    agents_qs = (
        scope.agents().select_related("user", "team").order_by("team__name", "user__username")
    )
    if team_id is not None:
        agents_qs = agents_qs.filter(team_id=team_id)
    agents = list(agents_qs)
    levels = {
        (agent_id, skill_id): level
        for agent_id, skill_id, level in AgentSkill.objects.filter(agent__in=agents).values_list(
            "agent_id", "skill_id", "level"
        )
    }
    return Matrix(skills=list(scope.skills().order_by("name")), agents=agents, levels=levels)


def logged_in_agents(queue: Queue, now: datetime) -> int:
    """Agents logged in (not offline) who could answer this queue at its base requirements."""
    return len(queue_agent_states([queue])[queue.pk])


def queue_agent_states(queues: Iterable[Queue]) -> dict[int, dict[int, str]]:
    """Queue -> {agent -> state} of the agents logged in (not offline) who could answer it at
    its base requirements (staffing's "logged in", the stats API's per-queue agents); four
    queries whatever the number of queues."""
    queues = list(queues)
    needs: dict[int, dict[str, int]] = {q.pk: {} for q in queues}
    for queue_id, code, level in QueueSkill.objects.filter(queue__in=queues).values_list(
        "queue_id", "skill__code", "min_level"
    ):
        needs[queue_id][code] = level
    presences = list(
        AgentPresence.objects.exclude(state=AgentState.OFFLINE)
        # routing never crosses organisations
        .filter(agent__organisation_id__in={q.organisation_id for q in queues})
        .values_list("agent_id", "agent__organisation_id", "state")
    )
    held: dict[int, dict[str, int]] = defaultdict(dict)
    for agent_id, code, level in AgentSkill.objects.filter(
        agent_id__in=[agent_id for agent_id, _org, _state in presences],
        skill__code__in={code for codes in needs.values() for code in codes},
    ).values_list("agent_id", "skill__code", "level"):
        held[agent_id][code] = level
    return {
        q.pk: {
            agent_id: state
            for agent_id, org_id, state in presences
            if org_id == q.organisation_id
            and all(held[agent_id].get(c, 0) >= lv for c, lv in needs[q.pk].items())
        }
        for q in queues
    }


def agents_with_work(agent_ids: Iterable[int]) -> set[int]:
    """Those of these agents offered or handling at least one contact (in wrap-up included)."""
    return set(
        Interaction.objects.filter(assigned_agent_id__in=list(agent_ids), status__in=AGENT_WORK)
        .order_by()
        .values_list("assigned_agent_id", flat=True)
        .distinct()
    )


def recent_interactions(scope: Scope, *, limit: int = 50) -> list[Interaction]:
    """Open interactions a supervisor may reassign or take (waiting first, oldest first)."""
    waiting_first = Case(
        When(status=Status.QUEUED, then=Value(0)),
        When(status=Status.OFFERED, then=Value(1)),
        default=Value(2),
    )
    return list(
        scope.interactions()
        .filter(status__in=(Status.QUEUED, Status.OFFERED, Status.ASSIGNED))
        .select_related("queue", "assigned_agent__user")
        .order_by(waiting_first, "queued_at", "pk")[:limit]
    )
