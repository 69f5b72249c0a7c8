"""Supervision pages. Views parse, check the supervisor's scope and call an action or a selector;
every page works without JavaScript (the wallboard's script only makes it live)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from agents.models import AgentProfile, AgentState
from configuration.models import EscalationStep, Queue
from flows.calendar import WEEKDAYS
from interactions.models import Channel
from kernel.redirects import safe_next_url
from routing.errors import RoutingError

from . import actions, selectors
from .access import OutOfScope, Scope, scope_for
from .forms import (
    AgentStateForm,
    EscalationStepFormSet,
    QueueSettingsForm,
    ReportForm,
    TeamSkillForm,
    WhatIfForm,
    default_whatif_period,
    format_intervals,
    today,
)
from .models import QueueHours, SkillChange
from .periods import period_bounds
from .reports import Figures, Report, report_csv
from .rollup import period_report
from .staffing import staffing_advice
from .templatetags.supervision_tags import percent
from .whatif import Proposal, QueueProposal, compare, record

View = Callable[..., HttpResponse]


def supervisor_required(view: View) -> View:
    """Logged in and a supervisor (or administrator); the scope is passed to the view."""

    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            scope = scope_for(request.user, organisation_id=_chosen_organisation(request))
            if scope is None:
                raise PermissionDenied
            return view(request, scope, *args, **kwargs)
        except OutOfScope as exc:
            raise PermissionDenied(str(exc)) from exc

    return wrapper


def _chosen_organisation(request: HttpRequest) -> int | None:
    """A platform administrator's choice of organisation (``?organisation=<id>``; none: all)."""
    raw = request.GET.get("organisation") or request.POST.get("organisation") or ""
    return int(raw) if raw.isdigit() else None


def _back(request: HttpRequest, fallback: str) -> HttpResponse:
    target = safe_next_url(request, request.POST.get("next"), reverse(fallback))
    if not target.startswith("/supervision/"):
        target = reverse(fallback)
    return redirect(target)


# --------------------------------------------------------------------------- wallboard


@supervisor_required
def wallboard(request: HttpRequest, scope: Scope) -> HttpResponse:
    snapshot = selectors.wallboard_snapshot(scope)
    return render(
        request,
        "supervision/wallboard.html",
        {
            "snapshot": snapshot,
            "state_counts": selectors.state_counts(snapshot["agents"]),
            "labels": _wallboard_labels(),
            "scoped": not scope.everything,
        },
    )


def _wallboard_labels() -> dict[str, Any]:
    """Words the wallboard's script needs, in the page's language."""
    from agents.models import OfflineReason, PauseReason
    from interactions.lifecycle import Status

    return {
        "states": {k: str(v) for k, v in AgentState.choices},
        "reasons": {k: str(v) for k, v in [*PauseReason.choices, *OfflineReason.choices]},
        "channels": {k: str(v) for k, v in Channel.choices},
        "statuses": {k: str(v) for k, v in Status.choices},
        "alerts": {
            "waiting_over_target": _("a citizen has waited longer than the answer target"),
            "service_level_below_goal": _("service level below its goal today"),
        },
        "none": _("none"),
        "closed": _("closed"),
        "connected": _("Live"),
        "disconnected": _("Connection lost: reconnecting…"),
        "no_alert": _("No queue is breaching its target."),
        "summary": _("%(waiting)s waiting, %(agents)s agents logged in, %(alerts)s alerts"),
    }


# --------------------------------------------------------------------------- agents


@supervisor_required
def agents(request: HttpRequest, scope: Scope) -> HttpResponse:
    rows = selectors.agent_rows(scope)
    return render(
        request,
        "supervision/agents.html",
        {"rows": rows, "form": AgentStateForm(), "labels": _wallboard_labels()},
    )


@require_POST
@supervisor_required
def agent_state(request: HttpRequest, scope: Scope, agent_id: int) -> HttpResponse:
    agent = get_object_or_404(scope.agents(), pk=agent_id)
    form = AgentStateForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Choose a state."))
        return _back(request, "supervision:agents")
    state = form.cleaned_data["state"]
    try:
        if state == AgentState.OFFLINE:
            actions.do_log_agent_out(actor=request.user, scope=scope, agent=agent)
            messages.success(request, _("%(agent)s has been logged out.") % {"agent": agent})
        else:
            actions.do_supervisor_set_state(
                actor=request.user,
                scope=scope,
                agent=agent,
                state=state,
                reason=form.cleaned_data.get("reason") or "",
            )
            messages.success(request, _("%(agent)s's state has been changed.") % {"agent": agent})
    except actions.SupervisionError as exc:
        messages.error(request, str(exc))
    return _back(request, "supervision:agents")


# --------------------------------------------------------------------------- interactions


@supervisor_required
def interactions(request: HttpRequest, scope: Scope) -> HttpResponse:
    return render(
        request,
        "supervision/interactions.html",
        {
            "interactions": selectors.recent_interactions(scope),
            "agents": scope.agents().select_related("user", "presence").order_by("user__username"),
            "labels": _wallboard_labels(),
            "can_take": AgentProfile.objects.filter(user_id=request.user.pk or 0).exists(),
        },
    )


TRANSFER_MESSAGES = {
    "not_available": _("This agent is not available on this channel."),
    "channel_off": _("This agent is not available on this channel."),
    "no_room": _("This agent has no free slot on this channel."),
    "not_open": _("This interaction is no longer waiting or in progress."),
    "same_agent": _("This agent already handles it."),
}


@require_POST
@supervisor_required
def interaction_reassign(request: HttpRequest, scope: Scope, interaction_id: int) -> HttpResponse:
    interaction = get_object_or_404(
        scope.interactions().select_related("queue", "assigned_agent"), pk=interaction_id
    )
    take = request.POST.get("take") == "1"
    try:
        if take:
            actions.do_supervisor_take(actor=request.user, scope=scope, interaction=interaction)
            messages.success(
                request, _("You have taken interaction #%(id)s.") % {"id": interaction.pk}
            )
        else:
            raw_agent = request.POST.get("agent", "")
            target = get_object_or_404(
                scope.agents(), pk=int(raw_agent) if raw_agent.isdigit() else 0
            )
            actions.do_supervisor_reassign(
                actor=request.user, scope=scope, interaction=interaction, target=target
            )
            messages.success(
                request,
                _("Interaction #%(id)s is offered to %(agent)s.")
                % {"id": interaction.pk, "agent": target},
            )
    except RoutingError as exc:
        code = getattr(exc, "code", "")
        messages.error(request, str(TRANSFER_MESSAGES.get(code, exc)))
    except actions.SupervisionError:
        messages.error(request, _("You need an agent profile to take interactions."))
    return _back(request, "supervision:interactions")


# --------------------------------------------------------------------------- skills


@supervisor_required
def skills(request: HttpRequest, scope: Scope) -> HttpResponse:
    team_id = request.GET.get("team") or request.POST.get("team_filter") or ""
    team_pk = int(team_id) if team_id.isdigit() else None
    if team_pk is not None and not scope.sees_team(team_pk):
        raise PermissionDenied
    matrix = selectors.skills_matrix(scope, team_id=team_pk)
    if request.method == "POST":
        changes = []
        for agent in matrix.agents:
            for skill in matrix.skills:
                name = f"level_{agent.pk}_{skill.pk}"
                if name not in request.POST:
                    continue
                raw = request.POST[name]
                level = int(raw) if raw.isdigit() and 1 <= int(raw) <= 5 else None
                if raw and level is None:
                    continue
                current = matrix.levels.get((agent.pk, skill.pk))
                if level != current:
                    changes.append(actions.LevelChange(agent.pk, skill.pk, level))
        saved = actions.do_set_skill_levels(
            actor=request.user,
            scope=scope,
            changes=changes,
            note=request.POST.get("note", ""),
        )
        messages.success(
            request,
            _("%(n)s skill levels changed; they apply from the next routing decision.")
            % {"n": len(saved)},
        )
        query = f"?team={team_pk}" if team_pk else ""
        return redirect(reverse("supervision:skills") + query)
    rows = [
        (
            agent,
            [
                (skill, matrix.levels.get((agent.pk, skill.pk)), f"level_{agent.pk}_{skill.pk}")
                for skill in matrix.skills
            ],
        )
        for agent in matrix.agents
    ]
    return render(
        request,
        "supervision/skills.html",
        {
            "matrix": matrix,
            "rows": rows,
            "teams": scope.teams().order_by("name"),
            "team_pk": team_pk,
            "bulk": TeamSkillForm(scope=scope, initial={"team": team_pk}),
            "levels": range(1, 6),
            "history": SkillChange.objects.filter(agent__in=matrix.agents)
            .select_related("agent__user", "skill", "changed_by")
            .order_by("-changed_at", "-id")[:30],
        },
    )


@require_POST
@supervisor_required
def skills_bulk(request: HttpRequest, scope: Scope) -> HttpResponse:
    form = TeamSkillForm(request.POST, scope=scope)
    if not form.is_valid():
        messages.error(request, _("Choose a team and a skill."))
        return redirect("supervision:skills")
    level = form.cleaned_data["level"]
    try:
        saved = actions.do_set_team_skill(
            actor=request.user,
            scope=scope,
            team=form.cleaned_data["team"],
            skill=form.cleaned_data["skill"],
            level=int(level) if level else None,
            note=form.cleaned_data["note"],
        )
    except actions.SupervisionError as exc:
        messages.error(request, str(exc))
        return redirect("supervision:skills")
    messages.success(
        request,
        _("%(n)s skill levels changed; they apply from the next routing decision.")
        % {"n": len(saved)},
    )
    return redirect(reverse("supervision:skills") + f"?team={form.cleaned_data['team'].pk}")


@supervisor_required
def skills_history(request: HttpRequest, scope: Scope) -> HttpResponse:
    changes = (
        SkillChange.objects.filter(agent__in=scope.agents())
        .select_related("agent__user", "skill", "changed_by")
        .order_by("-changed_at", "-id")[:500]
    )
    return render(request, "supervision/skills_history.html", {"changes": changes})


# --------------------------------------------------------------------------- queues


@supervisor_required
def queues(request: HttpRequest, scope: Scope) -> HttpResponse:
    rows = (
        scope.queues()
        .select_related("overflow_queue", "team")
        .prefetch_related("escalation_steps")
        .order_by("name")
    )
    hours = {h.queue_id: h for h in QueueHours.objects.filter(queue__in=rows)}
    return render(request, "supervision/queues.html", {"queues": rows, "hours": hours})


def _steps_initial(queue: Queue) -> list[dict[str, Any]]:
    return [
        {
            "after_seconds": s.after_seconds,
            "min_level_cap": s.min_level_cap,
            "any_agent_of_team": s.any_agent_of_team,
            "overflow_to": s.overflow_to,
        }
        for s in queue.escalation_steps.order_by("after_seconds")
    ]


@supervisor_required
def queue_settings(request: HttpRequest, scope: Scope, queue_id: int) -> HttpResponse:
    queue = get_object_or_404(scope.queues(), pk=queue_id)
    others = Queue.objects.filter(organisation_id=queue.organisation_id).exclude(pk=queue.pk)
    others = others.order_by("name")
    hours = QueueHours.objects.filter(queue=queue).first()
    calendar = hours.calendar if hours else {}
    initial: dict[str, Any] = {
        "priority": queue.priority,
        "sla_target_seconds": queue.sla_target_seconds,
        "sla_target_percent": queue.sla_target_percent,
        "overflow_queue": queue.overflow_queue,
        "holidays": bool(calendar.get("holidays")) if calendar else True,
    }
    for day in WEEKDAYS:
        initial[f"hours_{day}"] = format_intervals((calendar.get("weekly") or {}).get(day, []))
    if request.method == "POST":
        form = QueueSettingsForm(request.POST, queue=queue)
        steps = EscalationStepFormSet(request.POST, prefix="steps", form_kwargs={"queues": others})
        if form.is_valid() and steps.is_valid():
            specs = [
                actions.StepSpec(
                    after_seconds=s["after_seconds"],
                    min_level_cap=s.get("min_level_cap"),
                    any_agent_of_team=bool(s.get("any_agent_of_team")),
                    overflow_to_id=s["overflow_to"].pk if s.get("overflow_to") else None,
                )
                for s in steps.cleaned_data
                if s.get("after_seconds")
            ]
            try:
                actions.do_update_queue_settings(
                    actor=request.user,
                    scope=scope,
                    queue=queue,
                    priority=form.cleaned_data["priority"],
                    sla_target_seconds=form.cleaned_data["sla_target_seconds"],
                    sla_target_percent=form.cleaned_data["sla_target_percent"],
                    overflow_queue=form.cleaned_data["overflow_queue"],
                    steps=specs,
                    calendar=form.cleaned_data["calendar"],
                )
            except (actions.SupervisionError, ValidationError) as exc:
                form.add_error(None, str(exc.messages[0] if hasattr(exc, "messages") else exc))
            else:
                messages.success(
                    request, _("The settings of %(queue)s are saved.") % {"queue": queue}
                )
                return redirect("supervision:queues")
    else:
        form = QueueSettingsForm(initial=initial, queue=queue)
        steps = EscalationStepFormSet(
            initial=_steps_initial(queue), prefix="steps", form_kwargs={"queues": others}
        )
    return render(
        request,
        "supervision/queue_settings.html",
        {
            "queue": queue,
            "form": form,
            "steps": steps,
            "hour_fields": [form[f"hours_{d}"] for d in WEEKDAYS],
        },
    )


# --------------------------------------------------------------------------- reports


@dataclass(frozen=True)
class Bar:
    label: str
    value: float | None
    width: int  # pixels, out of BAR_SPACE
    y: int
    text: str


BAR_SPACE = 360


def _bars(rows: list[tuple[str, float | None]], fmt: Callable[[float], str]) -> list[Bar]:
    top = max((v for _, v in rows if v is not None), default=0.0) or 1.0
    return [
        Bar(
            label=label,
            value=value,
            width=0 if value is None else round(max(0.0, BAR_SPACE * value / top)),
            y=i * 22,
            text="—" if value is None else fmt(value),
        )
        for i, (label, value) in enumerate(rows)
    ]


def report_csv_response(report: Report) -> HttpResponse:
    """A report as a CSV download (the page's export; the stats API answers the same)."""
    first = "hour" if report.granularity == "hour" else "day"
    response = HttpResponse(report_csv(report, first), content_type="text/csv; charset=utf-8")
    name = f"report_{report.period.first.isoformat()}_{report.period.last.isoformat()}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@supervisor_required
def reports(request: HttpRequest, scope: Scope) -> HttpResponse:
    data = request.GET.copy() if request.GET else None
    if data is not None:
        data.setdefault("date_from", today().isoformat())
        data.setdefault("date_to", data.get("date_from") or today().isoformat())
    form = ReportForm(data, scope=scope, initial={"date_from": today(), "date_to": today()})
    context: dict[str, Any] = {"form": form}
    if data is None:
        form = ReportForm({"date_from": today(), "date_to": today()}, scope=scope)
        context["form"] = form
    if form.is_valid():
        period = form.period()
        report = period_report(period, form.report_filter(), scope=scope)
        if request.GET.get("format") == "csv":
            return report_csv_response(report)
        rows = list(report.rows)
        context.update(
            {
                "report": report,
                "total": report.total,
                "rows": rows,
                "sl_bars": _bars([(r.label, r.figures.service_level) for r in rows], percent),
                "volume_bars": _bars(
                    [(r.label, float(r.figures.arrived)) for r in rows], lambda v: f"{v:.0f}"
                ),
                "chart_height": 22 * len(rows) + 4,
                "csv_query": request.GET.urlencode() + "&format=csv"
                if request.GET
                else f"date_from={period.first}&date_to={period.last}&format=csv",
                "agent_filter": form.cleaned_data["agent"] is not None,
            }
        )
    return render(request, "supervision/reports.html", context)


# --------------------------------------------------------------------------- staffing


@supervisor_required
def staffing(request: HttpRequest, scope: Scope) -> HttpResponse:
    return render(
        request,
        "supervision/staffing.html",
        {"lines": staffing_advice(scope, timezone.now())},
    )


# --------------------------------------------------------------------------- what-if


def _proposal(form: WhatIfForm) -> Proposal:
    data = form.cleaned_data
    skills: dict[tuple[int, str], int | None] = {}
    for i in range(form.SKILL_ROWS):
        agent, skill, level = (
            data.get(f"s{i}_agent"),
            data.get(f"s{i}_skill"),
            data.get(f"s{i}_level"),
        )
        if agent and skill and level:
            skills[(agent.pk, skill.code)] = int(level) or None
    queues = {}
    for q in form.queues:
        priority, target = data.get(f"q{q.pk}_priority"), data.get(f"q{q.pk}_target")
        changed_priority = priority is not None and priority != q.priority
        changed_target = target is not None and target != q.sla_target_seconds
        if changed_priority or changed_target:
            queues[q.pk] = QueueProposal(
                priority=priority if changed_priority else None,
                sla_target_seconds=target if changed_target else None,
            )
    return Proposal(skill_levels=skills, queues=queues)


def _comparison_rows(result: Any, names: dict[int | None, str]) -> list[dict[str, Any]]:
    rows = []
    keys = [k for k in result.actual if k is not None] + [None]
    for key in keys:

        def fig(table: dict[int | None, Figures] | None, key: int | None = key) -> Figures | None:
            return table.get(key) if table is not None else None

        rows.append(
            {
                "name": names.get(key, _("Total") if key is None else str(key)),
                "actual": fig(result.actual),
                "baseline": fig(result.baseline),
                "proposed": fig(result.proposed),
                "total": key is None,
            }
        )
    return rows


@supervisor_required
def whatif(request: HttpRequest, scope: Scope) -> HttpResponse:
    data = request.POST if request.method == "POST" else None
    form = WhatIfForm(data, scope=scope, initial=default_whatif_period())
    context: dict[str, Any] = {"form": form}
    if data is not None and form.is_valid():
        proposal = _proposal(form)
        if request.POST.get("apply") == "1":
            return _apply_proposal(request, scope, proposal)
        start, end = period_bounds(form.period())
        result = compare(record(start, end, scope=scope), proposal)
        names: dict[int | None, str] = {q.pk: q.name for q in scope.queues()}
        context.update(
            {
                "result": result,
                "rows": _comparison_rows(result, names),
                "proposal": proposal,
            }
        )
    return render(request, "supervision/whatif.html", context)


def _apply_proposal(request: HttpRequest, scope: Scope, proposal: Proposal) -> HttpResponse:
    # Skill codes are per organisation: each agent's code is looked up in their organisation.
    skill_ids: dict[tuple[int | None, str], int] = {
        (org_id, code): pk
        for org_id, code, pk in scope.skills().values_list("organisation_id", "code", "pk")
    }
    agent_orgs: dict[int, int | None] = dict(
        scope.agents()
        .filter(pk__in={agent_id for agent_id, _code in proposal.skill_levels})
        .values_list("pk", "organisation_id")
    )
    changes = []
    for (agent_id, code), level in proposal.skill_levels.items():
        skill_id = skill_ids.get((agent_orgs.get(agent_id), code))
        if skill_id is None:
            raise OutOfScope(f"agent #{agent_id} or skill {code} is outside your scope")
        changes.append(actions.LevelChange(agent_id, skill_id, level))
    actions.do_set_skill_levels(
        actor=request.user, scope=scope, changes=changes, note=_("what-if proposal")
    )
    for queue_id, change in proposal.queues.items():
        queue = get_object_or_404(scope.queues(), pk=queue_id)
        hours = QueueHours.objects.filter(queue=queue).first()
        actions.do_update_queue_settings(
            actor=request.user,
            scope=scope,
            queue=queue,
            priority=change.priority if change.priority is not None else queue.priority,
            sla_target_seconds=change.sla_target_seconds or queue.sla_target_seconds,
            sla_target_percent=queue.sla_target_percent,
            overflow_queue=queue.overflow_queue,
            steps=[
                actions.StepSpec(
                    after_seconds=s.after_seconds,
                    min_level_cap=s.min_level_cap,
                    any_agent_of_team=s.any_agent_of_team,
                    overflow_to_id=s.overflow_to_id,
                )
                for s in EscalationStep.objects.filter(queue=queue)
            ],
            calendar=hours.calendar if hours else None,
        )
    messages.success(request, _("The proposal has been applied."))
    return redirect("supervision:whatif")
