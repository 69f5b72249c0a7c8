"""Forms of the supervision pages (parsing only: the writes are in ``supervision.actions``)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from agents.models import AgentProfile, AgentState, PauseReason
from configuration.models import Queue, Skill, Team
from flows.calendar import WEEKDAYS, parse_hhmm
from interactions.models import Channel

from .access import Scope
from .periods import PARIS, Period
from .reports import ReportFilter

LEVEL_CHOICES = [("", "—"), *[(str(n), str(n)) for n in range(1, 6)]]
MAX_PERIOD_DAYS = 366


def today() -> date:
    return timezone.now().astimezone(PARIS).date()


class PeriodForm(forms.Form):
    # type=date inputs want ISO dates whatever the page's language
    date_from = forms.DateField(
        label=_("From"), widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
    )
    date_to = forms.DateField(
        label=_("To"), widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        first, last = data.get("date_from"), data.get("date_to")
        if first and last:
            if last < first:
                raise forms.ValidationError(_("The period ends before it starts."))
            if (last - first).days >= MAX_PERIOD_DAYS:
                raise forms.ValidationError(_("A period is at most one year."))
        return data

    def period(self) -> Period:
        return Period(self.cleaned_data["date_from"], self.cleaned_data["date_to"])


class ReportForm(PeriodForm):
    channel = forms.ChoiceField(
        label=_("Channel"),
        required=False,
        choices=[("", pgettext_lazy("every channel", "All")), *Channel.choices],
    )
    queue = forms.ModelChoiceField(
        label=_("Queue"),
        required=False,
        queryset=Queue.objects.none(),
        empty_label=pgettext_lazy("every queue", "All"),
    )
    team = forms.ModelChoiceField(
        label=_("Team"),
        required=False,
        queryset=Team.objects.none(),
        empty_label=pgettext_lazy("every team", "All"),
    )
    agent = forms.ModelChoiceField(
        label=_("Agent"),
        required=False,
        queryset=AgentProfile.objects.none(),
        empty_label=pgettext_lazy("every agent", "All"),
    )

    def __init__(self, *args: Any, scope: Scope, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["queue"].queryset = scope.queues().order_by("name")  # type: ignore[attr-defined]
        self.fields["team"].queryset = scope.teams().order_by("name")  # type: ignore[attr-defined]
        self.fields["agent"].queryset = scope.agents().select_related("user")  # type: ignore[attr-defined]
        self.scope = scope

    def report_filter(self) -> ReportFilter:
        """What the report covers (a valid form): the chosen channel, queue, team and agent; a
        supervisor's report without a team covers their teams."""
        data = self.cleaned_data
        return ReportFilter(
            channel=data["channel"] or None,
            queue_ids=frozenset({data["queue"].pk}) if data["queue"] else None,
            team_ids=frozenset({data["team"].pk}) if data["team"] else self.scope.team_ids,
            agent_id=data["agent"].pk if data["agent"] else None,
        )


class TeamSkillForm(forms.Form):
    team = forms.ModelChoiceField(label=_("Team"), queryset=Team.objects.none())
    skill = forms.ModelChoiceField(label=_("Skill"), queryset=Skill.objects.none())
    level = forms.ChoiceField(
        label=_("Level"),
        choices=[("", _("remove the skill")), *LEVEL_CHOICES[1:]],
        required=False,
    )
    note = forms.CharField(label=_("Reason for the change"), max_length=200, required=False)

    def __init__(self, *args: Any, scope: Scope, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["team"].queryset = scope.teams().order_by("name")  # type: ignore[attr-defined]
        self.fields["skill"].queryset = scope.skills().order_by("name")  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        team, skill = data.get("team"), data.get("skill")
        if team is not None and skill is not None and team.organisation_id != skill.organisation_id:
            raise forms.ValidationError(_("This skill is not one of the team's organisation."))
        return data


class AgentStateForm(forms.Form):
    state = forms.ChoiceField(
        label=_("New state"),
        choices=[
            (AgentState.AVAILABLE, AgentState.AVAILABLE.label),
            (AgentState.PAUSED, AgentState.PAUSED.label),
            (AgentState.OFFLINE, _("logged out")),
        ],
    )
    reason = forms.ChoiceField(
        label=_("Pause reason"),
        required=False,
        choices=[("", "—"), *[(v, lbl) for v, lbl in PauseReason.choices if v != "missed"]],
    )


def parse_intervals(text: str) -> list[list[str]]:
    """ "08:30-12:30, 13:30-17:00" -> [["08:30", "12:30"], ["13:30", "17:00"]]."""
    spans = []
    for part in text.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        start, sep, end = part.partition("-")
        if not sep:
            raise forms.ValidationError(_("Write opening hours as 08:30-12:30, 13:30-17:00."))
        start, end = start.strip(), end.strip()
        try:
            ends_first = parse_hhmm(start) >= parse_hhmm(end)
        except ValueError as exc:
            raise forms.ValidationError(
                _("Write opening hours as 08:30-12:30, 13:30-17:00.")
            ) from exc
        if ends_first:  # on its field, rather than as an error of the whole form
            raise forms.ValidationError(_("The period ends before it starts."))
        spans.append([start.zfill(5), end.zfill(5)])
    return spans


def format_intervals(spans: list[list[str]]) -> str:
    return ", ".join(f"{a}-{b}" for a, b in spans)


WEEKDAY_LABELS = {
    "mon": _("Monday"),
    "tue": _("Tuesday"),
    "wed": _("Wednesday"),
    "thu": _("Thursday"),
    "fri": _("Friday"),
    "sat": _("Saturday"),
    "sun": _("Sunday"),
}


class QueueSettingsForm(forms.Form):
    priority = forms.IntegerField(
        label=_("Priority"), min_value=-100, max_value=100, help_text=_("Higher is served first.")
    )
    sla_target_seconds = forms.IntegerField(
        label=_("Answer target (seconds)"), min_value=1, max_value=7 * 24 * 3600
    )
    sla_target_percent = forms.IntegerField(
        label=_("Service level goal (%)"), min_value=1, max_value=100
    )
    overflow_queue = forms.ModelChoiceField(
        label=_("Overflow queue"),
        required=False,
        queryset=Queue.objects.none(),
        empty_label=pgettext_lazy("no queue", "None"),
    )
    holidays = forms.BooleanField(
        label=_("Closed on French public holidays"), required=False, initial=True
    )

    def __init__(self, *args: Any, queue: Queue, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["overflow_queue"].queryset = (  # type: ignore[attr-defined]
            Queue.objects.filter(organisation_id=queue.organisation_id)
            .exclude(pk=queue.pk)
            .order_by("name")
        )
        for day in WEEKDAYS:
            self.fields[f"hours_{day}"] = forms.CharField(
                label=WEEKDAY_LABELS[day],
                required=False,
                max_length=200,
                help_text=_("e.g. 08:30-12:30, 13:30-17:00; empty: closed"),
            )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        weekly = {}
        for day in WEEKDAYS:
            try:
                spans = parse_intervals(data.get(f"hours_{day}") or "")
            except forms.ValidationError as exc:
                self.add_error(f"hours_{day}", exc)
                continue
            if spans:
                weekly[day] = spans
        data["calendar"] = (
            {
                "timezone": "Europe/Paris",
                "weekly": weekly,
                "holidays": {"country": "FR"} if data.get("holidays") else None,
            }
            if weekly
            else None
        )
        return data


class EscalationStepForm(forms.Form):
    after_seconds = forms.IntegerField(label=_("After waiting (s)"), min_value=1, required=False)
    min_level_cap = forms.TypedChoiceField(
        label=_("Accept level from"),
        required=False,
        coerce=int,
        empty_value=None,
        choices=LEVEL_CHOICES,
    )
    any_agent_of_team = forms.BooleanField(label=_("Any agent of the team"), required=False)
    overflow_to = forms.ModelChoiceField(
        label=_("Overflow to"), required=False, queryset=Queue.objects.none(), empty_label="—"
    )

    def __init__(self, *args: Any, queues: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["overflow_to"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = queues if queues is not None else Queue.objects.all()


class StepFormSetBase(forms.BaseFormSet):
    def get_form_kwargs(self, index: int | None) -> dict[str, Any]:
        return {**super().get_form_kwargs(index), "queues": self.form_kwargs.get("queues")}


EscalationStepFormSet = forms.formset_factory(
    EscalationStepForm, formset=StepFormSetBase, extra=2, max_num=10
)


class WhatIfForm(PeriodForm):
    """The period to replay and the changes to try (queue fields are added per queue)."""

    SKILL_ROWS = 4

    def __init__(self, *args: Any, scope: Scope, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queues = list(scope.queues().filter(active=True).order_by("name"))
        agents = scope.agents().select_related("user")
        skills = scope.skills().order_by("name")
        for q in self.queues:
            self.fields[f"q{q.pk}_priority"] = forms.IntegerField(
                label=_("Priority"), min_value=-100, max_value=100, initial=q.priority
            )
            self.fields[f"q{q.pk}_target"] = forms.IntegerField(
                label=_("Answer target (s)"), min_value=1, initial=q.sla_target_seconds
            )
        for i in range(self.SKILL_ROWS):
            self.fields[f"s{i}_agent"] = forms.ModelChoiceField(
                label=_("Agent"), queryset=agents, required=False, empty_label="—"
            )
            self.fields[f"s{i}_skill"] = forms.ModelChoiceField(
                label=_("Skill"), queryset=skills, required=False, empty_label="—"
            )
            self.fields[f"s{i}_level"] = forms.ChoiceField(
                label=_("Level"),
                choices=[("", "—"), ("0", _("remove")), *LEVEL_CHOICES[1:]],
                required=False,
            )

    def skill_rows(self) -> list[tuple[Any, Any, Any]]:
        return [
            (self[f"s{i}_agent"], self[f"s{i}_skill"], self[f"s{i}_level"])
            for i in range(self.SKILL_ROWS)
        ]

    def queue_rows(self) -> list[tuple[Queue, Any, Any]]:
        return [(q, self[f"q{q.pk}_priority"], self[f"q{q.pk}_target"]) for q in self.queues]


def default_whatif_period() -> dict[str, date]:
    yesterday = today() - timedelta(days=1)
    return {"date_from": yesterday, "date_to": yesterday}
