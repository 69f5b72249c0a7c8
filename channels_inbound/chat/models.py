"""Web chat: the widgets embedded on partner sites, their topics, and citizens' chat sessions.

A :class:`ChatWidget` is the chat face of an :class:`~channels_inbound.models.Endpoint`
(channel ``chat``; its address is the widget key, its queue is where chats wait, and its
``EndpointFlow`` is the bot the citizen talks to first). A :class:`ChatSession` is one
conversation of one visitor: the pre-chat form, the bot's questions and answers, then the
interaction it was handed over as.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _

from interactions.channels import Channel
from organisations.models import OrganisationOwned

DEFAULT_PORTS = {"http": 80, "https": 443}


def normalize_origin(raw: str) -> str:
    """``scheme://host[:port]`` in lower case, without a default port or a trailing slash.

    A leading ``*.`` on the host allows every subdomain. Raises :class:`ValueError`.
    """
    text = raw.strip().rstrip("/").lower()
    parts = urlsplit(text)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"not an http(s) origin: {raw!r}")
    if parts.path or parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"an origin has no path, query or credentials: {raw!r}")
    host = parts.hostname
    wildcard = text.split("://", 1)[1].startswith("*.")
    if wildcard:
        host = "*." + host.removeprefix("*.")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"bad port in {raw!r}") from None
    if port is not None and port != DEFAULT_PORTS[parts.scheme]:
        return f"{parts.scheme}://{host}:{port}"
    return f"{parts.scheme}://{host}"


def origin_matches(origin: str, allowed: str) -> bool:
    """Does the browser's ``origin`` match one configured (already normalised) origin?"""
    try:
        origin = normalize_origin(origin)
    except ValueError:
        return False
    if "://*." not in allowed:
        return origin == allowed
    scheme, rest = allowed.split("://*.", 1)
    o_scheme, o_rest = origin.split("://", 1)
    return o_scheme == scheme and o_rest.endswith("." + rest)


def validate_origins(value: str) -> None:
    for line in value.splitlines():
        if line.strip():
            try:
                normalize_origin(line)
            except ValueError:
                raise ValidationError(
                    _("%(origin)s is not an origin such as https://www.example.fr"),
                    params={"origin": line.strip()},
                ) from None


def validate_skills(value: Any) -> None:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, int) and 1 <= v <= 5 for k, v in value.items()
    ):
        raise ValidationError(_('Skills are {"skill code": minimum level from 1 to 5}.'))


class ChatWidget(OrganisationOwned):
    organisation_from = ("endpoint",)

    endpoint = models.OneToOneField(
        "channels_inbound.Endpoint",
        verbose_name=_("endpoint"),
        on_delete=models.CASCADE,
        related_name="chat_widget",
        limit_choices_to={"channel": Channel.CHAT},
        help_text=_(
            "A web chat endpoint: its address is the widget key, its queue receives the chats, "
            "and the flow bound to it is the bot."
        ),
    )
    title = models.CharField(
        _("title"),
        max_length=100,
        blank=True,
        help_text=_("Shown at the top of the chat window (default: the endpoint's name)."),
    )
    allowed_origins = models.TextField(
        _("allowed origins"),
        blank=True,
        validators=[validate_origins],
        help_text=_(
            "The sites allowed to embed this widget, one per line, e.g. "
            "https://www.mairie-exemple.fr (https://*.example.fr allows every subdomain)."
        ),
    )
    transcripts_enabled = models.BooleanField(
        _("transcripts by e-mail"),
        default=True,
        help_text=_("The citizen may ask for the conversation by e-mail."),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("chat widget")
        verbose_name_plural = _("chat widgets")
        ordering = ["endpoint__name"]

    def __str__(self) -> str:
        return self.display_title

    @property
    def key(self) -> str:
        return self.endpoint.address

    @property
    def display_title(self) -> str:
        return self.title or self.endpoint.name

    def origins(self) -> list[str]:
        found = []
        for line in self.allowed_origins.splitlines():
            try:
                found.append(normalize_origin(line))
            except ValueError:
                continue
        return found

    def allows_origin(self, origin: str) -> bool:
        return any(origin_matches(origin, allowed) for allowed in self.origins())

    def clean(self) -> None:
        if self.endpoint_id and self.endpoint.channel != Channel.CHAT:
            raise ValidationError({"endpoint": _("Choose a web chat endpoint.")})


class ChatTopic(models.Model):
    """A choice of the pre-chat form ("what is it about?") and the skills it needs."""

    widget = models.ForeignKey(
        ChatWidget, verbose_name=_("widget"), on_delete=models.CASCADE, related_name="topics"
    )
    position = models.PositiveSmallIntegerField(_("position"), default=0)
    label = models.CharField(_("label (French)"), max_length=100)
    label_en = models.CharField(_("label (English)"), max_length=100, blank=True)
    skills = models.JSONField(
        _("required skills"),
        default=dict,
        blank=True,
        validators=[validate_skills],
        help_text=_('{"skill code": minimum level 1-5}, e.g. {"mairie-etat-civil": 2}'),
    )

    class Meta:
        verbose_name = _("chat topic")
        verbose_name_plural = _("chat topics")
        ordering = ["widget", "position", "id"]

    def __str__(self) -> str:
        return self.label

    def label_in(self, language: str) -> str:
        if language == "en" and self.label_en:
            return self.label_en
        return self.label


class ChatState(models.TextChoices):
    BOT = "bot", _("with the bot")
    HANDED_OVER = "handed_over", _("handed over")
    ENDED = "ended", _("ended")


class ChatSession(models.Model):
    """One conversation of one visitor, from the pre-chat form to its end.

    The visitor id is the citizen's chat identity (``ContactIdentity`` kind ``chat``): a
    visitor who starts a new conversation keeps it, so the agent sees the earlier ones.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    widget = models.ForeignKey(
        ChatWidget, verbose_name=_("widget"), on_delete=models.CASCADE, related_name="sessions"
    )
    visitor_id = models.CharField(_("visitor"), max_length=64, db_index=True)
    state = models.CharField(
        _("state"), max_length=12, choices=ChatState.choices, default=ChatState.BOT
    )
    display_name = models.CharField(_("name given"), max_length=100, blank=True)
    topic = models.ForeignKey(
        ChatTopic, verbose_name=_("topic"), null=True, blank=True, on_delete=models.SET_NULL
    )
    topic_label = models.CharField(_("topic"), max_length=100, blank=True)
    language = models.CharField(_("language"), max_length=8, default="fr")
    flow_version = models.ForeignKey(
        "flows.FlowVersion",
        verbose_name=_("flow version"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # flows.engine.Session.to_dict(), plus "ask": the question waiting for an answer.
    flow_session = models.JSONField(_("bot state"), default=dict, blank=True)
    # What the bot said and what the citizen answered before the hand-over:
    # [{"id": "b1", "kind": "bot" | "citizen", "text": ..., "at": iso}]
    bot_log = models.JSONField(_("bot conversation"), default=list, blank=True)
    interaction = models.ForeignKey(
        "interactions.Interaction",
        verbose_name=_("interaction"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="chat_sessions",
    )
    transcripts_sent = models.PositiveSmallIntegerField(_("transcripts sent"), default=0)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    last_seen_at = models.DateTimeField(_("last seen at"), null=True, blank=True)
    ended_at = models.DateTimeField(_("ended at"), null=True, blank=True)

    class Meta:
        verbose_name = _("chat session")
        verbose_name_plural = _("chat sessions")
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["state", "last_seen_at"], name="chat_session_sweep_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.widget} – {self.display_name or self.visitor_id[:8]}"

    @property
    def thread_ref(self) -> str:
        """Interaction.external_ref of this conversation."""
        return f"chat:{self.pk}"
