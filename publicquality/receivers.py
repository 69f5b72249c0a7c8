""" "Follow my request" at the end of a web chat: once a chat that reached a queue ends (wrap-up,
closure or abandon), the citizen's window gets a follow-up link (``chat.follow``, shown by the
widget under "The conversation is over")."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _

from channels_inbound.chat.events import chat_group
from channels_inbound.chat.models import ChatSession
from interactions.channels import Channel
from interactions.lifecycle import Status
from interactions.models import Interaction
from kernel import event_catalogue
from kernel.events import publish

from .follow import issue_follow_token

ENDED = frozenset({Status.WRAP_UP, Status.CLOSED, Status.ABANDONED})


def offer_follow_link_at_chat_end(
    *, interaction: Interaction, from_status: str, to_status: str, now: datetime, **kw: Any
) -> None:
    if (
        interaction.channel != Channel.CHAT
        or to_status not in ENDED
        or from_status in ENDED
        or interaction.queued_at is None
        or not getattr(settings, "FOLLOW_LINKS", True)
    ):
        return
    sessions = list(
        ChatSession.objects.filter(interaction_id=interaction.pk).values_list("pk", "language")
    )
    if not sessions:
        return
    token = issue_follow_token(interaction)
    # In the language of the citizen's window (the interaction's is the routing language a flow
    # may set: an English window of a French-speaking service still reads English).
    for session_id, window_language in sessions:
        language = window_language if window_language in ("fr", "en") else "fr"
        with translation.override(language):
            text = _("Follow your request online")
        publish(
            *event_catalogue.chat_follow(
                path=reverse("publicquality:follow", kwargs={"token": token}) + f"?lang={language}",
                text=text,
            ),
            groups=[chat_group(session_id)],
        )


def connect() -> None:
    from interactions.signals import interaction_status_changed

    interaction_status_changed.connect(
        offer_follow_link_at_chat_end, dispatch_uid="publicquality.chat_end"
    )
