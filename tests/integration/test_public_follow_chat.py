""" "Follow my request" at the end of a web chat (issue 14): once a chat that reached a queue
ends, the citizen's window gets the follow-up link, which opens the request's public page."""

from __future__ import annotations

import re
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient

from channels_inbound.chat.models import ChatWidget
from publicquality.models import FollowLink

from .channels.chat_helpers import connect, fresh_rate_limits, make_widget, topic_id
from .channels.test_chat_socket import _walk_bot_to_queue

__all__ = ["fresh_rate_limits"]  # autouse fixture

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture
def widget(db: Any) -> ChatWidget:
    return make_widget()


async def test_a_chat_that_ends_gives_the_follow_up_link(widget: ChatWidget) -> None:
    citizen = await connect()
    await _walk_bot_to_queue(citizen, widget)
    await citizen.send(type="end")
    await citizen.until("state", state="ended")
    frame = await citizen.until("follow")
    assert frame["text"] == "Suivez votre demande en ligne"
    assert re.fullmatch(r"/suivi/[^/]+/\?lang=fr", frame["path"])
    assert await sync_to_async(FollowLink.objects.count)() == 1
    page = await AsyncClient(REMOTE_ADDR="198.51.100.30").get(frame["path"])
    assert page.status_code == 200
    assert 'data-state="closed"' in page.content.decode()  # left before an adviser took it
    await citizen.close()


async def test_a_chat_that_never_reached_a_queue_gives_no_link(widget: ChatWidget) -> None:
    citizen = await connect()
    await citizen.send(type="hello", token=None, lang="fr")
    await citizen.until("welcome")
    await citizen.close()
    assert await sync_to_async(FollowLink.objects.count)() == 0


async def test_an_english_window_gets_the_link_in_english(widget: ChatWidget) -> None:
    """The window's language, not the routing language the bot's flow sets (French here)."""
    citizen = await connect()
    await citizen.send(type="hello", token=None, lang="en")
    await citizen.until("welcome")
    tid = await sync_to_async(topic_id)(widget, "État civil")
    await citizen.send(type="start", name="Sam Taylor", topic=tid)
    welcome = await citizen.until("welcome")
    await citizen.send(type="choose", key="2", node=welcome["ask"]["node"])  # "Autre chose"
    await citizen.until("state", state="waiting")
    await citizen.send(type="end")
    frame = await citizen.until("follow")
    assert frame["text"] == "Follow your request online"
    assert re.fullmatch(r"/suivi/[^/]+/\?lang=en", frame["path"])
    await citizen.close()
