"""The console's state: a snapshot from the database, and how one event changes it.

A console loads :func:`build_snapshot` (with the id of the last event it reflects), then
applies events with :func:`apply_event`. ``static/console/state.js`` is the same function in
the browser; ``tests/integration/console/test_state.py`` checks that old state + events ==
fresh state for every event the console receives (the Zulip model).

Rules, identical in both:

- ``agent.state`` / ``agent.channels`` set the agent's fields;
- an event carrying ``interaction`` (a summary as of that event) sets that interaction: it is
  in ``interactions`` while assigned to this agent (in progress or wrap-up), and any offer of
  it stays only while it is offered to this agent; ``last_message_id`` only grows;
- ``offer.created`` adds the offer; ``offer.accepted|declined|expired|cancelled`` remove it;
- ``message.created`` raises the interaction's ``last_message_id``.
"""

from __future__ import annotations

import copy
from typing import Any

from agents.models import AgentPresence, AgentProfile
from interactions.lifecycle import Status
from interactions.models import Interaction
from routing.models import Offer, OfferStatus

from .outbox import interaction_summaries, last_event_id

HANDLED_STATUSES = (Status.ASSIGNED, Status.WRAP_UP)
OFFER_END_EVENTS = frozenset(
    {"offer.accepted", "offer.declined", "offer.expired", "offer.cancelled"}
)

State = dict[str, Any]


def build_snapshot(agent: AgentProfile) -> State:
    """The agent's console state now. The last event id is read first: every event after it
    is replayed onto this snapshot, and applying an event already reflected changes nothing."""
    last_id = last_event_id(agent.pk)
    presence = AgentPresence.objects.get(agent=agent)
    handled = list(
        Interaction.objects.filter(assigned_agent=agent, status__in=HANDLED_STATUSES)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    offers = list(
        Offer.objects.filter(
            agent=agent,
            status=OfferStatus.PENDING,
            interaction__status=Status.OFFERED,
            interaction__assigned_agent=agent,
        )
        .order_by("pk")
        .values("pk", "interaction_id", "channel", "expires_at")
    )
    summaries = interaction_summaries([*handled, *(o["interaction_id"] for o in offers)])
    return {
        "last_event_id": last_id,
        "agent": {
            "id": agent.pk,
            "state": presence.state,
            "pause_reason": presence.pause_reason,
            "state_since": presence.state_since.isoformat(),
            "channels": list(presence.channels_enabled or []),
        },
        "offers": {
            str(o["pk"]): {
                "offer_id": o["pk"],
                "interaction_id": o["interaction_id"],
                "channel": o["channel"],
                "expires_at": o["expires_at"].isoformat(),
                "interaction": summaries[o["interaction_id"]],
            }
            for o in offers
            if o["interaction_id"] in summaries
        },
        "interactions": {str(pk): summaries[pk] for pk in handled if pk in summaries},
    }


def _apply_summary(state: State, summary: dict[str, Any]) -> None:
    me = state["agent"]["id"]
    key = str(summary["id"])
    known = state["interactions"].get(key)
    if known is not None:
        summary = {
            **summary,
            "last_message_id": max(known["last_message_id"], summary["last_message_id"]),
        }
    if summary["agent_id"] == me and summary["status"] in HANDLED_STATUSES:
        state["interactions"][key] = summary
    else:
        state["interactions"].pop(key, None)
    offered_to_me = summary["agent_id"] == me and summary["status"] == Status.OFFERED
    for offer_key, offer in list(state["offers"].items()):
        if offer["interaction_id"] == summary["id"]:
            if offered_to_me:
                offer["interaction"] = summary
            else:
                del state["offers"][offer_key]


def apply_event(state: State, message: dict[str, Any]) -> State:
    """Return ``state`` with one event applied (the same rules as state.js)."""
    state = copy.deepcopy(state)
    event, payload = message["event"], message.get("payload") or {}
    agent = state["agent"]
    if event == "agent.state":
        if agent["state"] != payload["state"] or agent["pause_reason"] != payload["reason"]:
            agent["state_since"] = payload.get("since") or message.get("at")
        agent["state"] = payload["state"]
        agent["pause_reason"] = payload["reason"]
    elif event == "agent.channels":
        agent["channels"] = list(payload["channels"])
    elif event == "message.created":
        interaction = state["interactions"].get(str(payload["interaction_id"]))
        if interaction is not None:
            interaction["last_message_id"] = max(
                interaction["last_message_id"], payload["message_id"]
            )
    if isinstance(payload.get("interaction"), dict):
        _apply_summary(state, payload["interaction"])
    if event == "offer.created":
        summary = payload.get("interaction") or {}
        if summary.get("status") == Status.OFFERED and summary.get("agent_id") == agent["id"]:
            state["offers"][str(payload["offer_id"])] = {
                "offer_id": payload["offer_id"],
                "interaction_id": payload["interaction_id"],
                "channel": payload["channel"],
                "expires_at": payload["expires_at"],
                "interaction": summary,
            }
    elif event in OFFER_END_EVENTS:
        state["offers"].pop(str(payload["offer_id"]), None)
    if isinstance(message.get("id"), int):
        state["last_event_id"] = max(state["last_event_id"], message["id"])
    return state
