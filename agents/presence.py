"""Agent presence: states, per-channel availability and the console heartbeat."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.db import connection, transaction
from django.utils import timezone

from contactcentre.errors import SingleCodeError
from contactcentre.events import SUPERVISORS_GROUP, agent_group, publish, publish_many
from contactcentre.pg import execute_binary

from .models import ALL_CHANNELS, AgentPresence, AgentProfile, AgentState, PauseReason


class PresenceError(SingleCodeError, ValueError):
    """A presence change that makes no sense (the message says why; 400)."""

    default_code = "invalid_presence"


def _locked(agent: AgentProfile) -> AgentPresence:
    now = timezone.now()
    AgentPresence.objects.get_or_create(
        agent=agent, defaults={"state_since": now, "idle_since": now}
    )
    return AgentPresence.objects.select_for_update().get(agent=agent)


def do_set_agent_state(
    *, agent: AgentProfile, state: str, reason: str = "", now: datetime | None = None
) -> AgentPresence:
    """Change the agent's state (the agent from the console, or a supervisor)."""
    now = now or timezone.now()
    if state not in AgentState.values:
        raise PresenceError(f"unknown state {state!r}")
    if state == AgentState.PAUSED and reason not in PauseReason.values:
        raise PresenceError(
            f"a pause needs a reason among: {', '.join(PauseReason.values)} (got {reason!r})"
        )
    if state == AgentState.WRAP_UP:
        raise PresenceError("wrap-up starts by itself after a call")
    with transaction.atomic():
        presence = _locked(agent)
        changed = presence.state != state or presence.pause_reason != reason
        presence.state = state
        presence.pause_reason = reason if state == AgentState.PAUSED else ""
        if changed:
            presence.state_since = now
        presence.wrap_up_until = None
        update = ["state", "pause_reason", "state_since", "wrap_up_until"]
        if state == AgentState.AVAILABLE:
            # Going available counts as proof of life (the console sends it).
            presence.last_heartbeat_at = now
            update.append("last_heartbeat_at")
            if changed:
                presence.idle_since = now
                update.append("idle_since")
        presence.save(update_fields=update)
        publish(
            "agent.state",
            {
                "agent_id": agent.pk,
                "state": state,
                "reason": presence.pause_reason,
                "since": presence.state_since.isoformat(),
            },
            groups=[agent_group(agent.pk), SUPERVISORS_GROUP],
        )
        if state == AgentState.AVAILABLE:
            from routing.actions import request_routing

            request_routing()
    return presence


def do_set_channels(*, agent: AgentProfile, channels: Iterable[str]) -> AgentPresence:
    """Choose the channels the agent takes work on (e.g. no calls this afternoon)."""
    wanted = list(dict.fromkeys(channels))
    unknown = set(wanted) - set(ALL_CHANNELS)
    if unknown:
        raise PresenceError(f"unknown channels: {', '.join(sorted(unknown))}")
    with transaction.atomic():
        presence = _locked(agent)
        added = set(wanted) - set(presence.channels_enabled or [])
        presence.channels_enabled = wanted
        presence.save(update_fields=["channels_enabled"])
        publish(
            "agent.channels",
            {"agent_id": agent.pk, "channels": wanted},
            groups=[agent_group(agent.pk), SUPERVISORS_GROUP],
        )
        if added and presence.state == AgentState.AVAILABLE:
            from routing.actions import request_routing

            request_routing()
    return presence


def do_heartbeat(*, agent_id: int, now: datetime | None = None) -> bool:
    """The console is alive. Returns False if the agent has no presence row."""
    now = now or timezone.now()
    return bool(AgentPresence.objects.filter(agent_id=agent_id).update(last_heartbeat_at=now))


def do_heartbeats(*, agent_ids: Iterable[int], now: datetime | None = None) -> int:
    """Many consoles are alive: one write for all (the console server batches heartbeats)."""
    now = now or timezone.now()
    ids = sorted(set(agent_ids))
    if not ids:
        return 0
    if connection.vendor == "postgresql":  # one array parameter, not one per console
        table = connection.ops.quote_name(AgentPresence._meta.db_table)
        with execute_binary(
            f"UPDATE {table} SET last_heartbeat_at = %b "  # noqa: S608 - name from metadata
            "WHERE agent_id = ANY(%b::bigint[])",
            [now, ids],
        ) as cursor:
            return cursor.rowcount
    return AgentPresence.objects.filter(agent_id__in=ids).update(last_heartbeat_at=now)


def do_end_wrap_ups(*, now: datetime | None = None, agent_ids: Iterable[int] | None = None) -> int:
    """Agents whose after-call work timer ran out become available again.

    The sweep ends every timer due; the timer task of one agent (``routing.end_wrap_up``,
    scheduled at its end) passes ``agent_ids``. Idempotent: an agent whose wrap-up already
    ended (closed call, sweep) or was extended is left alone.
    """
    now = now or timezone.now()
    rows = AgentPresence.objects.filter(state=AgentState.WRAP_UP, wrap_up_until__lte=now)
    if agent_ids is not None:
        rows = rows.filter(agent_id__in=list(agent_ids))
    with transaction.atomic():
        ended = list(
            rows.order_by("agent_id")
            .select_for_update(skip_locked=True)
            .values_list("agent_id", flat=True)
        )
        if not ended:
            return 0
        AgentPresence.objects.filter(agent_id__in=ended, state=AgentState.WRAP_UP).update(
            state=AgentState.AVAILABLE, state_since=now, wrap_up_until=None, idle_since=now
        )
        publish_agent_states(ended, AgentState.AVAILABLE, now)
        from routing.actions import request_routing

        request_routing()
    return len(ended)


def publish_agent_states(agent_ids: Iterable[int], state: str, since: datetime) -> None:
    """Tell consoles and supervisors that these agents' state changed (bulk updates)."""
    publish_many(
        [
            (
                "agent.state",
                {"agent_id": agent_id, "state": state, "reason": "", "since": since.isoformat()},
                [agent_group(agent_id), SUPERVISORS_GROUP],
            )
            for agent_id in agent_ids
        ]
    )
