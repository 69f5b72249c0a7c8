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
- ``message.created`` raises the interaction's ``last_message_id``;
- the newest wins: an event can arrive late (missed live, then pushed by the server after newer
  ones of the same agent were applied), so ``versions`` keeps the id of the event that last set
  the agent's state, its channels and each interaction, and the offers already ended; an older
  event never overwrites them nor brings an ended offer back. Everything a snapshot shows is as
  of its ``last_event_id`` (the default version).
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


# How many ended offers and interaction versions a console remembers (the oldest go first).
VERSIONS_KEPT = 500


def _versions(state: State) -> dict[str, Any]:
    versions = state.get("versions")
    if versions is None:  # a snapshot: everything in it is as of its last event
        base = state["last_event_id"]
        versions = {"agent": base, "channels": base, "base": base, "interactions": {}, "ended": []}
        state["versions"] = versions
    return versions


def _newer(event_id: Any, version: int) -> bool:
    return not isinstance(event_id, int) or event_id > version


def _forget_oldest(versions: dict[str, Any]) -> None:
    known = versions["interactions"]
    if len(known) > VERSIONS_KEPT:
        for key in sorted(known, key=int)[: len(known) - VERSIONS_KEPT]:
            del known[key]
    if len(versions["ended"]) > VERSIONS_KEPT:
        del versions["ended"][: len(versions["ended"]) - VERSIONS_KEPT]


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
    event_id = message.get("id")
    agent = state["agent"]
    versions = _versions(state)
    if event == "agent.state" and _newer(event_id, versions["agent"]):
        if payload.get("since"):  # the presence's own clock: right even after a missed change
            agent["state_since"] = payload["since"]
        elif agent["state"] != payload["state"] or agent["pause_reason"] != payload["reason"]:
            agent["state_since"] = message.get("at")
        agent["state"] = payload["state"]
        agent["pause_reason"] = payload["reason"]
        versions["agent"] = event_id if isinstance(event_id, int) else versions["agent"]
    elif event == "agent.channels" and _newer(event_id, versions["channels"]):
        agent["channels"] = list(payload["channels"])
        versions["channels"] = event_id if isinstance(event_id, int) else versions["channels"]
    elif event == "message.created":
        interaction = state["interactions"].get(str(payload["interaction_id"]))
        if interaction is not None:
            interaction["last_message_id"] = max(
                interaction["last_message_id"], payload["message_id"]
            )
    summary = payload.get("interaction")
    # [id of the event that last set it, offered to this agent then]
    known = [versions["base"], False]
    if isinstance(summary, dict):
        key = str(summary["id"])
        known = versions["interactions"].get(key, known)
        if _newer(event_id, known[0]):
            _apply_summary(state, summary)
            offered = summary["agent_id"] == agent["id"] and summary["status"] == Status.OFFERED
            known = [event_id if isinstance(event_id, int) else known[0], offered]
            versions["interactions"][key] = known
    if event == "offer.created":
        summary = summary or {}
        offered_now = (
            summary.get("status") == Status.OFFERED and summary.get("agent_id") == agent["id"]
        )
        if _newer(event_id, known[0]) or event_id == known[0]:
            show = offered_now
        else:  # a newer event set this interaction: the offer shows if it still says so
            show = offered_now and known[1]
        if show and payload["offer_id"] not in versions["ended"]:
            state["offers"][str(payload["offer_id"])] = {
                "offer_id": payload["offer_id"],
                "interaction_id": payload["interaction_id"],
                "channel": payload["channel"],
                "expires_at": payload["expires_at"],
                "interaction": summary,
            }
    elif event in OFFER_END_EVENTS:
        state["offers"].pop(str(payload["offer_id"]), None)
        if payload["offer_id"] not in versions["ended"]:
            versions["ended"].append(payload["offer_id"])
    _forget_oldest(versions)
    if isinstance(event_id, int):
        state["last_event_id"] = max(state["last_event_id"], event_id)
    return state
