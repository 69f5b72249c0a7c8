"""Reads for the citizen's side of a chat: what they see after a (re)connection, where they
are in the queue, and the transcript."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from django.utils import timezone

from agents.models import AgentProfile
from channels_inbound.hooks import chat_ended_form
from channels_inbound.voice.selectors import estimated_wait_seconds
from interactions.channels import Channel
from interactions.lifecycle import WAITING_STATUSES, Status
from interactions.models import Interaction, Message, MessageDirection
from routing.selectors import queue_position

from .models import ChatSession, ChatState, ChatWidget


@dataclass(frozen=True)
class WidgetInfo:
    """What the citizen's socket needs to know about its widget (loaded once per socket)."""

    id: int
    key: str
    endpoint_id: int
    origins: tuple[str, ...]
    transcripts_enabled: bool


def widget_for_key(key: str) -> ChatWidget | None:
    return (
        ChatWidget.objects.select_related("endpoint__queue")
        .filter(endpoint__channel=Channel.CHAT, endpoint__address=key, endpoint__active=True)
        .first()
    )


def widget_info(key: str) -> WidgetInfo | None:
    widget = widget_for_key(key)
    if widget is None:
        return None
    return WidgetInfo(
        id=widget.pk,
        key=widget.key,
        endpoint_id=widget.endpoint_id,
        origins=tuple(widget.origins()),
        transcripts_enabled=widget.transcripts_enabled,
    )


def display_state(state: str, interaction_status: str | None) -> str:
    """What the citizen sees: ``bot``, ``waiting``, ``chatting`` or ``ended``."""
    if state == ChatState.BOT:
        return "bot"
    if state == ChatState.ENDED or interaction_status is None:
        return "ended"
    if interaction_status in WAITING_STATUSES:
        return "waiting"
    if interaction_status == Status.ASSIGNED:
        return "chatting"
    return "ended"  # wrap-up, closed, abandoned


def agent_name(agent_id: int | None) -> str:
    """The agent's first name only (agents' full names are not shown to the public)."""
    if agent_id is None:
        return ""
    return (
        AgentProfile.objects.filter(pk=agent_id).values_list("user__first_name", flat=True).first()
        or ""
    )


def start_message_id(session: ChatSession) -> str:
    """The provider id of the hand-over summary (an agent-facing message the citizen never
    sees in their window)."""
    return f"{session.thread_ref}:start"


def message_entry(message: Message, *, author: str = "", client_id: str = "") -> dict[str, Any]:
    kind = "citizen" if message.direction == MessageDirection.INBOUND else "agent"
    entry: dict[str, Any] = {
        "id": f"m{message.pk}",
        "kind": kind,
        "text": message.text,
        "at": message.created_at.isoformat(),
    }
    if kind == "agent":
        entry["author"] = author
    if client_id:
        entry["client_id"] = client_id
    return entry


def entries(session: ChatSession) -> list[dict[str, Any]]:
    """Everything the citizen sees, in order: the bot's part, then the messages."""
    found: list[dict[str, Any]] = list(session.bot_log)
    if session.interaction_id is None:
        return found
    messages = (
        Message.objects.filter(
            interaction_id=session.interaction_id,
            direction__in=(MessageDirection.INBOUND, MessageDirection.OUTBOUND),
            created_at__gte=session.created_at,
        )
        .exclude(provider_id=start_message_id(session))
        .select_related("author")
        .order_by("created_at", "id")
    )
    mine = f"{session.thread_ref}:"
    for message in messages:
        author = message.author.first_name if message.author else ""
        # A citizen's message carries the widget's client id (its provider id after the
        # thread's), so a widget that re-sends a message it never saw acknowledged knows it is in.
        provider_id = message.provider_id or ""
        client_id = (
            provider_id.removeprefix(mine)
            if message.direction == MessageDirection.INBOUND and provider_id.startswith(mine)
            else ""
        )
        found.append(message_entry(message, author=author, client_id=client_id))
    return found


def queue_status(interaction: Interaction, *, now: datetime) -> dict[str, Any] | None:
    """Position (1 = next) and estimated wait in seconds (None: no basis for a figure)."""
    if interaction.status not in WAITING_STATUSES or interaction.queue_id is None:
        return None
    if interaction.queued_at is None:
        return {"position": None, "wait_seconds": None}
    return {
        "position": queue_position(interaction),
        "wait_seconds": estimated_wait_seconds(interaction, now=now),
    }


@dataclass(frozen=True)
class LiveStatus:
    state: str
    agent: str
    queue: dict[str, Any] | None


def live_status(session_id: UUID | str, *, now: datetime | None = None) -> LiveStatus | None:
    now = now or timezone.now()
    session = ChatSession.objects.select_related("interaction").filter(pk=session_id).first()
    if session is None:
        return None
    interaction = session.interaction
    state = display_state(session.state, interaction.status if interaction else None)
    agent = ""
    queue = None
    if interaction is not None and state == "chatting":
        agent = agent_name(interaction.assigned_agent_id)
    if interaction is not None and state == "waiting":
        queue = queue_status(interaction, now=now)
    return LiveStatus(state, agent, queue)


def snapshot(session: ChatSession, *, now: datetime | None = None) -> dict[str, Any]:
    """The whole conversation as the citizen's window shows it; events apply on top of it."""
    from django.conf import settings

    status = live_status(session.pk, now=now)
    assert status is not None
    ask = session.flow_session.get("ask") if status.state == "bot" else None
    return {
        "session": str(session.pk),
        "state": status.state,
        "name": session.display_name,
        "agent": status.agent,
        "queue": status.queue,
        "ask": ask,
        "entries": entries(session),
        "transcripts": session.widget.transcripts_enabled
        and session.transcripts_sent < settings.CHAT_TRANSCRIPTS_PER_SESSION,
        # e.g. the satisfaction survey still awaiting the citizen's rating (surveys)
        "survey": chat_ended_form(session.interaction_id) if status.state == "ended" else None,
    }


def transcript_entries(session: ChatSession) -> list[tuple[datetime, str, str, str]]:
    """(local time, kind, author, text) of every entry, for the e-mailed transcript."""
    return [
        (
            timezone.localtime(datetime.fromisoformat(entry["at"])),
            entry["kind"],
            entry.get("author", ""),
            entry["text"],
        )
        for entry in entries(session)
    ]
