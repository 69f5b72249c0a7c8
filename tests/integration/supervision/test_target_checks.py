"""A transfer to a named colleague and a supervisor's reassignment meet the rule a router offer
meets (issue 16: ``policy.availability_reason`` under the target's lock): a paused agent, an
agent logged out or whose console went silent, one who does not take the channel or who is at
capacity (or on a call) is refused with a code saying why, and nothing changes. A supervisor's
"take" is not checked."""

from __future__ import annotations

import html
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from agents.models import AgentPresence, AgentProfile, AgentState, PauseReason
from interactions.actions import do_create_interaction
from interactions.lifecycle import Status
from interactions.models import Interaction
from routing.claims import do_route_pending
from routing.errors import TransferError
from routing.models import Offer, OfferStatus
from routing.offers import do_accept_offer
from routing.transfers import do_offer_to_agent, do_reassign_interaction
from tests.integration.supervision.conftest import verified_session

pytestmark = pytest.mark.django_db


def _handled_chat(queue: Any, agent: Any, arrive: Any) -> tuple[AgentProfile, Interaction]:
    q = queue("caf", {})
    holder = agent("holder", {})
    chat = arrive(q, "chat")
    do_route_pending()
    do_accept_offer(offer_id=Offer.objects.get(interaction=chat).pk, agent=holder)
    return holder, Interaction.objects.get(pk=chat.pk)


def _holding(agent: AgentProfile, channel: str, queue: Any) -> None:
    """``agent`` handles one more ``channel`` contact."""
    contact = do_create_interaction(channel=channel, contact=None, queue=queue, enqueue=False)
    Interaction.objects.filter(pk=contact.pk).update(status=Status.ASSIGNED, assigned_agent=agent)


def _targets(queue: Any, agent: Any) -> dict[str, tuple[AgentProfile, str]]:
    """Colleagues who may not take one more chat now, with the code each refusal gives."""
    paused = agent("paused", {})
    AgentPresence.objects.filter(agent=paused).update(
        state=AgentState.PAUSED, pause_reason=PauseReason.BREAK
    )
    full = agent("full", {}, capacity_chat=1)
    on_call = agent("on_call", {})
    other = queue("other", {})
    _holding(full, "chat", other)
    _holding(on_call, "voice", other)
    return {
        "paused": (paused, "not_available"),
        "offline": (agent("offline", {}, available=False), "not_available"),
        "silent console": (  # available, but no heartbeat for 5 minutes
            agent("silent", {}, now=timezone.now() - timedelta(minutes=5)),
            "not_available",
        ),
        "chat turned off": (agent("no_chat", {}, channels=["voice", "email"]), "channel_off"),
        "at chat capacity": (full, "no_room"),
        "on a call": (on_call, "no_room"),
    }


def _transfer(chat: Interaction, holder: AgentProfile, target: AgentProfile, _sup: Any) -> None:
    do_offer_to_agent(interaction_id=chat.pk, agent=holder, target=target)


def _reassign(chat: Interaction, _holder: AgentProfile, target: AgentProfile, sup: Any) -> None:
    do_reassign_interaction(interaction_id=chat.pk, target=target, actor=sup)


@pytest.mark.parametrize("hand_over", [_transfer, _reassign], ids=["transfer", "reassignment"])
def test_a_target_who_may_not_take_it_is_refused(
    hand_over: Callable[..., None], queue: Any, agent: Any, arrive: Any, supervisor: Any
) -> None:
    holder, chat = _handled_chat(queue, agent, arrive)
    for case, (target, code) in _targets(queue, agent).items():
        with pytest.raises(TransferError) as refused:
            hand_over(chat, holder, target, supervisor)
        assert refused.value.code == code, case
        chat.refresh_from_db()
        assert (chat.status, chat.assigned_agent) == (Status.ASSIGNED, holder), case
        assert not Offer.objects.filter(interaction=chat, agent=target).exists(), case


def test_a_supervisor_makes_a_paused_agent_take_it(queue: Any, agent: Any, arrive: Any) -> None:
    _holder, chat = _handled_chat(queue, agent, arrive)
    paused = _targets(queue, agent)["paused"][0]
    offer = do_reassign_interaction(interaction_id=chat.pk, target=paused, take=True)
    chat.refresh_from_db()
    assert (chat.status, chat.assigned_agent, offer.status) == (
        Status.ASSIGNED,
        paused,
        OfferStatus.ACCEPTED,
    )


def test_the_supervisor_reads_why_a_reassignment_was_refused(
    queue: Any, agent: Any, arrive: Any, supervisor: Any
) -> None:
    holder, chat = _handled_chat(queue, agent, arrive)
    silent = agent("silent", {}, now=timezone.now() - timedelta(minutes=5))
    no_chat = agent("no_chat", {}, channels=["voice"])
    client = verified_session(supervisor)
    for target, words in (
        (silent, "Cet agent n'est pas disponible sur ce canal."),
        (no_chat, "Cet agent n'est pas disponible sur ce canal."),
    ):
        page = client.post(
            f"/supervision/interactions/{chat.pk}/reassign/", {"agent": target.pk}, follow=True
        )
        assert words in html.unescape(page.content.decode())
    chat.refresh_from_db()
    assert (chat.status, chat.assigned_agent) == (Status.ASSIGNED, holder)
