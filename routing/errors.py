"""The router's refusals (``kernel.errors.ApplicationError``): answering an offer, a
transfer or a reassignment. Every routing action module raises these."""

from __future__ import annotations

from kernel.errors import ApplicationError, ErrorKind, SingleCodeError


class RoutingError(ApplicationError):
    """An offer, a transfer or a reassignment cannot be made as asked (``code`` says why)."""

    kind = ErrorKind.CONFLICT


class OfferNotFound(RoutingError, SingleCodeError):
    kind = ErrorKind.NOT_FOUND
    default_code = "offer_not_found"


class OfferNotYours(RoutingError, SingleCodeError):
    """The offer was made to another agent."""

    kind = ErrorKind.FORBIDDEN
    default_code = "offer_not_yours"


class OfferNotPending(RoutingError, SingleCodeError):
    """The offer was already answered, withdrawn or has expired."""

    default_code = "offer_not_pending"


class TransferError(RoutingError):
    """A transfer or a reassignment cannot be made; ``code`` says why (``not_yours``,
    ``other_organisation``, ``note_too_long``, ``inactive_queue``, ``same_agent``,
    ``not_available``, ``channel_off``, ``no_room``, ``not_open``). A conflict with the state of
    the interaction or of the target (409), but a note too long is a wrong request (400). The
    console and the supervisors' pages word the codes for their readers."""

    kinds = {"note_too_long": ErrorKind.INVALID}
