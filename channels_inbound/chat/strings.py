"""The widget's user interface text, translated on the server (Django i18n, French first).

The widget script holds no text of its own: it receives these strings with its configuration
in the visitor's language. ``{n}``, ``{name}`` and ``{email}`` are filled in by the script.
"""

from __future__ import annotations

from django.utils.translation import gettext as _
from django.utils.translation import override, pgettext

from .errors import ChatError

LANGUAGES = ("fr", "en")


def widget_language(requested: str | None) -> str:
    code = (requested or "").strip().lower()[:2]
    return code if code in LANGUAGES else "fr"


def widget_strings(language: str) -> dict[str, str]:
    with override(language):
        return {
            "launcher": _("Chat with an adviser"),
            "title": _("Online chat"),
            "close": _("Minimise the chat window"),
            "prechat_intro": _(
                "Before we start, tell us your name and what your request is about."
            ),
            "name_label": _("Your name"),
            "topic_label": _("What is your request about?"),
            "start": _("Start the conversation"),
            "required": _("This field is required."),
            "log_label": _("Conversation"),
            "you": _("You"),
            "bot": _("Virtual assistant"),
            "agent": _("Adviser"),
            "choices_label": _("Choose an answer"),
            "message_label": _("Your message"),
            "send": _("Send"),
            "waiting": _("Thank you for waiting: an adviser will answer you."),
            "position_next": _("You are next in the queue."),
            "position": _("Your position in the queue: {n}."),
            "wait_less_minute": _("Estimated wait: less than a minute."),
            "wait_one_minute": _("Estimated wait: about 1 minute."),
            "wait_minutes": _("Estimated wait: about {n} minutes."),
            # The citizen reads "adviser" (« conseiller »), never an internal word like "agent".
            "agent_joined": _("An adviser is answering you: {name}."),
            "agent_joined_anonymous": _("An adviser is answering you."),
            "agent_typing": _("{name} is typing…"),
            "agent_typing_anonymous": _("An adviser is typing…"),
            # Before each message's time: "sent at 14:05" for screen readers.
            "sent_at": _("sent at"),
            "ended": _("The conversation is over."),
            "end": _("End the conversation"),
            "new": _("Start a new conversation"),
            "transcript": _("Receive this conversation by e-mail"),
            "email_label": _("Your e-mail address"),
            "transcript_send": _("Send me the conversation"),
            "transcript_sent": _(
                "To receive the conversation, open the link we have just sent to {email}."
            ),
            **{f"error_{code}": str(message) for code, message in ChatError.messages.items()},
            "error_rate_limited": _("You are sending messages too quickly. Please wait a moment."),
            "error_generic": _("Something went wrong. Please try again."),
            "reconnecting": _("Connection lost. Reconnecting…"),
            # Under a message of the citizen's until the server has it (never lost meanwhile).
            "sending": pgettext("chat widget", "Sending…"),
            "not_sent_yet": pgettext(
                "chat widget", "Not sent yet: it will be sent automatically as soon as possible."
            ),
            "not_sent": pgettext("chat widget", "Not sent: {reason}"),
            "new_message": _("New message"),
        }
