"""The router's claims told to each organisation's wallboards."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any


def on_claims_published(*, rows: list[tuple[int, int, str, bool]], now: datetime, **_: Any) -> None:
    """The router's claims, per organisation: its wallboards refresh, the others hear nothing
    (the router's own ``routing.claimed`` names no organisation, so it reaches no wallboard)."""
    from kernel import event_catalogue
    from kernel.events import (
        SUPERVISORS_GROUP,
        interaction_organisations,
        publish_many,
    )

    orgs = interaction_organisations({interaction_id for interaction_id, *_rest in rows})
    offered: Counter[int] = Counter()
    assigned: Counter[int] = Counter()
    for interaction_id, _agent, _channel, accepted in rows:
        org = orgs.get(interaction_id)
        if org is not None:
            (assigned if accepted else offered)[org] += 1
    publish_many(
        [
            (
                *event_catalogue.routing_claimed(
                    organisation_id=org, offered=offered[org], assigned=assigned[org]
                ),
                [SUPERVISORS_GROUP],
            )
            for org in sorted(set(offered) | set(assigned))
        ]
    )
