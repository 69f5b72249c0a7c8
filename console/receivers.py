"""Logout and disabled accounts close the console's sockets and take the agent offline."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.db import transaction
from django.db.models.signals import post_save
from django.http import HttpRequest

from kernel.socket_groups import close_sockets, session_group, user_group

from .middleware import touch


def _go_offline(user: Any) -> None:
    """Offline, and the offers still ringing withdrawn (their contacts wait again at once,
    rather than ring on a closed console until they expire), as a supervisor's logout does."""
    from agents.models import AgentPresence, AgentProfile, AgentState
    from agents.presence import do_set_agent_state
    from routing.offers import do_cancel_agent_offers

    profile = AgentProfile.objects.filter(user=user).first()
    if profile is None:
        return
    do_cancel_agent_offers(agent_id=profile.pk)
    if AgentPresence.objects.filter(agent=profile).exclude(state=AgentState.OFFLINE).exists():
        do_set_agent_state(agent=profile, state=AgentState.OFFLINE)


def on_logged_in(sender: Any, request: HttpRequest, user: Any, **_: Any) -> None:
    touch(request)  # the idle clock starts at login


def on_logged_out(sender: Any, request: HttpRequest, user: Any, **_: Any) -> None:
    key = request.session.session_key
    if user is not None:
        _go_offline(user)
    if key:
        close_sockets(session_group(key), reason="logout")


def on_user_saved(sender: Any, instance: Any, created: bool, **_: Any) -> None:
    if created or instance.is_active:
        return

    def after() -> None:
        close_sockets(user_group(instance.pk), reason="disabled")

    _go_offline(instance)
    transaction.on_commit(after)


def connect() -> None:
    user_logged_in.connect(on_logged_in, dispatch_uid="console.logged_in")
    user_logged_out.connect(on_logged_out, dispatch_uid="console.logged_out")
    post_save.connect(on_user_saved, sender=get_user_model(), dispatch_uid="console.user_saved")
