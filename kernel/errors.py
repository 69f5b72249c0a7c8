"""The one family of business errors: ``ApplicationError(code, message)``.

Every action refuses with a subclass of :class:`ApplicationError`: a stable ``code`` (a word a
client may test, e.g. ``illegal_transition``), a ``message`` (what a person reads: user-facing
ones go through Django's i18n where they are raised) and a ``kind``, the sort of refusal. The
kind alone decides the HTTP status, in one table (:data:`HTTP_STATUS`), read by the two places
that turn errors into answers:

- the REST API's exception handler (``kernel.api_errors``): ``{"code", "detail"}``;
- the agent console's endpoints (``console.views``): ``{"ok": false, "message", "code"}``.

The citizen's own answers keep the shapes their scripts read, with the same codes and statuses:
the chat widget's socket sends ``{"type": "error", "code"}`` (the widget words the code from
the strings it was given), its configuration and the chat survey answer ``{"error": code}``
with ``http_status``.

So a view never catches an action's error only to restate its status: it catches one when it
words the refusal differently for its own audience (the console hides whether an offer was
somebody else's or is gone; a supervisor and an agent read a transfer refusal differently).

This module imports nothing of Django: any layer may raise these errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, ClassVar


class ErrorKind(StrEnum):
    """The sort of refusal; its HTTP status is in :data:`HTTP_STATUS`."""

    INVALID = "invalid"  # the request itself is wrong (a value, a field): 400
    FORBIDDEN = "forbidden"  # this caller may not do it: 403
    NOT_FOUND = "not_found"  # nothing of that name (for this caller): 404
    CONFLICT = "conflict"  # the state of the data does not allow it now: 409
    GONE = "gone"  # it existed and is over for good (an expired survey link): 410


HTTP_STATUS: Mapping[ErrorKind, int] = {
    ErrorKind.INVALID: 400,
    ErrorKind.FORBIDDEN: 403,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.CONFLICT: 409,
    ErrorKind.GONE: 410,
}


class ApplicationError(Exception):
    """A refusal of the application: ``code`` says which rule, ``message`` says it in words.

    A subclass sets its ``kind`` (the default sort of its refusals); ``kinds`` gives another
    kind to some codes and ``messages`` a default message to some codes (used when the raise
    gives none).
    """

    kind: ErrorKind = ErrorKind.INVALID
    kinds: ClassVar[Mapping[str, ErrorKind]] = {}
    # a message is a str or a lazy translation (rendered by str() in the active language)
    messages: ClassVar[Mapping[str, object]] = {}

    def __init__(self, code: str, message: object = None) -> None:
        self.code = code
        self.message = message if message is not None else self.messages.get(code, code)
        self.kind = self.kinds.get(code, type(self).kind)
        super().__init__(self.message)

    def __str__(self) -> str:
        return str(self.message)  # a lazy translation is rendered in the active language

    @property
    def http_status(self) -> int:
        return HTTP_STATUS[self.kind]

    def extra(self) -> dict[str, Any]:
        """More fields an answer carries besides ``code`` and its message (none by default)."""
        return {}


class SingleCodeError(ApplicationError):
    """An error with one code, raised with its message alone: ``PresenceError("...")``."""

    default_code: ClassVar[str] = "error"

    def __init__(self, message: object = None) -> None:
        super().__init__(self.default_code, message)
