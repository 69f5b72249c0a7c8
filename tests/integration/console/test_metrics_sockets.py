"""The console sockets open in a web process, as the metrics endpoint shows them
(``cc_console_sockets``, docs/operations.md "Metrics")."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from tests.integration.test_metrics import TOKEN, scrape, value

from .test_consumer import _login, _open

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]


def _sockets() -> float:
    return value(scrape(Client()), "cc_console_sockets")


async def test_open_and_closed_consoles_move_the_process_gauge(
    make_user: Callable[..., Any], settings: Any
) -> None:
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.PROMETHEUS_MULTIPROC_DIR = ""
    before = await sync_to_async(_sockets)()
    # when: two agents open their consoles, one of them in two tabs
    alice = await sync_to_async(_login)(await sync_to_async(make_user)("alice"))
    bruno = await sync_to_async(_login)(await sync_to_async(make_user)("bruno"))
    sockets = [(await _open(alice))[0], (await _open(alice))[0], (await _open(bruno))[0]]
    # then
    assert await sync_to_async(_sockets)() == before + 3
    # when: a tab is closed
    await sockets.pop().disconnect()
    assert await sync_to_async(_sockets)() == before + 2
    for socket in sockets:
        await socket.disconnect()
    assert await sync_to_async(_sockets)() == before
