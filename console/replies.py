"""The one place the console sends a reply on an interaction's own channel.

``send_reply`` dispatches per channel; each branch is the channel's public send function:

- e-mail: ``channels_inbound.email.actions.do_send_email_reply`` (threaded, quoted, with the
  subject the agent wrote or the proposed ``Re: ... [case reference]``);
- SMS: ``channels_inbound.sms.actions.do_send_sms`` (refuses after STOP);
- chat: ``channels_inbound.chat.actions.do_send_chat_message``;
- phone: no written reply (notes and wrap-up only).

A channel's refusal (an ``ApplicationError``) comes back as a :class:`ReplyError` in the
agent's words (400): nothing was sent.

``send_typing`` forwards the agent's typing to the chat channel
(``channels_inbound.chat.actions.do_send_agent_typing``).
"""

from __future__ import annotations

import logging

from django.contrib.auth import get_user_model
from django.utils.translation import gettext as _

from channels_inbound.chat.actions import ChatError, do_send_agent_typing, do_send_chat_message
from channels_inbound.email.actions import EmailReplyError, do_send_email_reply
from channels_inbound.sms.actions import SmsError, do_send_sms
from interactions.channels import Channel
from interactions.models import Interaction, Message
from kernel.errors import SingleCodeError

logger = logging.getLogger(__name__)


class ReplyError(SingleCodeError, ValueError):
    """The reply cannot be sent (the message says why, in the agent's language; 400)."""

    default_code = "reply_refused"


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
    text = text.strip()
    if not text:
        raise ReplyError(_("The reply is empty."))
    channel = channel or interaction.channel
    if channel == Channel.EMAIL:
        try:
            return do_send_email_reply(
                interaction_id=interaction.pk, author_id=author_id, text=text, subject=subject
            )
        except EmailReplyError as exc:
            raise ReplyError(str(exc)) from exc
    if channel == Channel.SMS:
        author = get_user_model().objects.get(pk=author_id)
        try:
            outbound = do_send_sms(interaction=interaction, text=text, author=author)
        except SmsError as exc:  # STOP, too long, no number: its message is the agent's
            raise ReplyError(str(exc)) from exc
        assert outbound.message is not None  # do_send_sms always records one
        return outbound.message
    if channel == Channel.CHAT:
        try:
            return do_send_chat_message(
                interaction_id=interaction.pk, author_id=author_id, text=text
            )
        except ChatError as exc:  # its message is the citizen's: the agent reads the code
            raise ReplyError(
                _("The chat message could not be sent (%(why)s).") % {"why": exc.code}
            ) from exc
    raise ReplyError(_("A phone call has no written reply: use notes and wrap-up."))


def send_typing(*, interaction_id: int, agent_id: int) -> None:
    """The agent is typing a chat reply (the chat widget shows it to the citizen, if the agent
    handles that chat)."""
    try:
        do_send_agent_typing(interaction_id=interaction_id, agent_id=agent_id)
    except Exception:  # a typing indicator must never break the console
        logger.exception("typing indicator for interaction %s failed", interaction_id)
