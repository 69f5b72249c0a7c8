"""A console catches up on an event it missed without reconnecting (console/live.py).

The event is written to the outbox but its live message is lost (the publish to the channel
layer failed: Redis restarting, or another process on the in-memory layer). Within two rounds
of the console chores the server pushes the missed event to the open socket as a ``replay``,
even when newer events of the same agent were delivered meanwhile, and the console keeps the
newest state (an older event applied late never undoes a newer one).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.test import Client

from agents.models import AgentState, PauseReason
from agents.presence import do_set_agent_state
from console import live, outbox
from console.models import AgentEvent
from console.state import apply_event, build_snapshot
from contactcentre.asgi import application
from kernel import events

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]

ROUND = 0.2  # CONSOLE_HEARTBEAT_FLUSH_SECONDS in these tests


def _socket(user: Any) -> WebsocketCommunicator:
    client = Client()
    client.force_login(user)
    name = django_settings.SESSION_COOKIE_NAME
    cookie = f"{name}={client.cookies[name].value}".encode()
    headers = [(b"host", b"localhost"), (b"origin", b"http://localhost"), (b"cookie", cookie)]
    return WebsocketCommunicator(application, "/ws/console/", headers=headers)


async def _console(make_user: Callable[..., Any]) -> tuple[WebsocketCommunicator, Any]:
    """An open console that has applied everything so far (as the page does on load)."""
    user = await sync_to_async(make_user)("alice")
    await sync_to_async(do_set_agent_state)(agent=user.agent_profile, state=AgentState.AVAILABLE)
    socket = await sync_to_async(_socket)(user)
    connected, _ = await socket.connect()
    assert connected
    assert (await socket.receive_json_from(timeout=3))["type"] == "hello"
    last = await sync_to_async(outbox.last_event_id)(user.agent_profile.pk)
    assert last > 0
    await socket.send_json_to({"type": "resume", "last_event_id": last})
    assert (await socket.receive_json_from(timeout=3))["type"] == "replay"
    return socket, user.agent_profile


def _pause_with_the_publish_lost(agent: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as patch:
        patch.setattr(events, "_deliver", lambda deliveries: None)  # the publish never arrives
        do_set_agent_state(agent=agent, state=AgentState.PAUSED, reason=PauseReason.SUPERVISOR)


async def _next_replay(socket: WebsocketCommunicator) -> dict[str, Any]:
    while True:  # live events may come first; the catch-up is a replay nobody asked for
        frame = await socket.receive_json_from(timeout=10 * ROUND + 3)
        if frame["type"] == "replay":
            return frame


async def test_a_missed_event_reaches_the_open_console_within_two_rounds(
    make_user: Callable[..., Any], settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.CONSOLE_HEARTBEAT_FLUSH_SECONDS = ROUND
    socket, agent = await _console(make_user)
    before = await sync_to_async(outbox.last_event_id)(agent.pk)

    await sync_to_async(_pause_with_the_publish_lost)(agent, monkeypatch)
    missed = await sync_to_async(outbox.last_event_id)(agent.pk)
    assert missed > before  # in the outbox, never sent live

    # Without asking anything, the console gets the missed event (two rounds at most).
    replay = await _next_replay(socket)
    assert [(e["id"], e["event"], e["payload"]["state"]) for e in replay["events"]] == [
        (missed, "agent.state", "paused")
    ]
    # Caught up: sent once, never again; the heartbeat answer is a plain acknowledgement.
    assert await socket.receive_nothing(timeout=5 * ROUND)
    await socket.send_json_to({"type": "heartbeat"})
    assert await socket.receive_json_from(timeout=3) == {"type": "heartbeat.ack"}
    await socket.disconnect()


async def test_an_event_lost_before_a_delivered_one_is_still_caught_up_and_the_newest_wins(
    make_user: Callable[..., Any], settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.CONSOLE_HEARTBEAT_FLUSH_SECONDS = ROUND
    socket, agent = await _console(make_user)
    snapshot = await sync_to_async(build_snapshot)(agent)

    # The supervisor's pause is lost live; the agent's return to available is delivered.
    await sync_to_async(_pause_with_the_publish_lost)(agent, monkeypatch)
    await sync_to_async(do_set_agent_state)(agent=agent, state=AgentState.AVAILABLE)
    delivered = await socket.receive_json_from(timeout=3)
    assert (delivered["type"], delivered["payload"]["state"]) == ("event", "available")
    # The console's newest id is the agent's newest: only the outbox comparison finds the gap.
    assert delivered["id"] == await sync_to_async(outbox.last_event_id)(agent.pk)

    replay = await _next_replay(socket)
    late = replay["events"]
    assert [(e["event"], e["payload"]["state"]) for e in late] == [("agent.state", "paused")]
    assert late[0]["id"] < delivered["id"]

    # Applied in the order the console received them, the older pause does not win.
    state = apply_event(snapshot, delivered)
    for event in late:
        state = apply_event(state, event)
    assert state["agent"]["state"] == "available"
    fresh = await sync_to_async(build_snapshot)(agent)
    assert state["agent"] == fresh["agent"]
    assert await socket.receive_nothing(timeout=5 * ROUND)
    await socket.disconnect()


async def test_a_console_that_missed_nothing_is_never_told(
    make_user: Callable[..., Any], settings: Any
) -> None:
    settings.CONSOLE_HEARTBEAT_FLUSH_SECONDS = ROUND
    socket, agent = await _console(make_user)
    await sync_to_async(do_set_agent_state)(
        agent=agent, state=AgentState.PAUSED, reason=PauseReason.SUPERVISOR
    )
    live_event = await socket.receive_json_from(timeout=3)
    assert live_event["type"] == "event"
    # Several rounds pass: nothing is pushed.
    assert await socket.receive_nothing(timeout=5 * ROUND)
    await socket.send_json_to({"type": "heartbeat"})
    assert await socket.receive_json_from(timeout=3) == {"type": "heartbeat.ack"}
    await socket.disconnect()


async def test_the_recent_ids_of_each_agent_are_those_above_its_own_floor(
    make_user: Callable[..., Any],
) -> None:
    agents = []
    for name in ("a1", "a2", "a3"):
        user = await sync_to_async(make_user)(name)
        agents.append(user.agent_profile)
    for agent in agents[:2]:
        await sync_to_async(do_set_agent_state)(agent=agent, state=AgentState.AVAILABLE)
        await sync_to_async(do_set_agent_state)(
            agent=agent, state=AgentState.PAUSED, reason=PauseReason.BREAK
        )

    def all_ids(agent_id: int) -> list[int]:
        return list(
            AgentEvent.objects.filter(agent_id=agent_id).order_by("id").values_list("id", flat=True)
        )

    expected = {a.pk: await sync_to_async(all_ids)(a.pk) for a in agents}
    floors = {a.pk: (expected[a.pk][0] if expected[a.pk] else 0) for a in agents}

    found = await sync_to_async(outbox.event_ids_after)(floors)
    # Each agent's ids above its own floor, ascending; the third has none.
    assert found == {a.pk: expected[a.pk][1:] for a in agents[:2]}


class _Console:
    """What the chores see of a console (console.live.LiveConsole)."""

    def __init__(self, agent_id: int, up_to: int, sent: set[int], *, fails: bool = False) -> None:
        self.agent_id: int | None = agent_id
        self.user_id = 1
        self.session_key: str | None = None
        self.applied_up_to: int | None = up_to
        self.sent_ids = sent
        self.fails = fails
        self.pushed: list[list[int]] = []
        self.resynced = 0

    async def end(self, reason: str) -> None:
        raise AssertionError("not ended here")

    async def push_missed(self, events: list[dict[str, Any]]) -> None:
        if self.fails:
            raise ConnectionError("client disconnected")
        self.pushed.append([e["id"] for e in events])

    async def resync(self) -> None:
        self.resynced += 1

    async def rejoin_groups(self) -> None:
        raise AssertionError("not rejoined here")


def test_only_ids_a_round_old_count_and_each_missed_id_is_found_once() -> None:
    saved = dict(live._seen_last_round)
    try:
        live._seen_last_round.clear()
        behind = _Console(1, up_to=10, sent={12})
        current = _Console(2, up_to=20, sent={21})
        # first round: 11, 12 (agent 1) and 21 (agent 2) are new: nothing is missed yet
        missed, far = live.find_missed([behind, current], {1: [11, 12], 2: [21]})
        assert (missed, far) == ({}, [])
        # next round: they are a round old; 11 was never sent to console 1; 13 is new
        missed, far = live.find_missed([behind, current], {1: [11, 12, 13], 2: [21]})
        assert missed == {behind: [11]}
        assert far == []
        assert (behind.applied_up_to, current.applied_up_to) == (12, 21)
        # a round later, 11 is not found again; 13 was sent live meanwhile
        behind.sent_ids.add(13)
        missed, _ = live.find_missed([behind, current], {1: [13], 2: []})
        assert missed == {}
        assert behind.applied_up_to == 13
        # an id still on its way stops the check: the older ids after it wait a round
        missed, _ = live.find_missed([behind], {1: [14, 15]})
        live._seen_last_round[1] = {15}
        missed, _ = live.find_missed([behind], {1: [14, 15]})
        assert missed == {}
        assert behind.applied_up_to == 13  # 14 is new this round: 15 is not passed over
    finally:
        live._seen_last_round.clear()
        live._seen_last_round.update(saved)


def test_a_console_too_far_behind_resumes_instead() -> None:
    saved = dict(live._seen_last_round)
    try:
        live._seen_last_round.clear()
        far = _Console(1, up_to=0, sent=set())
        ids = list(range(1, outbox.RECENT_IDS_LIMIT + 2))
        _, too_far = live.find_missed([far], {1: ids})
        assert too_far == [far]
    finally:
        live._seen_last_round.clear()
        live._seen_last_round.update(saved)
