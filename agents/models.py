"""Agent profiles (one per user) and skill levels (teams and skills are in ``configuration``)."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from configuration.models import LEVEL_VALIDATORS, Skill, Team
from contacts.identity import InvalidIdentity, is_valid_phone, normalize_phone
from interactions.channels import Channel
from organisations.models import Membership, OrganisationMismatch, OrganisationOwned

CHANNEL_CAPACITY_FIELDS = {channel.value: f"capacity_{channel}" for channel in Channel}


def validate_telework_phone(value: str) -> None:
    try:
        e164 = normalize_phone(value, settings.PHONE_DEFAULT_REGION)
    except InvalidIdentity as exc:
        raise ValidationError(_("Enter a valid phone number, e.g. +33612345678.")) from exc
    if e164 is None or not is_valid_phone(e164):
        raise ValidationError(_("Enter a valid phone number, e.g. +33612345678."))


class AgentProfile(OrganisationOwned):
    organisation_from = ("team",)

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        on_delete=models.CASCADE,
        related_name="agent_profile",
    )
    team = models.ForeignKey(
        Team,
        verbose_name=_("team"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="agents",
    )
    skills: models.ManyToManyField[Skill, AgentSkill] = models.ManyToManyField(
        "configuration.Skill", through="AgentSkill", related_name="agents", verbose_name=_("skills")
    )
    languages = models.JSONField(
        _("languages"), default=list, blank=True, help_text=_('Language codes, e.g. ["fr", "en"].')
    )
    capacity_voice = models.PositiveSmallIntegerField(
        _("phone capacity"), default=1, validators=[MaxValueValidator(1)]
    )
    capacity_chat = models.PositiveSmallIntegerField(
        _("chat capacity"), default=3, validators=[MaxValueValidator(10)]
    )
    capacity_email = models.PositiveSmallIntegerField(
        _("e-mail capacity"), default=5, validators=[MaxValueValidator(50)]
    )
    capacity_sms = models.PositiveSmallIntegerField(
        _("SMS capacity"), default=5, validators=[MaxValueValidator(50)]
    )
    voice_exclusive = models.BooleanField(
        _("calls are exclusive"),
        default=True,
        help_text=_("While on a call the agent is offered nothing else."),
    )
    remote = models.BooleanField(
        _("teleworker"), default=False, help_text=_("Works from home: two-factor login required.")
    )
    telework_phone = models.CharField(
        _("telework phone number"),
        max_length=20,
        blank=True,
        validators=[validate_telework_phone],
        help_text=_("Calls are bridged to this number (E.164, e.g. +33612345678)."),
    )

    class Meta:
        verbose_name = _("agent")
        verbose_name_plural = _("agents")
        ordering = ["user__username"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(capacity_voice__lte=1), name="voice_cap_le_1"
            ),
        ]

    def __str__(self) -> str:
        return self.user.get_full_name() or self.user.get_username()

    def save(self, *args: object, **kwargs: object) -> None:
        if self.telework_phone:
            self.telework_phone = (
                normalize_phone(self.telework_phone, settings.PHONE_DEFAULT_REGION) or ""
            )
        creating = self._state.adding
        if creating:
            # An agent works for one organisation: their membership's, if they have one.
            member_of = Membership.objects.filter(user_id=self.user_id).values_list(
                "organisation_id", flat=True
            )
            if (
                self.organisation_id is not None
                and member_of
                and (member_of[0] != self.organisation_id)
            ):
                raise OrganisationMismatch(
                    f"user #{self.user_id} works for organisation #{member_of[0]}"
                )
        super().save(*args, **kwargs)
        if creating:
            from .presence import ensure_presence  # presence imports this module

            ensure_presence(self)

    def default_organisation_id(self) -> int:
        membership = Membership.objects.filter(user_id=self.user_id).first()
        if membership is not None and membership.organisation_id is not None:
            return membership.organisation_id
        return super().default_organisation_id()

    def capacity(self) -> dict[str, int]:
        return {channel: getattr(self, field) for channel, field in CHANNEL_CAPACITY_FIELDS.items()}

    def skill_levels(self) -> dict[str, int]:
        return {s.skill.code: s.level for s in self.agent_skills.select_related("skill")}


class AgentSkill(models.Model):
    agent = models.ForeignKey(AgentProfile, on_delete=models.CASCADE, related_name="agent_skills")
    skill = models.ForeignKey("configuration.Skill", on_delete=models.CASCADE, related_name="+")
    level = models.PositiveSmallIntegerField(_("level"), validators=LEVEL_VALIDATORS)

    class Meta:
        verbose_name = _("agent skill")
        verbose_name_plural = _("agent skills")
        constraints = [
            models.UniqueConstraint(fields=["agent", "skill"], name="agent_skill_unique"),
            models.CheckConstraint(
                condition=models.Q(level__gte=1, level__lte=5), name="agent_skill_level_1_5"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.skill}: {self.level}"


class AgentState(models.TextChoices):
    OFFLINE = "offline", _("offline")
    AVAILABLE = "available", _("available")
    WRAP_UP = "wrap_up", _("wrap-up")
    PAUSED = "paused", _("paused")


class PauseReason(models.TextChoices):
    BREAK = "break", _("break")
    LUNCH = "lunch", _("lunch")
    MEETING = "meeting", _("meeting")
    TRAINING = "training", _("training")
    BACK_OFFICE = "back_office", _("back-office work")
    MISSED = "missed", _("missed an offer")
    SUPERVISOR = "supervisor", _("set by a supervisor")


# The pause reasons an agent picks for themselves; "missed" (an offer left unanswered) and
# "supervisor" are set by the system or a supervisor only (the console shows them, disabled).
AGENT_PAUSE_REASONS = (
    PauseReason.BREAK,
    PauseReason.LUNCH,
    PauseReason.MEETING,
    PauseReason.TRAINING,
    PauseReason.BACK_OFFICE,
)


class OfflineReason(models.TextChoices):
    """Why the system, not the agent, took an agent offline (kept in ``pause_reason``)."""

    CONNECTION_LOST = "connection_lost", _("connection lost")


# Every channel, in the order the console lists them.
ALL_CHANNELS = [Channel.VOICE.value, Channel.CHAT.value, Channel.EMAIL.value, Channel.SMS.value]


def default_channels() -> list[str]:
    return list(ALL_CHANNELS)


class AgentPresence(models.Model):
    """Where an agent is right now: state, the channels they take, their console's heartbeat.

    A hot row (heartbeats), kept apart from the profile. Routing locks it while it claims
    the agent's capacity, so two router workers never over-fill one agent.
    """

    agent = models.OneToOneField(
        AgentProfile, primary_key=True, on_delete=models.CASCADE, related_name="presence"
    )
    state = models.CharField(
        _("state"), max_length=10, choices=AgentState.choices, default=AgentState.OFFLINE
    )
    pause_reason = models.CharField(
        _("pause reason"),
        max_length=16,
        choices=[*PauseReason.choices, *OfflineReason.choices],
        blank=True,
    )
    state_since = models.DateTimeField(_("in this state since"))
    wrap_up_until = models.DateTimeField(_("wrap-up ends at"), null=True, blank=True)
    channels_enabled = models.JSONField(_("channels taken"), default=default_channels, blank=True)
    last_heartbeat_at = models.DateTimeField(_("last console heartbeat"), null=True, blank=True)
    idle_since = models.DateTimeField(
        _("idle since"), help_text=_("Last time the agent got or finished work.")
    )

    class Meta:
        verbose_name = _("agent presence")
        verbose_name_plural = _("agent presences")
        indexes = [models.Index(fields=["state", "last_heartbeat_at"], name="presence_state_idx")]

    def __str__(self) -> str:
        return f"{self.agent}: {self.get_state_display()}"


class AgentStateChange(models.Model):
    """One change of an agent's state or reason, written by :mod:`agents.presence` in the
    transaction of the change (every path: the console, the API, supervisors, logouts, the
    "missed" pause, wrap-up start and end, a vanished console). The what-if replay reads who
    was logged in when from it."""

    agent = models.ForeignKey(AgentProfile, on_delete=models.CASCADE, related_name="state_changes")
    state = models.CharField(_("state"), max_length=10)
    reason = models.CharField(_("reason"), max_length=16, blank=True)
    at = models.DateTimeField(_("at"))

    class Meta:
        verbose_name = _("agent state change")
        verbose_name_plural = _("agent state changes")
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["at"], name="agent_state_change_at_idx")]

    def __str__(self) -> str:
        return f"{self.agent_id} {self.state} @ {self.at}"
