"""The interaction life cycle (pure: no database).

``new -> queued -> offered -> assigned -> wrap_up -> closed``, with ``abandoned`` (the citizen
hung up or left while waiting), ``offered -> queued`` when an offer is declined or expires (the
interaction is re-queued without that agent), and ``transferred`` (an agent hands it back to a
queue or to a named agent). A closed interaction can be reopened when the citizen writes again on
its thread (e-mail reply, SMS within the window).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import models
from django.utils.translation import gettext_lazy as _

from kernel.errors import ApplicationError, ErrorKind


class Status(models.TextChoices):
    NEW = "new", _("new")
    QUEUED = "queued", _("waiting")
    OFFERED = "offered", _("offered")
    ASSIGNED = "assigned", _("in progress")
    WRAP_UP = "wrap_up", _("wrap-up")
    TRANSFERRED = "transferred", _("being transferred")
    CLOSED = "closed", _("closed")
    ABANDONED = "abandoned", _("abandoned")


ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    Status.NEW: frozenset({Status.QUEUED, Status.ASSIGNED, Status.CLOSED, Status.ABANDONED}),
    Status.QUEUED: frozenset({Status.OFFERED, Status.ASSIGNED, Status.ABANDONED, Status.CLOSED}),
    Status.OFFERED: frozenset({Status.ASSIGNED, Status.QUEUED, Status.ABANDONED}),
    Status.ASSIGNED: frozenset({Status.WRAP_UP, Status.TRANSFERRED, Status.CLOSED}),
    Status.TRANSFERRED: frozenset({Status.QUEUED, Status.OFFERED, Status.ABANDONED}),
    Status.WRAP_UP: frozenset({Status.CLOSED}),
    Status.CLOSED: frozenset({Status.QUEUED}),
    Status.ABANDONED: frozenset(),
}

# The Interaction field stamped when the status is entered (the first time for queued).
TIMESTAMP_FIELD: dict[str, str] = {
    Status.QUEUED: "queued_at",
    Status.OFFERED: "offered_at",
    Status.ASSIGNED: "assigned_at",
    Status.WRAP_UP: "wrap_up_at",
    Status.TRANSFERRED: "transferred_at",
    Status.CLOSED: "closed_at",
    Status.ABANDONED: "abandoned_at",
}

# A change to one of these statuses comes with the interaction's :class:`TransitionHistory`
# (``interactions.signals.interaction_status_changed``, ``history``) when the write could read
# it in the same statement (the counters of answers and closings need it).
HISTORY_STATUSES = frozenset({Status.ASSIGNED, Status.CLOSED, Status.ABANDONED})


@dataclass(frozen=True)
class TransitionHistory:
    """When the interaction was answered (moved to ``assigned``) and closed, oldest first,
    the change it comes with included: what its transition rows say after the change."""

    answered: tuple[datetime, ...]
    closed: tuple[datetime, ...]


WAITING_STATUSES = frozenset({Status.NEW, Status.QUEUED, Status.OFFERED, Status.TRANSFERRED})
OPEN_STATUSES = WAITING_STATUSES | {Status.ASSIGNED, Status.WRAP_UP}


class IllegalTransition(ApplicationError):
    """Raised when a status change is not part of the life cycle (409; the answer carries the
    interaction's current ``status``)."""

    kind = ErrorKind.CONFLICT

    def __init__(self, current: str, target: str) -> None:
        self.current = current
        self.target = target
        super().__init__(
            "illegal_transition", f"an interaction cannot go from {current!r} to {target!r}"
        )

    def extra(self) -> dict[str, Any]:
        return {"status": self.current}


def check_transition(current: str, target: str) -> None:
    if target not in ALLOWED_TRANSITIONS.get(current, frozenset()):
        raise IllegalTransition(current, target)
