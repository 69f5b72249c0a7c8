"""The queue a flow hands a contact to, for every channel that runs a flow (voice, chat)."""

from __future__ import annotations

import logging

from configuration.models import Queue

logger = logging.getLogger(__name__)


def named_queue(organisation_id: int | None, code: str, *, source: str) -> Queue | None:
    """The queue a flow's step names by ``code``, or None (no code, or no such queue: logged
    with ``source``, e.g. "call CA12"). Queue codes are per organisation: the endpoint's
    organisation (the number's, the widget's) decides; the caller falls back on the endpoint's
    own queue."""
    if not code:
        return None
    queue = (
        Queue.objects.filter(organisation_id=organisation_id, code=code).first()
        if organisation_id is not None
        else None
    )
    if queue is None:
        logger.error("flow of %s names unknown queue %r", source, code)
    return queue
