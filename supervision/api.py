"""The stats API (``/api/v1/stats/``): the wallboard's live figures and the reports' figures
over REST, from the pages' own engine (nothing is computed here).

- ``GET /api/v1/stats/live/``: per queue the wallboard's lines (``selectors.queue_lines``:
  waiting, oldest wait, today's counters from ``QueueDayStats``, the SLA alert), added up per
  queue with the agents who could answer it by state (``selectors.live_queues``); the agents'
  table of the wallboard (``selectors.agent_rows``).
- ``GET /api/v1/stats/reports/``: the reports page's figures (``rollup.period_report``) for a
  period (``from``/``to`` or a named ``period``) and the page's filters, parsed and checked by the
  page's own form (``forms.ReportForm``); ``format=csv`` answers the page's CSV export, byte for
  byte.

Figures are the report's (``reports.Figures``): counts, rates as fractions 0..1 (``null`` when
their denominator is 0), durations in seconds, as in the CSV export.

Who: supervisors (the queues of the teams they supervise and those teams' agents; a supervisor
of no team gets empty lists), organisation administrators (their organisation), platform
administrators (every organisation, or one with ``organisation=<id>``) and service tokens (their
organisation; a read token is enough). Agents and data-protection officers are refused (403),
as on the wallboard and the reports page; a call without credentials gets 401.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from django.http import QueryDict
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import BaseRenderer, BrowsableAPIRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from agents.models import AgentState
from interactions.lifecycle import Status
from interactions.models import Channel
from organisations import authz
from organisations.api_scope import int_param
from organisations.authz import Role

from .access import OutOfScope, Scope, scope_for
from .forms import ReportForm, today
from .periods import PERIOD_NAMES, Period, day_bounds, hour_buckets, named_period
from .reports import Report
from .rollup import period_report
from .selectors import (
    QueueLine,
    QueueLive,
    agent_rows,
    connected_count,
    live_queues,
    longest_wait_s,
    sla_alert,
    state_counts,
)
from .views import report_csv_response

# --------------------------------------------------------------------------- who reads


def stats_scope(request: Request) -> Scope:
    """The caller's supervision scope (:func:`supervision.access.scope_for`); a service token
    reads its whole organisation, like an organisation administrator (never another one)."""
    organisation = int_param(request, "organisation")
    principal = authz.principal_for(request.user)
    if principal.role == Role.SERVICE:
        if organisation is not None and organisation != principal.organisation_id:
            raise PermissionDenied(_("This token reads its own organisation's statistics only."))
        return Scope(principal=principal, organisation_id=principal.organisation_id, team_ids=None)
    try:
        scope = scope_for(request.user, organisation_id=organisation)
    except OutOfScope as exc:
        raise PermissionDenied(_("You supervise another organisation.")) from exc
    if scope is None:
        raise PermissionDenied(
            _("Only supervisors, administrators and service tokens read the statistics.")
        )
    return scope


# --------------------------------------------------------------------------- output shapes


class FiguresSerializer(serializers.Serializer):
    """The report figures (``supervision.reports.Figures``): the CSV export's columns."""

    arrived = serializers.IntegerField(help_text="Interactions that reached the queue.")
    offered = serializers.IntegerField(help_text="Answered + abandoned + closed unanswered.")
    answered = serializers.IntegerField(help_text="First taken by an agent.")
    answered_within_sla = serializers.IntegerField(help_text="Answered within their target.")
    abandoned = serializers.IntegerField(help_text="The citizen left before any agent took it.")
    abandoned_short = serializers.IntegerField(help_text="Abandoned within 5 seconds.")
    closed_unanswered = serializers.IntegerField(help_text="Closed without any agent.")
    service_level = serializers.FloatField(
        allow_null=True,
        help_text="Answered within target / (answered + abandoned after 5 s), 0..1.",
    )
    asa_s = serializers.FloatField(allow_null=True, help_text="Average speed of answer, s.")
    aht_s = serializers.FloatField(allow_null=True, help_text="Average handling time, s.")
    abandonment_rate = serializers.FloatField(allow_null=True, help_text="Abandoned / offered.")
    answer_rate = serializers.FloatField(
        allow_null=True, help_text="Answered / offered (Services Publics+ taux de décroché)."
    )
    csat = serializers.FloatField(
        allow_null=True, help_text="Survey answers at 4 or 5 of 5 / survey answers."
    )
    csat_responses = serializers.IntegerField(help_text="Survey answers.")


ALERTS = ["waiting_over_target", "service_level_below_goal"]


class ChannelLiveSerializer(serializers.Serializer):
    channel = serializers.ChoiceField(choices=Channel.choices)
    waiting = serializers.IntegerField(help_text="Contacts waiting or being offered now.")
    oldest_queued_at = serializers.DateTimeField(allow_null=True)
    longest_wait_s = serializers.IntegerField(allow_null=True)
    alert = serializers.ChoiceField(choices=ALERTS, allow_null=True)
    today = FiguresSerializer(help_text="Today's figures (local day, Europe/Paris).")


class QueueAgentsSerializer(serializers.Serializer):
    logged_in = serializers.IntegerField(
        help_text="Agents logged in who could answer this queue (its base skill levels)."
    )
    available = serializers.IntegerField()
    wrap_up = serializers.IntegerField()
    paused = serializers.IntegerField()
    busy = serializers.IntegerField(
        help_text="Of the logged-in agents, those offered or handling at least one contact."
    )


class QueueLiveSerializer(ChannelLiveSerializer):
    channel = None  # type: ignore[assignment]
    queue_id = serializers.IntegerField()
    code = serializers.CharField()
    name = serializers.CharField()
    sla_target_s = serializers.IntegerField(help_text="Answer target, seconds.")
    sla_goal_percent = serializers.IntegerField(help_text="Service level goal, percent.")
    open = serializers.BooleanField(
        allow_null=True, help_text="Open now per its opening hours (null: no hours set)."
    )
    agents = QueueAgentsSerializer()
    channels = ChannelLiveSerializer(many=True)


class AgentWorkSerializer(serializers.Serializer):
    interaction_id = serializers.IntegerField()
    channel = serializers.ChoiceField(choices=Channel.choices)
    status = serializers.ChoiceField(choices=Status.choices)
    since = serializers.DateTimeField(allow_null=True)


class AgentLiveSerializer(serializers.Serializer):
    agent_id = serializers.IntegerField()
    name = serializers.CharField()
    team = serializers.CharField()
    state = serializers.ChoiceField(choices=AgentState.choices)
    connected = serializers.BooleanField(help_text="Logged in with a live console (heartbeat).")
    pause_reason = serializers.CharField(allow_blank=True)
    state_since = serializers.DateTimeField(allow_null=True)
    work = AgentWorkSerializer(many=True)


class AgentStatesSerializer(serializers.Serializer):
    offline = serializers.IntegerField()
    available = serializers.IntegerField()
    wrap_up = serializers.IntegerField()
    paused = serializers.IntegerField()


class LiveStatsSerializer(serializers.Serializer):
    now = serializers.DateTimeField()
    queues = QueueLiveSerializer(many=True)
    agent_states = AgentStatesSerializer(help_text="The agents below, counted by state.")
    agents_connected = serializers.IntegerField(help_text="Agents with a live console.")
    agents = AgentLiveSerializer(many=True)


class ReportRowSerializer(serializers.Serializer):
    label = serializers.CharField(  # type: ignore[assignment]  # a field, not Field.label
        help_text="The day (YYYY-MM-DD) or local hour (HH:MM)."
    )
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    figures = FiguresSerializer()


class ReportFiltersSerializer(serializers.Serializer):
    channel = serializers.ChoiceField(choices=Channel.choices, allow_null=True)
    queue = serializers.IntegerField(allow_null=True)
    team = serializers.IntegerField(allow_null=True)
    agent = serializers.IntegerField(allow_null=True)


class ReportStatsSerializer(serializers.Serializer):
    def get_fields(self) -> dict[str, serializers.Field]:
        # "from" and "to" are Python keywords: not declarable as attributes.
        return {
            "from": serializers.DateField(),
            "to": serializers.DateField(),
            "days": serializers.IntegerField(),
            "granularity": serializers.ChoiceField(
                choices=["hour", "day"], help_text="Rows per hour (a one-day period) or per day."
            ),
            "filters": ReportFiltersSerializer(),
            "total": FiguresSerializer(),
            "rows": ReportRowSerializer(many=True),
        }


# --------------------------------------------------------------------------- building them


def _line(line: QueueLine, now: Any) -> dict[str, Any]:
    return {
        "channel": line.channel,
        "waiting": line.waiting,
        "oldest_queued_at": line.oldest_queued_at,
        "longest_wait_s": longest_wait_s(line.oldest_queued_at, now),
        "alert": sla_alert(line, now),
        "today": line.figures,
    }


def _queue(live: QueueLive, now: Any) -> dict[str, Any]:
    queue = live.queue
    return {
        **_line(live.total, now),
        "queue_id": queue.pk,
        "code": queue.code,
        "name": queue.name,
        "sla_target_s": queue.sla_target_seconds,
        "sla_goal_percent": queue.sla_target_percent,
        "open": live.total.open_now,
        "agents": live.agents,
        "channels": [_line(line, now) for line in live.channels],
    }


def _rows(report: Report) -> list[dict[str, Any]]:
    if report.granularity == "hour":
        spans = [(b.start, b.end) for b in hour_buckets(report.period.first)]
    else:
        spans = [day_bounds(day) for day in report.period.each_day()]
    return [
        {"label": row.label, "start": start, "end": end, "figures": row.figures}
        for row, (start, end) in zip(report.rows, spans, strict=True)
    ]


# --------------------------------------------------------------------------- parameters

ORGANISATION = OpenApiParameter(
    "organisation",
    int,
    description="Platform administrators: one organisation's figures (default: all of them).",
)
QUEUE = OpenApiParameter("queue", int, description="One queue (of those the caller sees).")
BAD_PARAMETER = OpenApiResponse(
    OpenApiTypes.OBJECT,
    description='A parameter is wrong: {"<parameter>": ["why"]}, e.g. {"from": ["Enter a '
    'valid date."]}.',
)
REFUSED = OpenApiResponse(
    OpenApiTypes.OBJECT, description="Not a supervisor, administrator or service token."
)
NO_CREDENTIALS = OpenApiResponse(OpenApiTypes.OBJECT, description="No credentials.")

# API parameter -> the reports page's form field (the page's names stay the page's).
FORM_FIELDS = {
    "from": "date_from",
    "to": "date_to",
    "channel": "channel",
    "queue": "queue",
    "team": "team",
    "agent": "agent",
}
API_NAMES = {field: name for name, field in FORM_FIELDS.items()}


def report_form_data(params: QueryDict, current: date) -> dict[str, str]:
    """The reports page's form data from the API's parameters: ``period`` (a name) or
    ``from``/``to`` (``to`` defaults to ``from``, ``from`` to today, as on the page)."""
    data = {field: params.get(name, "") for name, field in FORM_FIELDS.items()}
    name = params.get("period", "")
    if name:
        if data["date_from"] or data["date_to"]:
            raise ValidationError({"period": [_("Give a period or from/to, not both.")]})
        try:
            period = named_period(name, current)
        except ValueError:
            raise ValidationError(
                {"period": [_("Unknown period: use one of %s.") % ", ".join(PERIOD_NAMES)]}
            ) from None
        data["date_from"], data["date_to"] = period.first.isoformat(), period.last.isoformat()
    data["date_from"] = data["date_from"] or current.isoformat()
    data["date_to"] = data["date_to"] or data["date_from"]
    return data


def form_errors(form: ReportForm, given: QueryDict) -> dict[str, list[str]]:
    """The form's errors under the API's parameter names (not those of a parameter the caller
    left out: a wrong ``from`` is not also a wrong ``to`` that defaulted to it)."""
    errors = {
        API_NAMES.get(field, api_settings.NON_FIELD_ERRORS_KEY): [str(m) for m in messages]
        for field, messages in form.errors.items()
    }
    return {
        name: messages
        for name, messages in errors.items()
        if name not in FORM_FIELDS or name in given or len(errors) == 1
    }


# --------------------------------------------------------------------------- views


class CSVRenderer(BaseRenderer):
    """``format=csv`` (or ``Accept: text/csv``): the view answers the page's CSV itself."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: Mapping[str, Any] | None = None,
    ) -> bytes:
        return data.encode() if isinstance(data, str) else bytes(data or b"")


class LiveStatsView(APIView):
    """Live figures: per queue, what waits now and today's figures (the wallboard's), the
    agents who could answer it by state; the agents the caller supervises and their work."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="stats_live",
        parameters=[QUEUE, ORGANISATION],
        responses={
            200: LiveStatsSerializer,
            400: BAD_PARAMETER,
            401: NO_CREDENTIALS,
            403: REFUSED,
        },
    )
    def get(self, request: Request) -> Response:
        scope = stats_scope(request)
        queue_id = int_param(request, "queue")
        if queue_id is not None and not scope.queues().filter(pk=queue_id).exists():
            raise ValidationError({"queue": [_("No such queue among the queues you see.")]})
        now = timezone.now()
        agents = agent_rows(scope) if queue_id is None else []
        data = {
            "now": now,
            "queues": [_queue(live, now) for live in live_queues(scope, now, queue_id=queue_id)],
            "agent_states": state_counts(agents),
            "agents_connected": connected_count(agents),
            "agents": agents,
        }
        return Response(LiveStatsSerializer(data).data)


class ReportStatsView(APIView):
    """Report figures for a period, as the reports page computes them (past days from the
    daily roll-up, today from the interactions): the total and one row per day, or per hour
    for a one-day period. ``format=csv``: the page's CSV export."""

    permission_classes = [IsAuthenticated]
    renderer_classes = [JSONRenderer, BrowsableAPIRenderer, CSVRenderer]

    def handle_exception(self, exc: Exception) -> Response:
        # An error asked for as CSV is still said in JSON.
        if getattr(getattr(self.request, "accepted_renderer", None), "format", "") == "csv":
            self.request.accepted_renderer = JSONRenderer()
            self.request.accepted_media_type = JSONRenderer.media_type
        return super().handle_exception(exc)

    @extend_schema(
        operation_id="stats_reports",
        parameters=[
            OpenApiParameter(
                "period",
                str,
                enum=list(PERIOD_NAMES),
                description="A named period (local days, Europe/Paris; weeks start on "
                "Monday), instead of from/to.",
            ),
            OpenApiParameter("from", OpenApiTypes.DATE, description="First day (default: today)."),
            OpenApiParameter(
                "to",
                OpenApiTypes.DATE,
                description="Last day, included (default: from); at most one year.",
            ),
            OpenApiParameter("channel", str, enum=Channel.values, description="One channel."),
            QUEUE,
            OpenApiParameter("team", int, description="Queues the team serves or its agents."),
            OpenApiParameter("agent", int, description="Interactions the agent answered."),
            ORGANISATION,
            OpenApiParameter(
                "format", str, enum=["json", "csv"], description="csv: the page's CSV export."
            ),
        ],
        responses={
            (200, "application/json"): ReportStatsSerializer,
            (200, "text/csv"): OpenApiResponse(
                OpenApiTypes.STR,
                description="One line per hour or day, then total (the page's export).",
            ),
            (400, "application/json"): BAD_PARAMETER,
            (401, "application/json"): NO_CREDENTIALS,
            (403, "application/json"): REFUSED,
        },
    )
    def get(self, request: Request) -> Any:
        scope = stats_scope(request)
        form = ReportForm(report_form_data(request.query_params, today()), scope=scope)
        if not form.is_valid():
            raise ValidationError(form_errors(form, request.query_params))
        period: Period = form.period()
        report = period_report(period, form.report_filter(), scope=scope)
        if request.accepted_renderer.format == "csv":
            return report_csv_response(report)
        cleaned = form.cleaned_data
        data = {
            "from": period.first,
            "to": period.last,
            "days": period.days,
            "granularity": report.granularity,
            "filters": {
                "channel": cleaned["channel"] or None,
                **{
                    name: cleaned[name].pk if cleaned[name] else None
                    for name in ("queue", "team", "agent")
                },
            },
            "total": report.total,
            "rows": _rows(report),
        }
        return Response(ReportStatsSerializer(data).data)
