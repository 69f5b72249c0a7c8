"""An agent's own page: today's figures and a search of the past conversations they handled.

The figures are the supervisors' report engine (``supervision.rollup.period_report`` with
``ReportFilter(agent_id=...)``) over today's interactions answered by the agent, so the agent
reads the same numbers as their supervisor's report filtered on them: conversations handled,
average handling time, satisfaction.

An agent may search and reread only the conversations they handled (assigned to them at some
point, or in which they wrote): their own organisation, nothing of a colleague's they never
touched (the citizen's history is shown to whoever serves the citizen now, in the workspace).
Each search and each conversation opened is written to the access log, like the workspace.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from django.core.paginator import Paginator
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from contacts.identity import InvalidIdentity, normalize_email, normalize_phone
from contacts.models import ContactIdentity
from interactions.models import Interaction, InteractionTransition, Message
from kernel.audit import AccessAction, log_access
from organisations import authz
from supervision.periods import PARIS, Period
from supervision.reports import ReportFilter
from supervision.rollup import period_report

from .views import _agent, _thread_context, agent_required

PAGE_SIZE = 20
MAX_QUERY = 200


@dataclass(frozen=True)
class _OwnWork:
    """A report scope of the agent's own interactions (``report_facts`` asks for
    ``interactions()``): the report reads only them instead of the whole organisation's day."""

    agent_id: int
    organisation_id: int

    def interactions(self) -> QuerySet[Interaction]:
        return Interaction.objects.filter(
            organisation_id=self.organisation_id, assigned_agent_id=self.agent_id
        )


def handled_by(request: HttpRequest) -> QuerySet[Interaction]:
    """The conversations the agent handled: assigned to them (now, or once: a transition they
    made), or one they wrote in; within what authz lets them see."""
    agent = _agent(request)
    user_id = request.user.pk
    wrote = Message.objects.filter(interaction=OuterRef("pk"), author_id=user_id)
    acted = InteractionTransition.objects.filter(interaction=OuterRef("pk"), actor_id=user_id)
    return authz.visible(request.user, Interaction).filter(
        Q(assigned_agent=agent) | Exists(wrote) | Exists(acted),
        organisation_id=agent.organisation_id,
    )


def _quietly(normalize: Any, raw: str) -> str | None:
    """The normalised identity, or None when ``raw`` is not one of that kind."""
    try:
        return normalize(raw)
    except InvalidIdentity:
        return None


def _parse_day(raw: str, field: str, errors: list[str]) -> date | None:
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        errors.append(_("%(field)s: give a date such as 2026-12-03.") % {"field": field})
        return None


def _search(request: HttpRequest) -> tuple[QuerySet[Interaction], dict[str, str], list[str]]:
    params = {
        key: (request.GET.get(key) or "").strip()[:MAX_QUERY]
        for key in ("citizen", "reference", "text", "from", "to")
    }
    errors: list[str] = []
    found = handled_by(request)
    citizen = params["citizen"]
    if citizen:
        exact = {
            v for v in (_quietly(normalize_phone, citizen), _quietly(normalize_email, citizen)) if v
        }
        by_identity = ContactIdentity.objects.filter(value__in=exact).values("contact_id")
        found = found.filter(
            Q(contact__display_name__icontains=citizen) | Q(contact_id__in=by_identity)
        )
    reference = params["reference"]
    if reference:
        number = reference.lstrip("#")
        query = Q(case__reference__iexact=reference) | Q(external_ref=reference)
        if number.isdigit():
            query |= Q(pk=int(number))
        found = found.filter(query)
    text = params["text"]
    if text:
        matching = Message.objects.filter(interaction=OuterRef("pk"), text__icontains=text)
        found = found.filter(Q(subject__icontains=text) | Exists(matching))
    first = _parse_day(params["from"], _("From"), errors)
    last = _parse_day(params["to"], _("To"), errors)
    if first and last and last < first:
        errors.append(_("The end date is before the start date."))
    if first:
        found = found.filter(created_at__gte=datetime.combine(first, time.min, tzinfo=PARIS))
    if last:
        end = datetime.combine(last + timedelta(days=1), time.min, tzinfo=PARIS)
        found = found.filter(created_at__lt=end)
    return found, params, errors


def _today_figures(request: HttpRequest) -> Any:
    agent = _agent(request)
    day = timezone.localtime(timezone.now(), PARIS).date()
    scope = _OwnWork(agent.pk, agent.organisation_id)
    report = period_report(
        Period(day, day),
        ReportFilter(agent_id=agent.pk),
        scope=scope,  # type: ignore[arg-type]
    )
    return report.total


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    minutes, rest = divmod(round(seconds), 60)
    return _("%(m)d min %(s)02d s") % {"m": minutes, "s": rest}


@agent_required
@require_GET
def activity(request: HttpRequest) -> HttpResponse:
    found, params, errors = _search(request)
    figures = _today_figures(request)
    searched = any(params.values())
    if errors:
        found = found.none()
    page = Paginator(
        found.select_related("contact", "queue", "case").order_by("-created_at", "-pk"),
        PAGE_SIZE,
    ).get_page(request.GET.get("page"))
    if searched and not errors:
        log_access(
            request.user,
            AccessAction.SEARCH,
            organisation_id=_agent(request).organisation_id,
            fields=sorted(k for k, v in params.items() if v),  # which fields, never the words
            results=page.paginator.count,
        )
    kept = request.GET.copy()
    kept.pop("page", None)
    return render(
        request,
        "console/activity.html",
        {
            "figures": figures,
            "aht": _duration(figures.aht_s),
            "page": page,
            "params": params,
            "errors": errors,
            "searched": searched,
            "query": kept.urlencode(),
        },
    )


@agent_required
@require_GET
def past_conversation(request: HttpRequest, interaction_id: int) -> HttpResponse:
    interaction = handled_by(request).filter(pk=interaction_id).first()
    if interaction is None:
        raise Http404
    log_access(request.user, AccessAction.VIEW_THREAD, interaction)
    return render(
        request,
        "console/past_conversation.html",
        {**_thread_context(interaction), "interaction": interaction},
    )
