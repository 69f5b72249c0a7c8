"""Skills, teams, queues with their requirements, and escalation steps (see the package's
docstring for why they live here)."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from organisations.models import OrganisationOwned

LEVEL_VALIDATORS = [MinValueValidator(1), MaxValueValidator(5)]


class Skill(OrganisationOwned):
    """A competence an interaction may need (a benefit, a procedure, a language...)."""

    code = models.SlugField(_("code"), max_length=50)
    name = models.CharField(_("name"), max_length=100)
    description = models.TextField(_("description"), blank=True)

    class Meta:
        db_table = "routing_skill"
        verbose_name = _("skill")
        verbose_name_plural = _("skills")
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["organisation", "code"], name="skill_code_per_org"),
        ]

    def __str__(self) -> str:
        return self.name


class Team(OrganisationOwned):
    name = models.CharField(_("name"), max_length=100)
    supervisors = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        verbose_name=_("supervisors"),
        blank=True,
        related_name="supervised_teams",
    )

    class Meta:
        db_table = "agents_team"
        verbose_name = _("team")
        verbose_name_plural = _("teams")
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["organisation", "name"], name="team_name_per_org"),
        ]

    def __str__(self) -> str:
        return self.name


class Queue(OrganisationOwned):
    """Where interactions wait. Its skills are what its interactions need by default."""

    organisation_from = ("team", "overflow_queue")

    code = models.SlugField(_("code"), max_length=50)
    name = models.CharField(_("name"), max_length=100)
    priority = models.SmallIntegerField(
        _("priority"), default=0, help_text=_("Higher is served first.")
    )
    sla_target_seconds = models.PositiveIntegerField(
        _("answer target (s)"),
        default=60,
        help_text=_("An interaction answered within this time meets the service level."),
    )
    sla_target_percent = models.PositiveSmallIntegerField(
        _("service level goal (%)"),
        default=80,
        validators=[MinValueValidator(1), MaxValueValidator(100)],
    )
    language = models.CharField(_("language"), max_length=8, default="fr", blank=True)
    skills: models.ManyToManyField[Skill, QueueSkill] = models.ManyToManyField(
        Skill, through="QueueSkill", related_name="queues", verbose_name=_("skills")
    )
    team = models.ForeignKey(
        Team,
        verbose_name=_("team"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="queues",
        help_text=_("The team escalation steps can widen to."),
    )
    overflow_queue = models.ForeignKey(
        "self",
        verbose_name=_("overflow queue"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        db_table = "routing_queue"
        verbose_name = _("queue")
        verbose_name_plural = _("queues")
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["organisation", "code"], name="queue_code_per_org"),
        ]

    def __str__(self) -> str:
        return self.name

    def required_skills(self) -> dict[str, int]:
        return {qs.skill.code: qs.min_level for qs in self.queue_skills.select_related("skill")}


class QueueSkill(models.Model):
    queue = models.ForeignKey(Queue, on_delete=models.CASCADE, related_name="queue_skills")
    skill = models.ForeignKey(Skill, on_delete=models.PROTECT, related_name="+")
    min_level = models.PositiveSmallIntegerField(
        _("minimum level"), default=1, validators=LEVEL_VALIDATORS
    )

    class Meta:
        db_table = "routing_queueskill"
        verbose_name = _("queue skill")
        verbose_name_plural = _("queue skills")
        constraints = [
            models.UniqueConstraint(fields=["queue", "skill"], name="queue_skill_unique"),
            models.CheckConstraint(
                condition=models.Q(min_level__gte=1, min_level__lte=5),
                name="queue_skill_level_1_5",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.skill} ≥ {self.min_level}"


class EscalationStep(models.Model):
    """Relaxes a queue's requirements once an interaction has waited ``after_seconds``."""

    queue = models.ForeignKey(Queue, on_delete=models.CASCADE, related_name="escalation_steps")
    after_seconds = models.PositiveIntegerField(_("after waiting (s)"))
    min_level_cap = models.PositiveSmallIntegerField(
        _("accept level from"),
        null=True,
        blank=True,
        validators=LEVEL_VALIDATORS,
        help_text=_("Every required level is lowered to at most this value."),
    )
    any_agent_of_team = models.BooleanField(
        _("any agent of the queue's team"),
        default=False,
        help_text=_("Skills are no longer required; membership of the queue's team is."),
    )
    overflow_to = models.ForeignKey(
        Queue,
        verbose_name=_("overflow to"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        db_table = "routing_escalationstep"
        verbose_name = _("escalation step")
        verbose_name_plural = _("escalation steps")
        ordering = ["queue", "after_seconds"]
        constraints = [
            models.UniqueConstraint(
                fields=["queue", "after_seconds"], name="escalation_step_unique"
            ),
        ]

    def __str__(self) -> str:
        return _("after %(s)s s") % {"s": self.after_seconds}
