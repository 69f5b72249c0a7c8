"""Calls: one row per provider call, where it is in its SVI flow, and what happened to it."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class CallOutcome(models.TextChoices):
    IN_FLOW = "in_flow", _("in the voice menu")
    QUEUED = "queued", _("waiting in a queue")
    BRIDGING = "bridging", _("ringing the agent")
    ANSWERED = "answered", _("answered by an agent")
    COMPLETED = "completed", _("completed")
    ABANDONED = "abandoned", _("abandoned while waiting")
    ENDED_IN_FLOW = "ended_in_flow", _("ended in the voice menu")
    VOICEMAIL = "voicemail", _("voicemail")
    CALLBACK = "callback", _("callback requested")
    TRANSFERRED = "transferred", _("transferred to an external number")
    FAILED = "failed", _("failed")


class Call(models.Model):
    provider = models.CharField(_("provider"), max_length=16)
    call_sid = models.CharField(_("provider id"), max_length=64, unique=True)
    caller = models.CharField(_("caller id"), max_length=64, blank=True)  # as received
    caller_e164 = models.CharField(_("caller number"), max_length=20, blank=True)
    called = models.CharField(_("number called"), max_length=64)
    endpoint = models.ForeignKey(
        "channels_inbound.Endpoint",
        verbose_name=_("endpoint"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    flow_version = models.ForeignKey(
        "flows.FlowVersion",
        verbose_name=_("flow version"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    # The flow engine's session (flows.engine.Session.to_dict()) plus what a pending
    # voicemail needs once recorded.
    session = models.JSONField(_("flow state"), default=dict, blank=True)
    interaction = models.OneToOneField(
        "interactions.Interaction",
        verbose_name=_("interaction"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="call",
    )
    status = models.CharField(_("provider status"), max_length=20, blank=True)
    outcome = models.CharField(
        _("outcome"), max_length=16, choices=CallOutcome.choices, default=CallOutcome.IN_FLOW
    )
    agent = models.ForeignKey(
        "agents.AgentProfile",
        verbose_name=_("agent"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    agent_number = models.CharField(_("agent's number"), max_length=20, blank=True)
    agent_call_sid = models.CharField(_("agent leg id"), max_length=64, blank=True)
    started_at = models.DateTimeField(_("started at"), auto_now_add=True)
    bridge_requested_at = models.DateTimeField(_("agent rung at"), null=True, blank=True)
    agent_answered_at = models.DateTimeField(_("agent answered at"), null=True, blank=True)
    ended_at = models.DateTimeField(_("ended at"), null=True, blank=True)
    duration_seconds = models.PositiveIntegerField(_("duration (s)"), null=True, blank=True)
    wait_seconds = models.PositiveIntegerField(_("wait (s)"), null=True, blank=True)
    talk_seconds = models.PositiveIntegerField(_("talk time (s)"), null=True, blank=True)
    recording_url = models.URLField(_("recording"), max_length=2000, blank=True)

    class Meta:
        verbose_name = _("call")
        verbose_name_plural = _("calls")
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.call_sid} ({self.get_outcome_display()})"


class CallEvent(models.Model):
    """Provider callbacks and our own steps, once each: ``kind`` is e.g. "status:completed",
    "agent:in-progress", "dial:no-answer", "bridge"."""

    call = models.ForeignKey(Call, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(_("event"), max_length=40)
    data = models.JSONField(_("data"), default=dict, blank=True)
    at = models.DateTimeField(_("at"), auto_now_add=True)

    class Meta:
        verbose_name = _("call event")
        verbose_name_plural = _("call events")
        ordering = ["at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["call", "kind"], name="call_event_once"),
        ]

    def __str__(self) -> str:
        return f"{self.call_id}: {self.kind}"
