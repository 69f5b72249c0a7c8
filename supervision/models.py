"""Supervision: audit of skill changes and supervisor actions, the wallboard's daily counters,
agents' state history (for what-if replays), satisfaction answers and queue opening hours."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _


class SkillChange(models.Model):
    """One change of one agent's level on one skill: who, when, before and after.

    ``before`` is empty when the skill was added, ``after`` when it was removed. Changes made
    together (a bulk edit) share a ``batch``."""

    agent = models.ForeignKey(
        "agents.AgentProfile",
        verbose_name=_("agent"),
        on_delete=models.CASCADE,
        related_name="skill_changes",
    )
    skill = models.ForeignKey(
        "configuration.Skill", verbose_name=_("skill"), on_delete=models.CASCADE, related_name="+"
    )
    before = models.PositiveSmallIntegerField(_("level before"), null=True, blank=True)
    after = models.PositiveSmallIntegerField(_("level after"), null=True, blank=True)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("changed by"),
        null=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    changed_at = models.DateTimeField(_("changed at"), db_index=True)
    batch = models.UUIDField(_("batch"), db_index=True)
    note = models.CharField(_("note"), max_length=200, blank=True)

    class Meta:
        verbose_name = _("skill change")
        verbose_name_plural = _("skill changes")
        ordering = ["-changed_at", "-id"]

    def __str__(self) -> str:
        return f"{self.agent}: {self.skill} {self.before} → {self.after}"


class SupervisorAction(models.Model):
    """Audit of what supervisors did to agents and interactions."""

    class Kind(models.TextChoices):
        SET_STATE = "set_state", _("changed an agent's state")
        LOG_OUT = "log_out", _("logged an agent out")
        REASSIGN = "reassign", _("reassigned an interaction")
        TAKE = "take", _("took an interaction")
        QUEUE_SETTINGS = "queue", _("changed a queue's settings")
        FLOW = "flow", _("changed a flow")

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("supervisor"),
        null=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    kind = models.CharField(_("action"), max_length=16, choices=Kind.choices)
    agent = models.ForeignKey(
        "agents.AgentProfile",
        verbose_name=_("agent"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    interaction = models.ForeignKey(
        "interactions.Interaction",
        verbose_name=_("interaction"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    at = models.DateTimeField(_("at"), db_index=True)
    details = models.JSONField(_("details"), default=dict, blank=True)

    class Meta:
        verbose_name = _("supervisor action")
        verbose_name_plural = _("supervisor actions")
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.actor}: {self.get_kind_display()}"


class DayFigures(models.Model):
    """The counters of ``supervision.reports.Figures``, one column each."""

    arrived = models.IntegerField(default=0)
    answered = models.IntegerField(default=0)
    answered_within_sla = models.IntegerField(default=0)
    abandoned = models.IntegerField(default=0)
    abandoned_short = models.IntegerField(default=0)
    closed_unanswered = models.IntegerField(default=0)
    wait_sum_s = models.FloatField(default=0.0)
    handled = models.IntegerField(default=0)
    handle_sum_s = models.FloatField(default=0.0)
    csat_responses = models.IntegerField(default=0)
    csat_satisfied = models.IntegerField(default=0)

    class Meta:
        abstract = True


class QueueDayStats(DayFigures):
    """The wallboard's counters for one local day, queue and channel (``supervision.stats``).

    They move event by event with the deltas of ``supervision.reports``, after each commit, and
    can be rebuilt from the interactions at any time (``manage.py rebuild_wallboard_stats``).
    ``queue_key`` is the queue's id (0: no queue)."""

    day = models.DateField(_("day"))
    queue_key = models.PositiveIntegerField(_("queue"))
    channel = models.CharField(_("channel"), max_length=8)

    class Meta:
        verbose_name = _("daily queue figures")
        verbose_name_plural = _("daily queue figures")
        constraints = [
            models.UniqueConstraint(
                fields=["day", "queue_key", "channel"], name="queue_day_stats_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.day} queue {self.queue_key} {self.channel}"


class ReportDay(models.Model):
    """A past local day whose report figures are rolled up in :class:`ReportDayStats`
    (``supervision.rollup``). Deleted when anything of the day changes (an answer, a closure, a
    survey...): the next report rebuilds the day from the interactions."""

    day = models.DateField(_("day"), primary_key=True)
    built_at = models.DateTimeField(_("built at"))

    class Meta:
        verbose_name = _("rolled-up report day")
        verbose_name_plural = _("rolled-up report days")

    def __str__(self) -> str:
        return f"{self.day}"


class ReportDayStats(DayFigures):
    """Report figures of one past local day, per organisation, queue, channel, agent and
    "answered": every report filter (channel, queue, team, agent) and every supervision scope
    is a condition on these keys, so a month or a year is a sum of rows, not a scan of the
    interactions. ``queue_key`` / ``agent_key``: the interaction's queue and agent ids (0: none);
    teams are looked up when the report is read, as for a report from the interactions."""

    day = models.DateField(_("day"))
    organisation_key = models.PositiveIntegerField(_("organisation"))
    queue_key = models.PositiveIntegerField(_("queue"))
    channel = models.CharField(_("channel"), max_length=8)
    agent_key = models.PositiveIntegerField(_("agent"))
    answered_by_agent = models.BooleanField(_("answered"))

    class Meta:
        verbose_name = _("rolled-up report figures")
        verbose_name_plural = _("rolled-up report figures")
        constraints = [
            models.UniqueConstraint(
                fields=[
                    "day",
                    "organisation_key",
                    "queue_key",
                    "channel",
                    "agent_key",
                    "answered_by_agent",
                ],
                name="report_day_stats_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.day} queue {self.queue_key} {self.channel} agent {self.agent_key}"


class SatisfactionResponse(models.Model):
    """A citizen's answer to the satisfaction survey after an interaction (CSAT)."""

    interaction = models.OneToOneField(
        "interactions.Interaction",
        verbose_name=_("interaction"),
        on_delete=models.CASCADE,
        related_name="satisfaction",
    )
    score = models.PositiveSmallIntegerField(
        _("score"), validators=[MinValueValidator(1), MaxValueValidator(5)]
    )
    comment = models.TextField(_("comment"), blank=True)
    at = models.DateTimeField(_("answered at"))

    class Meta:
        verbose_name = _("satisfaction answer")
        verbose_name_plural = _("satisfaction answers")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(score__gte=1, score__lte=5), name="satisfaction_score_1_5"
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.interaction_id}: {self.score}/5"


class QueueHours(models.Model):
    """When a queue is staffed (a business-hours calendar, the SVI's format: flows.calendar).

    The wallboard raises service-level alerts and the staffing advice counts agents only while a
    queue is open; what callers hear outside the hours is the SVI flow's business_hours node."""

    queue = models.OneToOneField(
        "configuration.Queue",
        verbose_name=_("queue"),
        on_delete=models.CASCADE,
        related_name="hours",
    )
    calendar = models.JSONField(_("opening hours"), default=dict)

    class Meta:
        verbose_name = _("queue opening hours")
        verbose_name_plural = _("queue opening hours")

    def __str__(self) -> str:
        return f"{self.queue}"
