"""Routing configuration: skills, queues with their requirements and escalation steps."""

from __future__ import annotations

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
        verbose_name = _("skill")
        verbose_name_plural = _("skills")
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["organisation", "code"], name="skill_code_per_org"),
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
        "agents.Team",
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


class OfferStatus(models.TextChoices):
    PENDING = "pending", _("waiting for the agent")
    ACCEPTED = "accepted", _("accepted")
    DECLINED = "declined", _("declined")
    EXPIRED = "expired", _("expired (missed)")
    CANCELLED = "cancelled", _("cancelled")
    # Accepted, but the call could not be connected to the agent's phone (busy, no answer):
    # excludes the agent like a decline.
    FAILED = "failed", _("failed")
    # Accepted, but the telephony provider failed the bridge after its retries: the agent is
    # passed over for ROUTING_PROVIDER_ERROR_EXCLUSION_SECONDS only (not their fault).
    PROVIDER_ERROR = "provider", _("telephony provider error")


class Offer(models.Model):
    """A reservation: one interaction offered to one agent until ``expires_at``.

    At most one pending offer per interaction (a database constraint). An agent who declined
    or let an offer expire, or whose phone could not be reached for it, is never offered that
    interaction again.
    """

    interaction = models.ForeignKey(
        "interactions.Interaction", on_delete=models.CASCADE, related_name="offers"
    )
    agent = models.ForeignKey(
        "agents.AgentProfile", on_delete=models.CASCADE, related_name="offers"
    )
    channel = models.CharField(_("channel"), max_length=8)
    status = models.CharField(
        _("status"), max_length=10, choices=OfferStatus.choices, default=OfferStatus.PENDING
    )
    created_at = models.DateTimeField(_("offered at"))
    expires_at = models.DateTimeField(_("expires at"))
    responded_at = models.DateTimeField(_("answered at"), null=True, blank=True)

    class Meta:
        verbose_name = _("offer")
        verbose_name_plural = _("offers")
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["interaction"],
                condition=models.Q(status="pending"),
                name="one_pending_offer_per_interaction",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "expires_at"], name="offer_pending_idx"),
            models.Index(fields=["agent", "status"], name="offer_agent_idx"),
        ]

    def __str__(self) -> str:
        return f"offer #{self.pk}: interaction #{self.interaction_id} → agent #{self.agent_id}"


class RoutingDecision(models.Model):
    """Why an interaction went to an agent (or moved queue): candidates, scores, rule."""

    interaction = models.ForeignKey(
        "interactions.Interaction", on_delete=models.CASCADE, related_name="routing_decisions"
    )
    offer = models.OneToOneField(
        Offer, null=True, blank=True, on_delete=models.SET_NULL, related_name="decision"
    )
    agent = models.ForeignKey(
        "agents.AgentProfile",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    action = models.CharField(_("action"), max_length=10)
    rule = models.CharField(_("deciding rule"), max_length=32)
    at = models.DateTimeField(_("at"), db_index=True)
    details = models.JSONField(_("details"), default=dict)

    class Meta:
        verbose_name = _("routing decision")
        verbose_name_plural = _("routing decisions")
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"#{self.interaction_id}: {self.action} ({self.rule})"
