"""The one place the console sends a reply on an interaction's own channel.

``send_reply`` dispatches per channel; each branch is the channel's public send function:

- e-mail: ``channels_inbound.email.actions.do_send_email_reply`` (threaded, quoted, with the
  subject the agent wrote or the proposed ``Re: ... [case reference]``);
- SMS: ``channels_inbound.sms.actions.do_send_sms`` (refuses after STOP);
- chat: ``channels_inbound.chat.actions.do_send_chat_message`` when the chat channel provides
  it; until then the reply is recorded as an outbound message the chat will deliver;
- phone: no written reply (notes and wrap-up only).

``send_typing`` forwards the agent's typing to the chat channel
(``channels_inbound.chat.actions.do_send_agent_typing``) when it exists.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from django.contrib.auth import get_user_model

from interactions.actions import do_record_message
from interactions.models import Interaction, Message
from kernel.errors import SingleCodeError

logger = logging.getLogger(__name__)


class ReplyError(SingleCodeError, ValueError):
    """The reply cannot be sent (the message says why, in the agent's language; 400)."""

    default_code = "reply_refused"


def _optional(module: str, name: str) -> Any:
    try:
        return getattr(importlib.import_module(module), name, None)
    except ImportError:
        return None


def send_reply(
    *,
    interaction: Interaction,
    author_id: int,
    text: str,
    subject: str | None = None,
    channel: str | None = None,
) -> Message:
    """Send ``text`` to the citizen on ``channel`` (by default ``interaction``'s); returns the
    outbound message.

    ``subject`` is the e-mail subject the agent wrote (``None``: the proposed one); other
    channels have none and ignore it."""
    from django.utils.translation import gettext as _

    text = text.strip()
    if not text:
        raise ReplyError(_("The reply is empty."))
    channel = channel or interaction.channel
    if channel == "email":
        from channels_inbound.email.actions import EmailReplyError, do_send_email_reply

        try:
            return do_send_email_reply(
                interaction_id=interaction.pk, author_id=author_id, text=text, subject=subject
            )
        except EmailReplyError as exc:
            raise ReplyError(str(exc)) from exc
    if channel == "sms":
        from channels_inbound.sms.actions import SmsError, SmsOptedOut, SmsTooLong, do_send_sms

        author = get_user_model().objects.get(pk=author_id)
        try:
            outbound = do_send_sms(interaction=interaction, text=text, author=author)
        except SmsOptedOut as exc:
            raise ReplyError(
                _("This citizen replied STOP: no SMS can be sent until they send START.")
            ) from exc
        except SmsTooLong as exc:
            raise ReplyError(
                _(
                    "An SMS can have at most %(limit)s characters and this reply has "
                    "%(length)s: shorten it, or send it in several SMS."
                )
                % {"limit": exc.limit, "length": exc.length}
            ) from exc
        except SmsError as exc:
            raise ReplyError(str(exc)) from exc
        assert outbound.message is not None  # do_send_sms always records one
        return outbound.message
    if channel == "chat":
        send_chat = _optional("channels_inbound.chat.actions", "do_send_chat_message")
        if send_chat is not None:
            chat_error = _optional("channels_inbound.chat.actions", "ChatError") or ValueError
            try:
                return send_chat(interaction_id=interaction.pk, author_id=author_id, text=text)
            except chat_error as exc:
                raise ReplyError(
                    _("The chat message could not be sent (%(why)s).")
                    % {"why": getattr(exc, "code", str(exc))}
                ) from exc
        author = get_user_model().objects.get(pk=author_id)
        return do_record_message(
            interaction=interaction, direction="outbound", text=text, author=author
        ).message
    raise ReplyError(_("A phone call has no written reply: use notes and wrap-up."))


def send_typing(*, interaction_id: int, agent_id: int) -> None:
    """The agent is typing a chat reply (the chat widget shows it to the citizen)."""
    hook = _optional("channels_inbound.chat.actions", "do_send_agent_typing")
    if hook is None:
        return
    if not Interaction.objects.filter(
        pk=interaction_id, assigned_agent_id=agent_id, channel="chat"
    ).exists():
        return
    try:
        hook(interaction_id=interaction_id, agent_id=agent_id)
    except Exception:  # a typing indicator must never break the console
        logger.exception("typing indicator for interaction %s failed", interaction_id)
