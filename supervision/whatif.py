"""What-if: a recorded period replayed with the current settings and with a proposal, compared
with what happened (reads the database; the replay itself is the simulation engine,
``routing.simulation.replay``).

* Contacts: every interaction that first reached a queue in the period, except those closed
  without an agent (they needed none); arrival, recorded wait, handle time (first answer to
  closure), how long it held the agent's capacity (first answer to wrap-up: a contact in
  wrap-up no longer counts in the agent's load), a call's after-call work (wrap-up until the
  agent closed it or the wrap-up timer ended: no new offer meanwhile), accept delay (offer to
  answer) and, for hang-ups, patience. Each needs its organisation's pseudo-skill, as in
  production (no replayed contact reaches another organisation's agent).
* Agents: who was logged in when, from ``AgentStateChange`` (available or in wrap-up counts as
  logged in, a pause or offline does not), read beyond the period until its last contact was
  answered, abandoned or closed (a contact waiting at the end of the period is answered after
  it, by whoever was there then); an agent with no recorded state but who answered contacts in
  the period counts as logged in from their first answer to their last closure. Skills as they
  were at the start of the period: today's levels with the audited changes made since undone
  (``SkillChange``).
* Queues: today's escalation steps; each contact keeps the priority and answer target it had,
  unless the proposal changes its queue's.

The three columns (what happened, the replay with unchanged settings, the replay with the
proposal) are computed with the report definitions (``supervision.reports``). The difference
between the first two is the model's own error: read the proposal against the second.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings

from agents.models import AgentPresence, AgentProfile, AgentSkill, AgentState, AgentStateChange
from configuration.models import Queue
from interactions.channels import Channel
from interactions.models import Interaction
from routing import selectors as routing_selectors
from routing.models import Offer, OfferStatus
from routing.policy import MAX_LEVEL, EscalationStep
from routing.selectors import organisation_skill
from routing.simulation import (
    ReplayAgent,
    ReplayContact,
    ReplayInput,
    ReplayOutcome,
    ReplayQueue,
    replay,
)

from .access import Scope
from .models import SkillChange
from .reports import Figures, InteractionFacts, breakdown, summarize
from .selectors import report_facts

LOGGED_IN = frozenset({AgentState.AVAILABLE, AgentState.WRAP_UP})
MAX_OVERRUN = timedelta(days=7)
"""Agents' presence is read at most this long after the period (for contacts still waiting)."""


@dataclass(frozen=True)
class QueueProposal:
    priority: int | None = None
    sla_target_seconds: int | None = None
    escalation: tuple[EscalationStep, ...] | None = None


@dataclass(frozen=True)
class Proposal:
    """Changes to try: skill levels ((agent id, skill code) -> level, None removes) and queue
    settings."""

    skill_levels: Mapping[tuple[int, str], int | None] = field(default_factory=dict)
    queues: Mapping[int, QueueProposal] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.skill_levels and not self.queues


@dataclass(frozen=True)
class Recording:
    start: datetime
    end: datetime
    contacts: tuple[ReplayContact, ...]
    agents: tuple[ReplayAgent, ...]
    queues: dict[int, ReplayQueue]
    actual: tuple[InteractionFacts, ...]


def _secs(a: datetime, b: datetime) -> float:
    return (b - a).total_seconds()


def skills_at(moment: datetime, agent_ids: list[int]) -> dict[int, dict[str, int]]:
    """Agents' skill levels as they were at ``moment`` (audited changes since, undone)."""
    levels: dict[int, dict[str, int]] = defaultdict(dict)
    for agent_id, code, level in AgentSkill.objects.filter(agent_id__in=agent_ids).values_list(
        "agent_id", "skill__code", "level"
    ):
        levels[agent_id][code] = level
    for change in (
        SkillChange.objects.filter(agent_id__in=agent_ids, changed_at__gt=moment)
        .select_related("skill")
        .order_by("-changed_at", "-id")
    ):
        if change.before is None:
            levels[change.agent_id].pop(change.skill.code, None)
        else:
            levels[change.agent_id][change.skill.code] = change.before
    return levels


def shifts_of(
    start: datetime, end: datetime, agent_ids: list[int]
) -> dict[int, list[tuple[float, float]]]:
    """Agent -> [login, logout) intervals within the period, from the state history."""
    state: dict[int, str] = {}
    for change in AgentStateChange.objects.filter(agent_id__in=agent_ids, at__lte=start).order_by(
        "at", "id"
    ):
        state[change.agent_id] = change.state
    since: dict[int, float] = {a: 0.0 for a, s in state.items() if s in LOGGED_IN}
    shifts: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for change in AgentStateChange.objects.filter(
        agent_id__in=agent_ids, at__gt=start, at__lt=end
    ).order_by("at", "id"):
        t = _secs(start, change.at)
        logged_in = change.state in LOGGED_IN
        if logged_in and change.agent_id not in since:
            since[change.agent_id] = t
        elif not logged_in and change.agent_id in since:
            shifts[change.agent_id].append((since.pop(change.agent_id), t))
    horizon = _secs(start, end)
    for agent_id, t in since.items():
        shifts[agent_id].append((t, horizon))
    return shifts


def _latest(*moments: datetime | None) -> datetime | None:
    known = [m for m in moments if m is not None]
    return max(known) if known else None


def _cut(spans: list[tuple[float, float]], begin: float, end: float) -> list[tuple[float, float]]:
    """``spans`` without [begin, end)."""
    out = []
    for a, b in spans:
        if b <= begin or a >= end:
            out.append((a, b))
            continue
        if a < begin:
            out.append((a, begin))
        if b > end:
            out.append((end, b))
    return out


def record(start: datetime, end: datetime, *, scope: Scope | None = None) -> Recording:
    """Everything a replay of [start, end) needs, read from the database."""
    actual = report_facts(start, end, scope=scope)
    rows = {
        r["id"]: r
        for r in Interaction.objects.filter(pk__in=[f.interaction_id for f in actual]).values(
            "id",
            "organisation_id",
            "required_skills",
            "language",
            "priority",
            "offered_at",
            "assigned_at",
            "wrap_up_at",
        )
    }
    wrap_up_s = float(settings.ROUTING_WRAP_UP_SECONDS)
    excluded: dict[int, set[int]] = defaultdict(set)
    for interaction_id, agent_id in Offer.objects.filter(
        interaction_id__in=list(rows), status__in=routing_selectors.EXCLUDING_OFFER_STATUSES
    ).values_list("interaction_id", "agent_id"):
        excluded[interaction_id].add(agent_id)
    contacts = []
    horizon = end
    for f in actual:
        if f.answered_at is None and f.abandoned_at is None and f.closed_at is not None:
            continue  # closed without needing an agent
        r = rows[f.interaction_id]
        accept = None
        if f.answered_at is not None and r["offered_at"] and r["assigned_at"]:
            accept = max(0.0, _secs(r["offered_at"], r["assigned_at"]))
        hold = after_work = None
        if f.answered_at is not None and f.closed_at is not None:
            wrap = r["wrap_up_at"]
            if wrap is not None and f.answered_at <= wrap <= f.closed_at:
                hold = _secs(f.answered_at, wrap)
                if f.channel == Channel.VOICE:  # the agent's after-call work: no offer meanwhile
                    after_work = min(_secs(wrap, f.closed_at), wrap_up_s)
        skills = dict(r["required_skills"] or {})
        if r["organisation_id"] is not None:
            skills[organisation_skill(r["organisation_id"])] = 1
        contacts.append(
            ReplayContact(
                contact_id=f.interaction_id,
                queue_id=f.queue_id or 0,
                channel=f.channel,
                arrival_s=_secs(start, f.queued_at),
                required_skills=skills,
                language=r["language"] or None,
                base_priority=r["priority"],
                sla_target_s=f.sla_target_s,
                recorded_wait_s=_secs(f.queued_at, f.answered_at) if f.answered_at else None,
                handle_s=(
                    _secs(f.answered_at, f.closed_at)
                    if f.answered_at is not None and f.closed_at is not None
                    else None
                ),
                accept_delay_s=accept,
                patience_s=_secs(f.queued_at, f.abandoned_at) if f.abandoned_at else None,
                hold_s=hold,
                after_work_s=after_work or 0.0,
                pending=f.answered_at is None and f.abandoned_at is None,
                excluded_agent_ids=frozenset(excluded.get(f.interaction_id, ())),
            )
        )
        resolved = _latest(f.answered_at, f.abandoned_at)
        if resolved is not None and resolved > horizon:
            horizon = resolved
    horizon = min(horizon, end + MAX_OVERRUN)
    worked: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for f in actual:
        if f.agent_id is not None and f.answered_at is not None:
            done = f.closed_at or horizon
            worked[f.agent_id].append((_secs(start, f.answered_at), _secs(start, done)))
    changes = AgentStateChange.objects.filter(at__lt=horizon)
    queue_rows = Queue.objects.all()
    if scope is not None:
        # The organisation's own agents and queues only (routing never crosses organisations).
        org_ids = scope.organisation_ids
        changes = changes.filter(agent__organisation_id__in=org_ids)
        queue_rows = queue_rows.filter(organisation_id__in=org_ids)
    history = set(changes.values_list("agent_id", flat=True).distinct())
    agent_ids = sorted(history | set(worked))
    profiles = AgentProfile.objects.filter(pk__in=agent_ids).values(
        "id",
        "team_id",
        "organisation_id",
        "languages",
        "capacity_voice",
        "capacity_chat",
        "capacity_email",
        "capacity_sms",
        "voice_exclusive",
    )
    channels = dict(
        AgentPresence.objects.filter(agent_id__in=agent_ids).values_list(
            "agent_id", "channels_enabled"
        )
    )
    levels = skills_at(start, agent_ids)
    shifts = shifts_of(start, horizon, agent_ids)
    # An offer left to ring out: the agent was already away when it came (they are paused
    # "missed" only when it expires), so they were not there for anyone from the offer on.
    for agent_id, offered, expired in Offer.objects.filter(
        agent_id__in=agent_ids,
        status=OfferStatus.EXPIRED,
        created_at__lt=horizon,
        expires_at__gt=start,
    ).values_list("agent_id", "created_at", "expires_at"):
        if agent_id in shifts:
            shifts[agent_id] = _cut(shifts[agent_id], _secs(start, offered), _secs(start, expired))
    agents = []
    for p in profiles:
        agent_shifts = shifts.get(p["id"])
        if not agent_shifts and p["id"] in worked:
            spans = worked[p["id"]]
            agent_shifts = [(min(s for s, _ in spans), max(e for _, e in spans))]
        if not agent_shifts:
            continue
        skills = dict(levels.get(p["id"], {}))
        if p["organisation_id"] is not None:
            skills[organisation_skill(p["organisation_id"])] = MAX_LEVEL
        agents.append(
            ReplayAgent(
                agent_id=p["id"],
                skills=skills,
                languages=frozenset(p["languages"] or ()),
                team_id=p["team_id"],
                channels=frozenset(channels.get(p["id"]) or ()),
                capacity=routing_selectors.capacity_of({f"agent__{k}": v for k, v in p.items()}),
                exclusive_channels=routing_selectors.exclusive_channels(p["voice_exclusive"]),
                shifts=tuple(agent_shifts),
            )
        )
    steps = routing_selectors.escalation_steps()
    queues = {
        q.pk: ReplayQueue(
            queue_id=q.pk,
            required_skills={
                **q.required_skills(),
                organisation_skill(q.organisation_id): 1,
            },
            team_id=None,
            escalation=tuple(steps.get(q.pk, ())),
        )
        for q in queue_rows
    }
    queues.setdefault(0, ReplayQueue(queue_id=0))
    return Recording(
        start=start,
        end=end,
        contacts=tuple(contacts),
        agents=tuple(agents),
        queues=queues,
        actual=tuple(actual),
    )


def apply_proposal(recording: Recording, proposal: Proposal, seed: int = 1) -> ReplayInput:
    agents = []
    for a in recording.agents:
        skills = dict(a.skills)
        for (agent_id, code), level in proposal.skill_levels.items():
            if agent_id == a.agent_id:
                if level is None:
                    skills.pop(code, None)
                else:
                    skills[code] = level
        agents.append(
            ReplayAgent(
                agent_id=a.agent_id,
                skills=skills,
                languages=a.languages,
                team_id=a.team_id,
                channels=a.channels,
                capacity=a.capacity,
                exclusive_channels=a.exclusive_channels,
                shifts=a.shifts,
            )
        )
    queues = {}
    for qid, q in recording.queues.items():
        change = proposal.queues.get(qid)
        if change is None:
            queues[qid] = q
            continue
        queues[qid] = ReplayQueue(
            queue_id=qid,
            required_skills=q.required_skills,
            base_priority=change.priority if change.priority is not None else q.base_priority,
            sla_target_s=(
                float(change.sla_target_seconds)
                if change.sla_target_seconds is not None
                else q.sla_target_s
            ),
            team_id=q.team_id,
            escalation=change.escalation if change.escalation is not None else q.escalation,
        )
    return ReplayInput(contacts=recording.contacts, agents=tuple(agents), queues=queues, seed=seed)


def outcome_facts(start: datetime, outcomes: list[ReplayOutcome]) -> list[InteractionFacts]:
    def at(seconds: float | None) -> datetime | None:
        return start + timedelta(seconds=seconds) if seconds is not None else None

    return [
        InteractionFacts(
            interaction_id=o.contact_id,
            channel=o.channel,
            queue_id=o.queue_id or None,
            queued_at=start + timedelta(seconds=o.arrival_s),
            sla_target_s=o.sla_target_s,
            answered_at=at(o.answered_s),
            closed_at=at(o.closed_s),
            abandoned_at=at(o.abandoned_s),
            agent_id=o.agent_id,
        )
        for o in outcomes
    ]


REPLAY_RUNS = 5
"""Replays added up per column: the estimates (patience of answered citizens, handling of
contacts nobody answered) are random draws, and one replay of a few hundred contacts moves by
about a point of service level from one seed to the next."""
REPLAYED_CONTACTS = 2_000
"""Fewer runs on longer periods, about this many replayed contacts per column in all (a run's
noise falls with its number of contacts; a day of 1,000 contacts and 140 agents replays in
about a second)."""


@dataclass(frozen=True)
class Comparison:
    """Figures per queue (and in total): what happened, replayed as is, replayed with the
    proposal (None when there was no proposal). The replayed columns add up ``runs`` replays
    (seeds ``seed`` to ``seed + runs - 1``, the same for both): their rates are the mean of
    the runs, their counts ``runs`` times one run's."""

    actual: dict[int | None, Figures]
    baseline: dict[int | None, Figures]
    proposed: dict[int | None, Figures] | None
    contacts: int
    agents: int
    runs: int = 1


def _by_queue(facts: list[InteractionFacts]) -> dict[int | None, Figures]:
    out: dict[int | None, Figures] = dict(breakdown(facts, lambda f: f.queue_id))
    out[None] = summarize(facts)
    return out


def _replayed(recording: Recording, proposal: Proposal, seeds: range) -> list[InteractionFacts]:
    return [
        fact
        for seed in seeds
        for fact in outcome_facts(
            recording.start, replay(apply_proposal(recording, proposal, seed))
        )
    ]


def compare(
    recording: Recording, proposal: Proposal | None, *, seed: int = 1, runs: int | None = None
) -> Comparison:
    if runs is None:
        runs = max(1, min(REPLAY_RUNS, REPLAYED_CONTACTS // max(1, len(recording.contacts))))
    seeds = range(seed, seed + runs)
    kept = {c.contact_id for c in recording.contacts}
    actual = [f for f in recording.actual if f.interaction_id in kept]
    baseline = _replayed(recording, Proposal(), seeds)
    proposed = None
    if proposal is not None and not proposal.empty:
        proposed = _by_queue(_replayed(recording, proposal, seeds))
    return Comparison(
        actual=_by_queue(actual),
        baseline=_by_queue(baseline),
        proposed=proposed,
        contacts=len(recording.contacts),
        agents=len(recording.agents),
        runs=runs,
    )
