"""What a console socket's action costs (issue 13), and that the cheaper checks still refuse
what they refused.

Before each action the socket checks its session and account (``console.live``): one
statement on PostgreSQL with database sessions, which must still refuse a session that ended
(logout), one an administrator deleted, one past its expiry date, one idle for too long, and a
disabled account. A closing writes the agent's "longest idle" clock with its change to wrap-up
(``agents.presence.touching_idle``): the clock still counts from the closing, and the other
paths that free an agent still touch it."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from django.conf import settings
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from agents.models import AgentPresence, AgentProfile
from agents.presence import do_touch_idle, ensure_presence, touching_idle
from console import live
from console.consumers import _perform
from console.middleware import LAST_ACTIVITY_KEY
from interactions.models import Interaction
from routing.models import OfferStatus
from tests.integration.console.test_accept_close_path import offered

pytestmark = [pytest.mark.django_db]


def _logged_in(user: Any) -> tuple[Client, str]:
    client = Client()
    client.force_login(user)
    return client, client.cookies[settings.SESSION_COOKIE_NAME].value


def _console(user: Any, session_key: str | None) -> Any:
    """What ``_perform`` reads of an open console: who, which session, in which language,
    the acting agent (already read, with what ``organisations.authz`` knows of its user, as on
    a socket that acted recently)."""
    from console.answers import in_scope

    agent = AgentProfile.objects.select_related("user").get(user=user)
    in_scope(agent.user, 0)
    return SimpleNamespace(
        user_id=user.pk, session_key=session_key, language="en", acting_agent=lambda: agent
    )


def _idle_for_too_long(key: str) -> None:
    store = SessionStore(key)
    store[LAST_ACTIVITY_KEY] = time.time() - settings.CONSOLE_IDLE_TIMEOUT_SECONDS - 5
    store.save()


def _expired(key: str) -> None:
    Session.objects.filter(pk=key).update(expire_date=timezone.now() - timedelta(seconds=1))


def _disabled(user: Any) -> None:
    type(user).objects.filter(pk=user.pk).update(is_active=False)  # no signal: the check alone


@pytest.mark.postgres
def test_a_valid_session_costs_one_statement(make_user: Callable[..., Any]) -> None:
    user = make_user("alice")
    _client, key = _logged_in(user)
    with CaptureQueriesContext(connection) as checking:
        assert live.invalid_sessions([(user.pk, key)]) == set()
    assert len(checking) == 1, [q["sql"] for q in checking.captured_queries]


@pytest.mark.postgres
@pytest.mark.parametrize("ending", ["logout", "deleted", "expired", "idle", "disabled"])
def test_an_action_of_a_session_that_is_over_is_refused_in_one_statement(
    make_user: Callable[..., Any], ending: str
) -> None:
    user = make_user("alice")
    client, key = _logged_in(user)
    interaction, offer = offered(user.agent_profile)
    console = _console(user, key)
    if ending == "logout":
        client.logout()
    elif ending == "deleted":
        Session.objects.filter(pk=key).delete()
    elif ending == "expired":
        _expired(key)
    elif ending == "idle":
        _idle_for_too_long(key)
    else:
        _disabled(user)
    with CaptureQueriesContext(connection) as acting:
        answer, over = _perform(console, {"action": "accept", "offer_id": offer.pk})
    assert (answer.status, answer.message, over) == (401, "Your session has ended.", True)
    assert len(acting) == 1, [q["sql"] for q in acting.captured_queries]
    offer.refresh_from_db()
    interaction.refresh_from_db()
    # (a logout withdraws the agent's offers itself)
    assert offer.status != OfferStatus.ACCEPTED
    assert interaction.status != "assigned"


@pytest.mark.postgres
def test_the_periodic_check_finds_every_bad_pair_in_one_statement(
    make_user: Callable[..., Any],
) -> None:
    users = {name: make_user(name) for name in ("ok", "gone", "expired", "idle", "off", "none")}
    keys = {name: _logged_in(user)[1] for name, user in users.items()}
    Session.objects.filter(pk=keys["gone"]).delete()
    _expired(keys["expired"])
    _idle_for_too_long(keys["idle"])
    _disabled(users["off"])
    inactive_without_key = make_user("off-nokey")
    _disabled(inactive_without_key)
    entries: list[tuple[int, str | None]] = [(u.pk, keys[n]) for n, u in users.items()]
    entries += [
        (users["ok"].pk, keys["ok"]),  # the same console twice
        (users["none"].pk, None),  # no session to check: the account alone
        (inactive_without_key.pk, None),
        (users["ok"].pk, keys["gone"]),  # another user's deleted session
        (999_999, keys["ok"]),  # no such account
    ]
    with CaptureQueriesContext(connection) as checking:
        bad = live.invalid_sessions(entries)
    assert len(checking) == 1
    assert bad == {
        (users["gone"].pk, keys["gone"]),
        (users["expired"].pk, keys["expired"]),
        (users["idle"].pk, keys["idle"]),
        (users["off"].pk, keys["off"]),
        (inactive_without_key.pk, None),
        (users["ok"].pk, keys["gone"]),
        (999_999, keys["ok"]),
    }
    assert live.invalid_sessions([]) == set()


@pytest.mark.postgres
def test_accepting_and_closing_over_the_socket_cost_their_statements(
    make_user: Callable[..., Any], django_capture_on_commit_callbacks: Any
) -> None:
    """``_perform`` as the socket runs it, the agent already read: the session check's one
    statement, then the action's own (test_accept_close_path.py counts those alone)."""
    user = make_user("alice")
    _client, key = _logged_in(user)
    console = _console(user, key)
    interaction, offer = offered(user.agent_profile)
    with (
        CaptureQueriesContext(connection) as accepting,
        django_capture_on_commit_callbacks(execute=True),
    ):
        answer, over = _perform(console, {"action": "accept", "offer_id": offer.pk})
    assert (answer.status, over) == (200, False)
    # the session check, the savepoint and its release, the locks, the change with the offer's
    # answer and the history, the counters after the commit
    assert len(accepting) <= 6, "\n".join(q["sql"][:100] for q in accepting.captured_queries)
    with (
        CaptureQueriesContext(connection) as closing,
        django_capture_on_commit_callbacks(execute=True),
    ):
        answer, over = _perform(
            console, {"action": "close", "interaction_id": interaction.pk, "notes": "ok"}
        )
    assert (answer.status, over) == (200, False)
    # the session check, the scope check, the savepoint and its release, the lock, wrap-up with
    # the idle clock, the closing with the wrap-up row and its history; after the commit the
    # counters and the routing request's look for waiting work
    assert len(closing) <= 9, "\n".join(q["sql"][:100] for q in closing.captured_queries)
    interaction.refresh_from_db()
    assert interaction.status == "closed"


def _presence(agent: AgentProfile, idle_since: Any) -> None:
    ensure_presence(agent)
    AgentPresence.objects.filter(agent=agent).update(idle_since=idle_since)


def _idle_since(agent: AgentProfile) -> Any:
    return AgentPresence.objects.values_list("idle_since", flat=True).get(agent=agent)


def test_longest_idle_counts_from_the_closing(make_user: Callable[..., Any]) -> None:
    user = make_user("alice")
    client, key = _logged_in(user)
    agent = user.agent_profile
    long_ago = timezone.now() - timedelta(hours=3)
    _presence(agent, long_ago)
    for over_http in (False, True):
        interaction, offer = offered(agent)
        assert _perform(_console(user, key), {"action": "accept", "offer_id": offer.pk})[0].ok
        AgentPresence.objects.filter(agent=agent).update(idle_since=long_ago)
        if over_http:
            response = client.post(
                f"/console/interactions/{interaction.pk}/close/",
                headers={"accept": "application/json"},
            )
            assert response.status_code == 200, response.content
        else:
            answer, _over = _perform(
                _console(user, key), {"action": "close", "interaction_id": interaction.pk}
            )
            assert answer.ok, answer
        interaction.refresh_from_db()
        assert interaction.status == "closed"
        assert interaction.wrap_up_at is not None
        assert _idle_since(agent) == interaction.wrap_up_at, over_http


def test_a_closing_from_wrap_up_leaves_the_idle_clock_alone(make_user: Callable[..., Any]) -> None:
    """As before: the clock moved when the work ended (the change to wrap-up), not again."""
    from console.actions import do_close_interaction, do_start_wrap_up

    agent = AgentProfile.objects.select_related("user").get(user=make_user("alice"))
    _presence(agent, timezone.now())
    interaction, offer = offered(agent)
    from routing.offers import do_accept_offer

    do_accept_offer(offer_id=offer.pk, agent=agent)
    do_start_wrap_up(interaction_id=interaction.pk, agent=agent)
    interaction.refresh_from_db()
    assert _idle_since(agent) == interaction.wrap_up_at
    do_close_interaction(interaction_id=interaction.pk, agent=agent, code=None)
    assert _idle_since(agent) == interaction.wrap_up_at


def test_do_touch_idle_leaves_out_only_what_the_caller_writes(
    make_user: Callable[..., Any],
) -> None:
    alice = make_user("alice").agent_profile
    bob = make_user("bob").agent_profile
    then = timezone.now() - timedelta(hours=1)
    now = timezone.now()
    for agent in (alice, bob):
        _presence(agent, then)
    with transaction.atomic(), touching_idle(agent_id=alice.pk, now=now) as write:
        do_touch_idle(agent_ids=[alice.pk], now=now)  # the caller writes this one
        assert _idle_since(alice) == then
        do_touch_idle(agent_ids=[alice.pk, bob.pk], now=now)
        assert _idle_since(bob) == now
        with connection.cursor() as cursor:
            cursor.execute(write[0], write[1])
        assert _idle_since(alice) == now
    # outside the block: written again as before
    later = now + timedelta(seconds=5)
    do_touch_idle(agent_ids=[alice.pk], now=later)
    assert _idle_since(alice) == later


def test_a_stale_change_to_wrap_up_leaves_the_idle_clock(make_user: Callable[..., Any]) -> None:
    """The clock's write goes with the change: a change that fails rolls it back."""
    from interactions.actions import StaleTransition, do_transition_interaction

    agent = AgentProfile.objects.select_related("user").get(user=make_user("alice"))
    then = timezone.now() - timedelta(hours=1)
    _presence(agent, then)
    interaction, _offer = offered(agent)
    stale = Interaction.objects.get(pk=interaction.pk)
    stale.status = "assigned"  # it is offered
    now = timezone.now()
    with (
        pytest.raises(StaleTransition),
        transaction.atomic(),
        touching_idle(agent_id=agent.pk, now=now) as write,
    ):
        do_transition_interaction(
            interaction=stale, to="wrap_up", now=now, savepoint=False, with_write=write
        )
    assert _idle_since(agent) == then
