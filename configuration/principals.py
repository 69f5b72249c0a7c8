"""What the authorization layer (``organisations.authz``) learns from the configuration app to
build a user's principal: which teams a supervisor supervises. Provided from
``ConfigurationConfig.ready()``."""

from __future__ import annotations

from .models import Team


def teams_of_supervisor(user_id: int, organisation_id: int) -> frozenset[int]:
    return frozenset(
        Team.objects.filter(supervisors=user_id, organisation_id=organisation_id).values_list(
            "pk", flat=True
        )
    )
