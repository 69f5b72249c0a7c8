"""The catalogue of real-time events: every event name and the shape of its payload.

One ``TypedDict`` per payload and one builder per event, returning ``(name, payload)`` for
:func:`kernel.events.publish` (``publish(*offer_accepted(...), groups=...)``) or, with
the groups, a tuple for :func:`kernel.events.publish_many`. :data:`EVENTS` lists every
event name; ``tests/unit/test_event_catalogue.py`` checks that it matches the table in
docs/architecture.md ("Events") and that no code publishes a name missing from it.

Pure: no Django, no I/O, so any app may import it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict

EventMessage = tuple[str, dict[str, Any]]  # (event name, payload)


def _message(name: str, payload: Mapping[str, Any]) -> EventMessage:
    return name, dict(payload)


# --- Interactions -------------------------------------------------------------------------------
class InteractionCreated(TypedDict):
    interaction_id: int
    channel: str


# "from" is a keyword: the functional form.
InteractionStatus = TypedDict(
    "InteractionStatus", {"interaction_id": int, "from": str, "to": str, "reason": str}
)


class InteractionRequeued(TypedDict):
    interaction_id: int
    reason: str


def interaction_created(*, interaction_id: int, channel: str) -> EventMessage:
    payload: InteractionCreated = {"interaction_id": interaction_id, "channel": channel}
    return _message("interaction.created", payload)


def interaction_status(
    *, interaction_id: int, from_status: str, to_status: str, reason: str
) -> EventMessage:
    payload: InteractionStatus = {
        "interaction_id": interaction_id,
        "from": from_status,
        "to": to_status,
        "reason": reason,
    }
    return _message("interaction.status", payload)


def interaction_requeued(*, interaction_id: int, reason: str) -> EventMessage:
    payload: InteractionRequeued = {"interaction_id": interaction_id, "reason": reason}
    return _message("interaction.requeued", payload)


# --- Offers -------------------------------------------------------------------------------------
class _OfferMade(TypedDict):
    offer_id: int
    interaction_id: int
    channel: str
    expires_at: str  # ISO 8601


class OfferMade(_OfferMade, total=False):
    """``offer.created`` and ``interaction.assigned``; ``transferred_by`` on a transfer."""

    transferred_by: int


class OfferOutcome(TypedDict):
    """``offer.accepted``, ``offer.declined``, ``offer.expired``, ``offer.cancelled``."""

    offer_id: int
    interaction_id: int


OFFER_OUTCOMES = ("accepted", "declined", "expired", "cancelled")


def offer_made(
    *,
    offer_id: int,
    interaction_id: int,
    channel: str,
    expires_at: str,
    assigned: bool = False,
    transferred_by: int | None = None,
) -> EventMessage:
    """``offer.created``, or ``interaction.assigned`` when the channel auto-accepts."""
    payload: OfferMade = {
        "offer_id": offer_id,
        "interaction_id": interaction_id,
        "channel": channel,
        "expires_at": expires_at,
    }
    if transferred_by is not None:
        payload["transferred_by"] = transferred_by
    return _message("interaction.assigned" if assigned else "offer.created", payload)


def offer_outcome(*, outcome: str, offer_id: int, interaction_id: int) -> EventMessage:
    """``offer.<outcome>``, one of :data:`OFFER_OUTCOMES`."""
    if outcome not in OFFER_OUTCOMES:
        raise ValueError(f"unknown offer outcome {outcome!r}")
    payload: OfferOutcome = {"offer_id": offer_id, "interaction_id": interaction_id}
    return _message(f"offer.{outcome}", payload)


# --- Calls --------------------------------------------------------------------------------------
class AgentCall(TypedDict):
    """``agent.no_phone_number`` and ``call.answered``."""

    agent_id: int
    interaction_id: int


class CallBridgeFailed(TypedDict):
    agent_id: int
    interaction_id: int
    reason: str
    paused: bool
    message: str


def agent_no_phone_number(*, agent_id: int, interaction_id: int) -> EventMessage:
    payload: AgentCall = {"agent_id": agent_id, "interaction_id": interaction_id}
    return _message("agent.no_phone_number", payload)


def call_answered(*, agent_id: int, interaction_id: int) -> EventMessage:
    payload: AgentCall = {"agent_id": agent_id, "interaction_id": interaction_id}
    return _message("call.answered", payload)


def call_bridge_failed(
    *, agent_id: int, interaction_id: int, reason: str, paused: bool, message: str
) -> EventMessage:
    payload: CallBridgeFailed = {
        "agent_id": agent_id,
        "interaction_id": interaction_id,
        "reason": reason,
        "paused": paused,
        "message": message,
    }
    return _message("call.bridge_failed", payload)


# --- Routing and agents -------------------------------------------------------------------------
class _RoutingClaimed(TypedDict):
    offered: int
    assigned: int


class RoutingClaimed(_RoutingClaimed, total=False):
    """Per organisation (its wallboards); the router's own names none and reaches no wallboard."""

    organisation_id: int


class AgentStatePayload(TypedDict):
    agent_id: int
    state: str
    reason: str
    since: str  # ISO 8601


class AgentChannels(TypedDict):
    agent_id: int
    channels: list[str]


class AgentSkills(TypedDict):
    agent_ids: list[int]
    batch: str


def routing_claimed(
    *, offered: int, assigned: int, organisation_id: int | None = None
) -> EventMessage:
    payload: RoutingClaimed = {"offered": offered, "assigned": assigned}
    if organisation_id is not None:
        payload["organisation_id"] = organisation_id
    return _message("routing.claimed", payload)


def agent_state(*, agent_id: int, state: str, reason: str, since: str) -> EventMessage:
    """Only through ``agents.presence.agent_state_event`` (which adds the groups)."""
    payload: AgentStatePayload = {
        "agent_id": agent_id,
        "state": state,
        "reason": reason,
        "since": since,
    }
    return _message("agent.state", payload)


def agent_channels(*, agent_id: int, channels: list[str]) -> EventMessage:
    payload: AgentChannels = {"agent_id": agent_id, "channels": channels}
    return _message("agent.channels", payload)


def agent_skills(*, agent_ids: list[int], batch: str) -> EventMessage:
    payload: AgentSkills = {"agent_ids": agent_ids, "batch": batch}
    return _message("agent.skills", payload)


# --- Messages -----------------------------------------------------------------------------------
class MessageCreated(TypedDict):
    interaction_id: int
    message_id: int
    direction: str


class MessageMedia(TypedDict):
    message_id: int
    interaction_id: int
    media: list[dict[str, Any]]


class MessageStatus(TypedDict):
    # None for an SMS whose message or interaction was since deleted (``SET_NULL``)
    message_id: int | None
    interaction_id: int | None
    channel: str
    status: str
    attempts: int
    reason: str


def message_created(*, interaction_id: int, message_id: int, direction: str) -> EventMessage:
    payload: MessageCreated = {
        "interaction_id": interaction_id,
        "message_id": message_id,
        "direction": direction,
    }
    return _message("message.created", payload)


def message_media(
    *, message_id: int, interaction_id: int, media: list[dict[str, Any]]
) -> EventMessage:
    payload: MessageMedia = {
        "message_id": message_id,
        "interaction_id": interaction_id,
        "media": media,
    }
    return _message("message.media", payload)


def message_status(
    *,
    message_id: int | None,
    interaction_id: int | None,
    channel: str,
    status: str,
    attempts: int,
    reason: str,
) -> EventMessage:
    payload: MessageStatus = {
        "message_id": message_id,
        "interaction_id": interaction_id,
        "channel": channel,
        "status": status,
        "attempts": attempts,
        "reason": reason,
    }
    return _message("message.status", payload)


# --- Chat: to the agent, and to the citizen's widget (``chat.session.<id>``) ----------------------
class ChatTyping(TypedDict, total=False):
    """To the agent: ``interaction_id``, ``typing``; to the widget: ``typing``, ``name``."""

    interaction_id: int
    typing: bool
    name: str


class ChatEnded(TypedDict):
    interaction_id: int
    reason: str


class ChatEntry(TypedDict):
    entry: dict[str, Any]


class ChatAsk(TypedDict):
    ask: dict[str, Any]


class ChatState(TypedDict):
    state: str
    agent: str


class ChatFollow(TypedDict):
    path: str
    text: str


class ChatSurvey(TypedDict):
    survey: dict[str, Any]


def chat_typing_to_agent(*, interaction_id: int, typing: bool) -> EventMessage:
    payload: ChatTyping = {"interaction_id": interaction_id, "typing": typing}
    return _message("chat.typing", payload)


def chat_typing_to_citizen(*, typing: bool, name: str) -> EventMessage:
    payload: ChatTyping = {"typing": typing, "name": name}
    return _message("chat.typing", payload)


def chat_ended(*, interaction_id: int, reason: str) -> EventMessage:
    payload: ChatEnded = {"interaction_id": interaction_id, "reason": reason}
    return _message("chat.ended", payload)


def chat_entry(*, entry: dict[str, Any]) -> EventMessage:
    payload: ChatEntry = {"entry": entry}
    return _message("chat.entry", payload)


def chat_ask(*, ask: dict[str, Any]) -> EventMessage:
    payload: ChatAsk = {"ask": ask}
    return _message("chat.ask", payload)


def chat_state(*, state: str, agent: str) -> EventMessage:
    payload: ChatState = {"state": state, "agent": agent}
    return _message("chat.state", payload)


def chat_follow(*, path: str, text: str) -> EventMessage:
    payload: ChatFollow = {"path": path, "text": text}
    return _message("chat.follow", payload)


def chat_survey(*, survey: dict[str, Any]) -> EventMessage:
    payload: ChatSurvey = {"survey": survey}
    return _message("chat.survey", payload)


# Every event name -> the shape of its payload.
EVENTS: dict[str, type] = {
    "interaction.created": InteractionCreated,
    "interaction.status": InteractionStatus,
    "interaction.requeued": InteractionRequeued,
    "interaction.assigned": OfferMade,
    "offer.created": OfferMade,
    **{f"offer.{outcome}": OfferOutcome for outcome in OFFER_OUTCOMES},
    "agent.no_phone_number": AgentCall,
    "call.bridge_failed": CallBridgeFailed,
    "call.answered": AgentCall,
    "routing.claimed": RoutingClaimed,
    "agent.state": AgentStatePayload,
    "agent.channels": AgentChannels,
    "agent.skills": AgentSkills,
    "message.created": MessageCreated,
    "message.media": MessageMedia,
    "message.status": MessageStatus,
    "chat.typing": ChatTyping,
    "chat.ended": ChatEnded,
    "chat.entry": ChatEntry,
    "chat.ask": ChatAsk,
    "chat.state": ChatState,
    "chat.follow": ChatFollow,
    "chat.survey": ChatSurvey,
}
