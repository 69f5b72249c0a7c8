"""Reads that build the pure policy's inputs from the database.

Everything here is a plain read (no locks): the claim in :mod:`routing.claims` re-checks
what matters under row locks, so a stale snapshot can only cost a retry, never a double
assignment.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Count, F, Q, Window
from django.db.models.functions import RowNumber

from agents.models import AgentProfile, AgentSkill, AgentState
from configuration.models import EscalationStep as EscalationStepRow
from configuration.models import Queue
from interactions.channels import Channel
from interactions.lifecycle import Status
from interactions.models import Interaction, Message

from .models import Offer, OfferStatus, RoutingDecision
from .policy import (
    DEFAULT_EXCLUSIVE_CHANNELS,
    AgentSnapshot,
    EscalationStep,
    InteractionSnapshot,
    PolicyConfig,
    requirements_at_step,
)

# Statuses that hold an agent's capacity on a channel.
LOAD_STATUSES = (Status.OFFERED, Status.ASSIGNED)
EXCLUDING_OFFER_STATUSES = (OfferStatus.DECLINED, OfferStatus.EXPIRED, OfferStatus.FAILED)


def excluding_offers(now: datetime) -> Q:
    """The offers that keep their agent from the interaction: declined, expired, a phone that
    did not answer (for good), and a provider error on the bridge for
    ``ROUTING_PROVIDER_ERROR_EXCLUSION_SECONDS`` after it (then the agent may get it again: in
    a provider outage longer than it takes to try everyone, nobody would be left)."""
    lapse = timedelta(seconds=settings.ROUTING_PROVIDER_ERROR_EXCLUSION_SECONDS)
    return Q(status__in=EXCLUDING_OFFER_STATUSES) | Q(
        status=OfferStatus.PROVIDER_ERROR, responded_at__gt=now - lapse
    )


# The decisions an agent hands an interaction away by (routing.transfers: to a queue, to a named
# colleague); their ``details`` name the transferrer, the note and whether the router leaves
# the transferrer out ("from_agent", "note_id", "exclude_transferrer").
TRANSFER_RULES = ("transfer_to_queue", "transfer_to_agent")


def policy_config() -> PolicyConfig:
    return PolicyConfig(
        base_priority_weight=settings.ROUTING_PRIORITY_WEIGHT,
        ageing_rate=settings.ROUTING_AGEING_RATE,
    )


def heartbeat_cutoff(now: datetime) -> datetime:
    return now - timedelta(seconds=settings.ROUTING_HEARTBEAT_WINDOW_SECONDS)


def agent_loads(agent_ids: Iterable[int] | None = None) -> dict[int, dict[str, int]]:
    """Agent -> channel -> interactions offered to or being handled by the agent."""
    rows = Interaction.objects.filter(status__in=LOAD_STATUSES, assigned_agent__isnull=False)
    if agent_ids is not None:
        rows = rows.filter(assigned_agent_id__in=list(agent_ids))
    loads: dict[int, dict[str, int]] = defaultdict(dict)
    for agent_id, channel, count in rows.values_list("assigned_agent_id", "channel").annotate(
        n=Count("id")
    ):
        loads[agent_id][channel] = count
    return loads


def organisation_skill(organisation_id: int) -> str:
    """The pseudo-skill that keeps routing inside one organisation.

    Skill codes are unique per organisation only, and the pure policy knows nothing of
    organisations: so every agent snapshot holds its organisation's pseudo-skill at the top
    level, and every interaction snapshot requires its own at level 1. An agent can then never
    be eligible for another organisation's interaction, whatever the codes, the escalation
    steps (levels are only lowered) or an empty skill list. ``any_agent_of_team`` steps
    replace skills by a team, which belongs to the same organisation as the queue.
    """
    return f"@organisation:{organisation_id}"


def capacity_of(row: Mapping[str, Any]) -> dict[str, int]:
    return {channel: int(row[f"agent__capacity_{channel}"]) for channel in Channel}


def exclusive_channels(voice_exclusive: bool) -> frozenset[str]:
    """The profile's "calls are exclusive" as the policy reads it."""
    return DEFAULT_EXCLUSIVE_CHANNELS if voice_exclusive else frozenset()


# What the presence and capacity rule (``policy.availability_reason``) reads of an agent: the
# presence row, locked, with its profile's capacities joined (``.values(*LOCKED_AGENT_FIELDS)``).
LOCKED_AGENT_FIELDS = (
    "agent_id",
    "state",
    "last_heartbeat_at",
    "channels_enabled",
    "agent__capacity_voice",
    "agent__capacity_chat",
    "agent__capacity_email",
    "agent__capacity_sms",
    "agent__voice_exclusive",
)


def locked_agent_snapshot(
    row: Mapping[str, Any], load: Mapping[str, int], cutoff: datetime
) -> AgentSnapshot:
    """The agent as ``policy.availability_reason`` sees it, from its presence row read under
    its lock (``LOCKED_AGENT_FIELDS``) and its load counted under that lock (locking rule 3).

    Present: a console heartbeat since ``cutoff`` (:func:`heartbeat_cutoff`) and not offline;
    available channels: the channels taken, while available (a pause or wrap-up takes none).
    Skills are not read: the claim's match checked them, a transfer or a reassignment names its
    agent.
    """
    beat = row["last_heartbeat_at"]
    state = row["state"]
    return AgentSnapshot(
        agent_id=row["agent_id"],
        present=state != AgentState.OFFLINE and beat is not None and beat >= cutoff,
        available_channels=frozenset(row["channels_enabled"] or ())
        if state == AgentState.AVAILABLE
        else frozenset(),
        capacity=capacity_of(row),
        load=load,
        exclusive_channels=exclusive_channels(row["agent__voice_exclusive"]),
    )


def profile_snapshot(agent: AgentProfile, load: Mapping[str, int]) -> AgentSnapshot:
    """The agent's capacity as ``policy.capacity_reason`` reads it, from a profile already read
    (the console's list of colleagues a contact may be transferred to)."""
    return AgentSnapshot(
        agent_id=agent.pk,
        capacity=agent.capacity(),
        load=load,
        exclusive_channels=exclusive_channels(agent.voice_exclusive),
    )


def anything_waiting() -> bool:
    """Whether any interaction is queued (one index probe)."""
    if connection.vendor != "postgresql":
        return Interaction.objects.filter(status=Status.QUEUED).exists()
    with connection.cursor() as cursor:
        cursor.execute(_compiled("waiting_exists"), [Status.QUEUED])
        return cursor.fetchone() is not None


def escalation_steps() -> dict[int, list[EscalationStep]]:
    """Queue -> its escalation steps as the policy reads them (one statement: the steps with
    their queue's team joined)."""
    steps: dict[int, list[EscalationStep]] = defaultdict(list)
    rows: Iterable[tuple[Any, ...]]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_compiled("escalation_steps"))
            rows = cursor.fetchall()
    else:
        rows = EscalationStepRow.objects.order_by("queue_id", "after_seconds").values_list(
            "queue_id",
            "after_seconds",
            "min_level_cap",
            "any_agent_of_team",
            "queue__team_id",
            "overflow_to_id",
        )
    for queue_id, after, cap, any_of_team, team_id, overflow_to in rows:
        steps[queue_id].append(
            EscalationStep(
                after_seconds=float(after),
                min_level_cap=cap,
                any_agent_of_team=team_id if any_of_team else None,
                overflow_queue_id=overflow_to,
            )
        )
    return dict(steps)


GROUP_FIELDS = ("organisation_id", "queue_id", "channel", "required_skills", "language")


def _group_key(row: Mapping[str, Any], prefix: str = "") -> tuple[Any, ...]:
    key = []
    for field in GROUP_FIELDS:
        value = row[prefix + field]
        # required_skills is a JSON object: give it one canonical, hashable form
        key.append(tuple(sorted(value.items())) if isinstance(value, dict) else value)
    return tuple(key)


def waiting_interactions(
    now: datetime, *, per_group: int | None = None
) -> list[InteractionSnapshot]:
    """Snapshots of the queued interactions, with exclusions and preferred agents.

    ``per_group`` keeps only the first N of each group of interactions with the same queue,
    channel, requirements and language (in priority, then arrival, order), plus as many as
    the most any one agent declined or missed in that group: a pass with N free slots in all
    can match at most N of a group, so a backlog of 100,000 costs no more to route than the
    free capacity, and an agent who declined the group's oldest contacts still finds N they may
    take among those read (work-conserving: the declined ones never hide newer ones).
    ``None`` loads everything (tests, the work-conservation check).
    """
    # (interaction, agent) pairs that exclude the agent, with the interaction's group. Bounded
    # by the declines and misses of contacts still waiting (each agent declines few).
    exclusion_rows = (
        _exclusion_rows_pg(now)
        if connection.vendor == "postgresql"
        else list(
            Offer.objects.filter(excluding_offers(now), interaction__status=Status.QUEUED).values(
                "interaction_id",
                "agent_id",
                *(f"interaction__{field}" for field in GROUP_FIELDS),
            )
        )
    )
    excluded: dict[int, set[int]] = defaultdict(set)
    per_agent_in_group: dict[tuple[Any, ...], dict[int, int]] = defaultdict(
        lambda: defaultdict(int)
    )

    def exclude(interaction_id: int, agent_id: int, group: tuple[Any, ...]) -> None:
        if agent_id not in excluded[interaction_id]:
            excluded[interaction_id].add(agent_id)
            per_agent_in_group[group][agent_id] += 1

    for row in exclusion_rows:
        exclude(row["interaction_id"], row["agent_id"], _group_key(row, "interaction__"))
    limit = max(1, per_group or 0)

    def most_excluded() -> dict[tuple[Any, ...], int]:
        """Group -> the most contacts of that group one agent may not take."""
        return {group: max(counts.values()) for group, counts in per_agent_in_group.items()}

    pg = connection.vendor == "postgresql"

    def read(extra: dict[tuple[Any, ...], int]) -> list[dict[str, Any]]:
        if pg:
            bound = None if per_group is None else limit + max(extra.values(), default=0)
            values = _waiting_rows_pg(now, bound)
            if per_group is not None and extra:
                values = [
                    v for v in values if v["group_rank"] <= limit + extra.get(_group_key(v), 0)
                ]
            return values
        rows = Interaction.objects.filter(status=Status.QUEUED)
        if per_group is not None:
            rows = rows.annotate(
                group_rank=Window(
                    RowNumber(),
                    partition_by=[F(field) for field in GROUP_FIELDS],
                    order_by=[F("priority").desc(), F("queued_at").asc(), F("id").asc()],
                )
            ).filter(group_rank__lte=limit + max(extra.values(), default=0))
        rows = rows.order_by("-priority", "queued_at", "id")
        values = list(rows.values(*fields, *(["group_rank"] if per_group is not None else [])))
        if per_group is not None and extra:
            # The SQL read the most any group needs; each group keeps only its own share.
            values = [v for v in values if v["group_rank"] <= limit + extra.get(_group_key(v), 0)]
        return values

    fields = _WAITING_FIELDS
    extra = most_excluded()
    values = read(extra)
    # Transferrers left out (one indexed read of the contacts just read, not of every transfer
    # ever made). They count in the groups' shares like declines: when they widen a share, the
    # groups are read again, and the contacts that brings in are checked too.
    checked: set[int] = set()
    for attempt in range(3):  # every contact returned is checked: the loop ends on a check
        unchecked = {v["id"]: v for v in values if v["id"] not in checked}
        checked.update(unchecked)
        pairs = (
            [(i, a) for i, v in unchecked.items() for a in v["transferrers"]]
            if pg
            else transferrer_exclusions(unchecked)
        )
        for interaction_id, agent_id in pairs:
            exclude(interaction_id, agent_id, _group_key(unchecked[interaction_id]))
        widened = most_excluded()
        if per_group is None or widened == extra or attempt == 2:
            break
        extra = widened
        values = read(extra)
    if not values:
        return []
    preferred = (
        {v["contact_id"]: v["preferred"] for v in values if v["preferred"] is not None}
        if pg
        else preferred_agents({v["contact_id"] for v in values if v["contact_id"] is not None}, now)
    )
    return [
        InteractionSnapshot(
            interaction_id=v["id"],
            channel=v["channel"],
            queue_id=v["queue_id"] or 0,
            enqueued_at=(v["queued_at"] or v["created_at"]).timestamp(),
            queue_entered_at=v["queue_entered_at"].timestamp() if v["queue_entered_at"] else None,
            required_skills={
                **(v["required_skills"] or {}),
                organisation_skill(v["organisation_id"]): 1,
            },
            language=v["language"] or None,
            base_priority=v["priority"],
            sla_due_at=v["sla_due_at"].timestamp() if v["sla_due_at"] else None,
            excluded_agent_ids=frozenset(excluded.get(v["id"], ())),
            preferred_agent_id=preferred.get(v["contact_id"]) if v["contact_id"] else None,
        )
        for v in values
    ]


# PostgreSQL: the pass's reads of the backlog as statements built once per process (the ORM
# built and compiled them on every pass), read through a plain cursor.
_WAITING_FIELDS = (
    "id",
    "channel",
    "queue_id",
    "queued_at",
    "queue_entered_at",
    "created_at",
    "required_skills",
    "language",
    "priority",
    "sla_due_at",
    "contact_id",
    "organisation_id",
)
_SQL: dict[str, str] = {}


def _compiled(name: str) -> str:
    key = f"{connection.alias}:{name}"
    sql = _SQL.get(key)
    if sql is None:
        sql = _SQL[key] = _SQL_BUILDERS[name]()
    return sql


def _exclusions_sql() -> str:
    offer = connection.ops.quote_name(Offer._meta.db_table)
    interaction = connection.ops.quote_name(Interaction._meta.db_table)
    group = ", ".join(f"i.{field}" for field in GROUP_FIELDS)
    # The rows of ``Offer.objects.filter(excluding_offers(now), interaction__status=queued)``.
    return f"""
        SELECT o.interaction_id, o.agent_id, {group}
        FROM {offer} o JOIN {interaction} i ON i.id = o.interaction_id
        WHERE i.status = %s
          AND (o.status = ANY(%s) OR (o.status = %s AND o.responded_at > %s))
    """  # noqa: S608 - names from the models, values as parameters


def _waiting_sql() -> str:
    interaction = connection.ops.quote_name(Interaction._meta.db_table)
    decision = connection.ops.quote_name(RoutingDecision._meta.db_table)
    fields = ", ".join(f"i.{field}" for field in _WAITING_FIELDS)
    group = ", ".join(f"i.{field}" for field in GROUP_FIELDS)
    # Per contact read: the agents who transferred it away and asked to be left out, since its
    # last assignment (transferrer_exclusions), and the last agent who answered its citizen
    # within the preferred-agent window (preferred_agents): on the rows kept only.
    return f"""
        SELECT w.*,
               ARRAY(SELECT (d.details -> 'from_agent')::text FROM {decision} d
                     WHERE d.interaction_id = w.id AND d.rule = ANY(%s)
                       AND d.details -> 'exclude_transferrer' = 'true'::jsonb
                       AND (w.assigned_at IS NULL OR d.at >= w.assigned_at)),
               CASE WHEN w.contact_id IS NOT NULL THEN
                   (SELECT j.assigned_agent_id FROM {interaction} j
                    WHERE j.contact_id = w.contact_id AND j.assigned_at >= %s
                      AND j.assigned_agent_id IS NOT NULL
                    ORDER BY j.assigned_at DESC LIMIT 1)
               END
        FROM (
            SELECT {fields}, i.assigned_at,
                   ROW_NUMBER() OVER (PARTITION BY {group}
                                      ORDER BY i.priority DESC, i.queued_at ASC, i.id ASC)
                       AS group_rank
            FROM {interaction} i WHERE i.status = %s
        ) w
        WHERE %s::bigint IS NULL OR w.group_rank <= %s::bigint
        ORDER BY w.priority DESC, w.queued_at ASC, w.id ASC
    """  # noqa: S608 - names from the models, values as parameters


def _waiting_exists_sql() -> str:
    interaction = connection.ops.quote_name(Interaction._meta.db_table)
    return f"SELECT 1 FROM {interaction} WHERE status = %s LIMIT 1"  # noqa: S608


def _escalation_steps_sql() -> str:
    step = connection.ops.quote_name(EscalationStepRow._meta.db_table)
    queue = connection.ops.quote_name(Queue._meta.db_table)
    # ``EscalationStep.objects.order_by("queue_id", "after_seconds")`` with the queue's team
    return (
        "SELECT s.queue_id, s.after_seconds, s.min_level_cap, s.any_agent_of_team, "  # noqa: S608
        f"q.team_id, s.overflow_to_id FROM {step} s JOIN {queue} q ON q.id = s.queue_id "
        "ORDER BY s.queue_id, s.after_seconds"
    )


_SQL_BUILDERS = {
    "exclusions": _exclusions_sql,
    "waiting": _waiting_sql,
    "waiting_exists": _waiting_exists_sql,
    "escalation_steps": _escalation_steps_sql,
}


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _exclusion_rows_pg(now: datetime) -> list[dict[str, Any]]:
    lapse = timedelta(seconds=settings.ROUTING_PROVIDER_ERROR_EXCLUSION_SECONDS)
    with connection.cursor() as cursor:
        cursor.execute(
            _compiled("exclusions"),
            [
                Status.QUEUED,
                list(EXCLUDING_OFFER_STATUSES),
                OfferStatus.PROVIDER_ERROR,
                now - lapse,
            ],
        )
        fetched = cursor.fetchall()
    keys = ("interaction_id", "agent_id", *(f"interaction__{field}" for field in GROUP_FIELDS))
    rows = []
    for row in fetched:
        values = dict(zip(keys, row, strict=True))
        values["interaction__required_skills"] = _json(values["interaction__required_skills"])
        rows.append(values)
    return rows


def _waiting_rows_pg(now: datetime, bound: int | None) -> list[dict[str, Any]]:
    """The waiting interactions (at most ``bound`` of each group, all if None), in service
    order, each with ``group_rank``, ``transferrers`` and ``preferred``."""
    cutoff = now - timedelta(hours=settings.ROUTING_PREFERRED_AGENT_WINDOW_HOURS)
    with connection.cursor() as cursor:
        cursor.execute(
            _compiled("waiting"),
            [list(TRANSFER_RULES), cutoff, Status.QUEUED, bound, bound],
        )
        fetched = cursor.fetchall()
    n = len(_WAITING_FIELDS)
    rows = []
    for row in fetched:
        values = dict(zip(_WAITING_FIELDS, row[:n], strict=True))
        values["required_skills"] = _json(values["required_skills"])
        values["group_rank"] = row[n + 1]
        transferrers = []
        for text in row[n + 2]:
            agent_id = json.loads(text) if text is not None else None
            if isinstance(agent_id, int):
                transferrers.append(agent_id)
        values["transferrers"] = transferrers
        values["preferred"] = row[n + 3]
        rows.append(values)
    return rows


def transferrer_exclusions(interactions: Mapping[int, Any]) -> list[tuple[int, int]]:
    """(interaction, agent) pairs, like the declines, for the agents who transferred one of
    these waiting ``interactions`` (ids) away: the router does not offer it back to them until
    someone else has taken it (a transfer decided after the interaction's last assignment).
    Only the transfers that found another agent who could ever take it exclude
    (``exclude_transferrer``, decided by :func:`others_could_take` when transferring): otherwise
    the contact would wait for ever. One read on the decisions' interaction index."""
    if not interactions:
        return []
    rows = RoutingDecision.objects.filter(
        interaction_id__in=list(interactions),
        rule__in=TRANSFER_RULES,
        details__exclude_transferrer=True,
    ).values_list("interaction_id", "at", "details", "interaction__assigned_at")
    found = []
    for interaction_id, at, details, assigned_at in rows:
        agent_id = (details or {}).get("from_agent")
        if not isinstance(agent_id, int) or (assigned_at is not None and at < assigned_at):
            continue  # someone took it since: that round is over
        found.append((interaction_id, agent_id))
    return found


def others_could_take(
    *,
    organisation_id: int,
    channel: str,
    language: str | None,
    required_skills: Mapping[str, int],
    queue: Queue | None,
    besides: Iterable[int],
) -> bool:
    """Whether an agent other than ``besides`` could ever take an interaction of ``channel``
    waiting in ``queue``: an active account of the organisation with a capacity on that
    channel, meeting the requirements as loosely as the queue's escalation steps ever make them
    (skills at the lowest level, or the queue's team), speaking its language. Presence is not
    looked at: someone who logs in later counts."""
    steps: list[EscalationStep] = []
    if queue is not None:
        steps = escalation_steps().get(queue.pk, [])
    req = requirements_at_step(channel, required_skills, language, None, steps, len(steps) - 1)
    candidates = list(
        AgentProfile.objects.filter(
            organisation_id=organisation_id,
            user__is_active=True,
            **{f"capacity_{channel}__gt": 0},
        )
        .exclude(pk__in=list(besides))
        .values("id", "team_id", "languages")
    )
    if not candidates:
        return False
    levels: dict[int, dict[str, int]] = defaultdict(dict)
    if req.skills:
        for agent_id, code, level in AgentSkill.objects.filter(
            agent_id__in=[c["id"] for c in candidates],
            skill__organisation_id=organisation_id,
            skill__code__in=list(req.skills),
        ).values_list("agent_id", "skill__code", "level"):
            levels[agent_id][code] = level
    for c in candidates:
        if req.team_id is not None and c["team_id"] != req.team_id:
            continue
        if any(levels[c["id"]].get(code, 0) < max(1, lvl) for code, lvl in req.skills.items()):
            continue
        if req.language and req.language not in (c["languages"] or []):
            continue
        return True
    return False


def latest_transfers(assigned_at: Mapping[int, datetime | None]) -> dict[int, dict[str, Any]]:
    """For each interaction (id -> its last ``assigned_at``), the transfer that put it where it
    is, if no one has taken it since: who transferred it, their note (an internal note of the
    thread), the queue it was sent to (empty for a named colleague). What the console shows on
    the offer of a transferred interaction."""
    if not assigned_at:
        return {}
    latest: dict[int, dict[str, Any]] = {}
    for row in (
        RoutingDecision.objects.filter(
            interaction_id__in=list(assigned_at), rule__in=TRANSFER_RULES
        )
        .order_by("at", "id")
        .values("interaction_id", "at", "rule", "details")
    ):
        since = assigned_at.get(row["interaction_id"])
        if since is None or row["at"] >= since:
            latest[row["interaction_id"]] = dict(row)
    if not latest:
        return {}
    details = {i: row["details"] or {} for i, row in latest.items()}
    notes = dict(
        Message.objects.filter(
            pk__in=[d["note_id"] for d in details.values() if isinstance(d.get("note_id"), int)]
        ).values_list("pk", "text")
    )
    names = {
        a.pk: str(a)
        for a in AgentProfile.objects.filter(
            pk__in=[d.get("from_agent") for d in details.values()]
        ).select_related("user")
    }
    queues = dict(
        Queue.objects.filter(
            pk__in=[d["queue"] for d in details.values() if isinstance(d.get("queue"), int)]
        ).values_list("pk", "name")
    )
    found = {}
    for i, d in details.items():
        to_queue = latest[i]["rule"] == "transfer_to_queue"
        found[i] = {
            "by": names.get(d.get("from_agent") or 0, ""),
            "note": notes.get(d.get("note_id") or 0, ""),
            "queue": queues.get(d.get("queue") or 0, "") if to_queue else "",
        }
    return found


def transfer_note_ids(interaction_id: int) -> set[int]:
    """The messages of an interaction that are transfer notes (internal, never sent)."""
    return {
        d["note_id"]
        for d in RoutingDecision.objects.filter(
            interaction_id=interaction_id, rule__in=TRANSFER_RULES
        ).values_list("details", flat=True)
        if isinstance(d, dict) and isinstance(d.get("note_id"), int)
    }


def preferred_agents(contact_ids: set[int], now: datetime) -> dict[int, int]:
    """Contact -> the last agent who answered them within the preferred-agent window."""
    if not contact_ids:
        return {}
    cutoff = now - timedelta(hours=settings.ROUTING_PREFERRED_AGENT_WINDOW_HOURS)
    rows = (
        Interaction.objects.filter(
            Q(assigned_at__gte=cutoff),
            assigned_agent__isnull=False,
            contact_id__in=Interaction.objects.filter(
                status=Status.QUEUED, contact__isnull=False
            ).values("contact_id"),
        )
        .order_by("assigned_at")
        .values_list("contact_id", "assigned_agent_id")
    )
    return {contact_id: agent_id for contact_id, agent_id in rows if contact_id in contact_ids}


def queue_position(interaction: Interaction) -> int:
    """1-based position among the queue's waiting interactions (priority, then age)."""
    ahead = Interaction.objects.filter(
        queue=interaction.queue, status__in=(Status.QUEUED, Status.OFFERED)
    ).filter(
        Q(priority__gt=interaction.priority)
        | Q(priority=interaction.priority, queued_at__lt=interaction.queued_at)
    )
    return ahead.count() + 1


def decision_log(interaction_ids: Sequence[int]) -> list[dict[str, Any]]:
    from .models import RoutingDecision

    rows = (
        RoutingDecision.objects.filter(interaction_id__in=interaction_ids)
        .order_by("at", "id")
        .values("interaction_id", "agent_id", "action", "rule", "at", "details")
    )
    return [dict(row) for row in rows]
