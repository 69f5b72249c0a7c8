"""The bound on requests one web process runs through Django at once (kernel/asgi_limits.py):
a burst of console actions waits its turn in the event loop instead of piling threads on the
database pool, and nothing waiting is dropped."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any

import pytest

from kernel.asgi_limits import ConcurrencyLimit, Slots, default_limit


class SlowApp:
    """An ASGI app that notes how many requests are inside it and answers after a gate."""

    def __init__(self) -> None:
        self.inside = 0
        self.most_inside = 0
        self.entered: list[int] = []
        self.gate = asyncio.Event()

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        self.inside += 1
        self.most_inside = max(self.most_inside, self.inside)
        self.entered.append(scope["n"])
        try:
            await self.gate.wait()
            if scope.get("fail"):
                raise RuntimeError("the view failed")
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
        finally:
            self.inside -= 1


async def _request(app: Any, n: int, answers: list[int], **extra: Any) -> None:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            answers.append(n)

    await app({"type": "http", "n": n, **extra}, receive, send)


def test_a_burst_runs_at_most_limit_at_once_in_arrival_order_and_every_request_is_answered() -> (
    None
):
    async def scenario() -> tuple[SlowApp, ConcurrencyLimit, list[int], int]:
        inner = SlowApp()
        limited = ConcurrencyLimit(inner, 3)
        answers: list[int] = []
        tasks = [asyncio.create_task(_request(limited, n, answers)) for n in range(20)]
        await asyncio.sleep(0.05)
        waiting_at_peak = limited.waiting
        inner.gate.set()
        await asyncio.gather(*tasks)
        return inner, limited, answers, waiting_at_peak

    inner, limited, answers, waiting_at_peak = asyncio.run(scenario())
    assert inner.most_inside == 3
    assert waiting_at_peak == 17
    assert inner.entered == list(range(20))  # first come, first served
    assert sorted(answers) == list(range(20))
    assert limited.waiting == 0


def test_a_failing_or_cancelled_request_gives_its_place_back() -> None:
    async def scenario() -> tuple[SlowApp, list[int]]:
        inner = SlowApp()
        limited = ConcurrencyLimit(inner, 1)
        answers: list[int] = []
        failing = asyncio.create_task(_request(limited, 0, answers, fail=True))
        abandoned = asyncio.create_task(_request(limited, 1, answers))  # waits for the slot
        await asyncio.sleep(0.01)
        abandoned.cancel()  # the client went away while waiting
        inner.gate.set()
        with pytest.raises(RuntimeError):
            await failing
        await asyncio.wait_for(_request(limited, 2, answers), 1)
        return inner, answers

    inner, answers = asyncio.run(scenario())
    assert answers == [2]
    assert inner.entered == [0, 2]


def test_websockets_and_a_zero_limit_are_not_bounded() -> None:
    async def scenario(limit: int, kind: str) -> int:
        inner = SlowApp()
        limited = ConcurrencyLimit(inner, limit)

        async def call(n: int) -> None:
            async def receive() -> dict[str, Any]:
                return {}

            async def send(message: MutableMapping[str, Any]) -> None:
                return None

            await limited({"type": kind, "n": n}, receive, send)

        tasks = [asyncio.create_task(call(n)) for n in range(5)]
        await asyncio.sleep(0.02)
        inside = inner.inside
        inner.gate.set()
        await asyncio.gather(*tasks)
        return inside

    assert asyncio.run(scenario(1, "websocket")) == 5
    assert asyncio.run(scenario(0, "http")) == 5
    assert asyncio.run(scenario(2, "http")) == 2


def test_the_default_leaves_two_pool_connections_to_webhooks_and_sockets() -> None:
    assert default_limit(10) == 8
    assert default_limit(2) == 1
    assert default_limit(None) == 0


def test_requests_and_other_django_work_share_the_slots_in_arrival_order() -> None:
    """The console sockets' actions hold the same slots as the HTTP requests: together never
    more than the bound, served first come, first served."""

    async def scenario() -> tuple[list[str], int, int]:
        slots = Slots(2)
        gate = asyncio.Event()
        entered: list[str] = []
        inside = {"now": 0, "most": 0}

        async def work(name: str) -> None:
            entered.append(name)
            inside["now"] += 1
            inside["most"] = max(inside["most"], inside["now"])
            await gate.wait()
            inside["now"] -= 1

        async def app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
            await work(f"request-{scope['n']}")

        limited = ConcurrencyLimit(app, slots=slots)

        async def socket_action(name: str) -> None:
            async with slots.held():
                await work(name)

        tasks = []
        for start in (
            _request(limited, 0, []),
            socket_action("action-1"),
            _request(limited, 1, []),  # waits: both slots are taken
            socket_action("action-2"),  # waits behind request 1
        ):
            tasks.append(asyncio.create_task(start))
            await asyncio.sleep(0.005)
        waiting = slots.waiting
        gate.set()
        await asyncio.gather(*tasks)
        return entered, waiting, inside["most"]

    entered, waiting, most = asyncio.run(scenario())
    assert (waiting, most) == (2, 2)
    assert entered == ["request-0", "action-1", "request-1", "action-2"]
