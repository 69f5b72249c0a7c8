"""static/console/state.js applies events exactly as console/state.py does: the same day of
events, applied by both to the same snapshot, gives the same state (and the fresh one)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agents.models import AgentState, PauseReason
from agents.presence import do_set_agent_state, do_set_channels
from console.actions import do_close_interaction
from console.models import AgentEvent
from console.outbox import serialise
from console.state import apply_event, build_snapshot
from interactions.actions import do_record_message
from routing.claims import do_route_pending
from routing.models import Offer
from routing.offers import do_accept_offer, do_decline_offer
from tests.integration.routing.conftest import agent, arrive, queue, skill

__all__ = ["agent", "arrive", "queue", "skill"]

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
STATE_JS = Path(__file__).resolve().parents[2] / "static" / "console" / "state.js"


def test_state_js_and_state_py_agree(
    browser: Any,
    agent: Callable[..., Any],
    queue: Callable[..., Any],
    arrive: Callable[..., Any],
) -> None:
    from threading import Thread

    result: dict[str, Any] = {}

    def day() -> None:  # ORM work off Playwright's thread (publishing uses async_to_sync)
        from django.db import connection

        try:
            caf = queue("caf", needs={"rsa": 2})
            alice, bob = agent("alice", {"rsa": 5}), agent("bob", {"rsa": 3})
            old = build_snapshot(alice)
            first = arrive(caf, "email", subject="RSA")
            do_route_pending()
            do_decline_offer(offer_id=Offer.objects.get(interaction=first).pk, agent=alice)
            second = arrive(caf, "sms")
            do_route_pending()
            offer = Offer.objects.get(interaction=second, status="pending")
            do_accept_offer(offer_id=offer.pk, agent=alice)
            second.refresh_from_db()
            do_record_message(interaction=second, direction="inbound", text="Bonjour")
            do_set_channels(agent=alice, channels=["sms", "email"])
            do_set_agent_state(agent=alice, state=AgentState.PAUSED, reason=PauseReason.LUNCH)
            do_close_interaction(interaction_id=second.pk, agent=alice, code=None)
            do_set_agent_state(agent=alice, state=AgentState.AVAILABLE)
            assert bob is not None
            result["old"] = old
            result["events"] = [
                serialise(e) for e in AgentEvent.objects.filter(agent_id=alice.pk, pk__gt=0)
            ]
            result["fresh"] = build_snapshot(alice)
        finally:
            connection.close()

    thread = Thread(target=day)
    thread.start()
    thread.join(timeout=60)
    old, events, fresh = result["old"], result["events"], result["fresh"]
    events = [e for e in events if e["id"] > old["last_event_id"]]
    assert len(events) >= 8

    by_python = old
    for event in events:
        by_python = apply_event(by_python, event)

    page = browser.new_page()
    try:
        page.set_content("<!doctype html><title>state.js</title>")
        page.add_script_tag(content=STATE_JS.read_text())
        by_js = page.evaluate(
            """([state, events]) => {
                events.forEach((e) => window.ConsoleState.applyEvent(state, e));
                return state;
            }""",
            [json.loads(json.dumps(old)), events],
        )
    finally:
        page.close()

    assert by_js == json.loads(json.dumps(by_python))
    for key in ("agent", "offers", "interactions", "last_event_id"):
        assert by_python[key] == fresh[key], key

    # Any one event arriving late (pushed by the server after newer ones): both still agree
    # with each other and with the fresh state.
    orders = [[*range(late), *range(late + 1, len(events)), late] for late in range(len(events))]
    page = browser.new_page()
    try:
        page.set_content("<!doctype html><title>state.js</title>")
        page.add_script_tag(content=STATE_JS.read_text())
        late_by_js = page.evaluate(
            """([state, events, orders]) => orders.map((order) => {
                const copy = JSON.parse(JSON.stringify(state));
                order.forEach((i) => window.ConsoleState.applyEvent(copy, events[i]));
                return copy;
            })""",
            [json.loads(json.dumps(old)), events, orders],
        )
    finally:
        page.close()
    for order, js_state in zip(orders, late_by_js, strict=True):
        py_state = old
        for i in order:
            py_state = apply_event(py_state, events[i])
        assert js_state == json.loads(json.dumps(py_state))
        for key in ("agent", "offers", "interactions", "last_event_id"):
            assert py_state[key] == fresh[key], (key, order[-1])
