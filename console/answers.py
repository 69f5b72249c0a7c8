"""The console's most frequent actions (accept or decline an offer, close an interaction), with
what each answers: one definition for both ways the console can ask.

The HTTP endpoints (``console.views``: forms without JavaScript, the API-minded) and the console
socket (``console.consumers``: the console's script while its socket is open, without a
request through the middleware chain for each action) call these functions with the agent who
acts and turn the :class:`Answer` into a JSON body, a redirect with a message, or a socket
frame. The checks are the same on both ways: an offer made to someone else answers exactly
like one that is gone; an interaction outside what ``organisations.authz`` lets the user see is
"not found"; a business refusal (``kernel.errors.ApplicationError``) answers its own message,
status and code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.utils.translation import gettext as _

from agents.models import AgentProfile
from interactions.lifecycle import IllegalTransition
from interactions.models import Interaction
from kernel.errors import ApplicationError
from organisations import authz
from routing.errors import RoutingError
from routing.offers import do_accept_offer, do_decline_offer

from .actions import ConsoleError, do_close_interaction
from .models import WrapUpCode


@dataclass(frozen=True)
class Answer:
    """What an action answers: an HTTP status, a message in the user's language, and data for
    the console's script (``interaction_id`` after an accept, an error's ``code``)."""

    status: int
    message: str
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status < 400

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "message": self.message, **self.data}


def refused(exc: ApplicationError) -> Answer:
    """A business refusal: its message, the status of its kind, its code."""
    return Answer(exc.http_status, str(exc), {"code": exc.code})


def wrap_up_codes(user: Any, organisation_id: int) -> Any:
    """The active wrap-up codes of the organisation that ``user`` may pick."""
    return authz.visible(user, WrapUpCode).filter(active=True, organisation_id=organisation_id)


def accept(agent: AgentProfile, offer_id: int) -> Answer:
    try:
        offer = do_accept_offer(offer_id=offer_id, agent=agent)
    except RoutingError:
        # not the generic mapping: an offer made to someone else (or unknown) answers exactly
        # like one that is gone, so its id tells nothing
        return Answer(409, _("This offer is no longer available."))
    return Answer(200, _("Offer accepted."), {"interaction_id": offer.interaction_id})


def decline(agent: AgentProfile, offer_id: int) -> Answer:
    try:
        do_decline_offer(offer_id=offer_id, agent=agent)
    except RoutingError:
        return Answer(409, _("This offer is no longer available."))
    return Answer(200, _("Offer declined."))


class NotInScope(Exception):
    """The interaction is not one the user may see (the HTTP endpoint answers 404)."""


def in_scope(user: Any, interaction_id: int) -> bool:
    """Whether ``user`` may see the interaction (``organisations.authz``): another
    organisation's, or one authz hides, is "not found" whatever the action."""
    return authz.visible(user, Interaction).filter(pk=interaction_id).exists()


def close(user: Any, agent: AgentProfile, interaction_id: int, code: str, notes: str) -> Answer:
    """Close an interaction the agent handles, with an optional wrap-up code (its id, as the
    form sends it) and notes. Raises :class:`NotInScope` for an interaction ``user`` may not
    see."""
    if not in_scope(user, interaction_id):
        raise NotInScope(interaction_id)
    wrap_up = None
    if code:
        # the agent's organisation is the one of every interaction they hold
        wrap_up = (
            wrap_up_codes(user, agent.organisation_id)
            .filter(pk=int(code) if code.isdigit() else 0)
            .first()
        )
        if wrap_up is None:
            return Answer(400, _("Choose a wrap-up code from the list."))
    try:
        do_close_interaction(interaction_id=interaction_id, agent=agent, code=wrap_up, notes=notes)
    except (ConsoleError, IllegalTransition):
        return Answer(409, _("This interaction cannot be closed now."))
    return Answer(200, _("Interaction closed."))
