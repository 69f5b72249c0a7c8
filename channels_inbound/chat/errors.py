"""The chat's refusals (``kernel.errors.ApplicationError``): what the widget, its socket and
the console are told when a chat request cannot be satisfied.

The socket answers ``{"type": "error", "code"}`` and the widget shows the message of that code,
which it received with its configuration (``strings.widget_strings``: ``error_<code>``, from
:attr:`ChatError.messages`, in the visitor's language); a code without a message there reads as
the generic error.
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from kernel.errors import ApplicationError, ErrorKind


class ChatError(ApplicationError):
    """A request the chat cannot satisfy; ``code`` says why, ``detail`` is for the logs."""

    kinds = {
        "unknown_widget": ErrorKind.NOT_FOUND,
        "origin_not_allowed": ErrorKind.FORBIDDEN,
        "not_now": ErrorKind.CONFLICT,
        "ended": ErrorKind.CONFLICT,
        "unavailable": ErrorKind.CONFLICT,
        "transcript_limit": ErrorKind.CONFLICT,
        "transcript_address": ErrorKind.CONFLICT,
        "transcript_address_limit": ErrorKind.CONFLICT,
    }
    # What the citizen reads (the widget's error_<code> strings).
    messages = {
        "email": _("Enter a valid e-mail address."),
        "transcript_limit": _("No more transcripts can be sent for this conversation."),
        "transcript_address": _(
            "This conversation can only be sent to the first address you gave."
        ),
        "transcript_address_limit": _(
            "Too many e-mails have been sent to this address recently. Please try again later."
        ),
        "too_long": _("Your message is too long."),
        "ended": _("This conversation is over. Start a new one to write to us."),
        "unavailable": _("The chat is unavailable at the moment. Please try later."),
    }

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(code)
        self.detail = detail or code
