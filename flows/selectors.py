"""Reads on flows."""

from __future__ import annotations

from .models import EndpointFlow, FlowVersion


def published_version_for_endpoint(endpoint_id: int) -> FlowVersion | None:
    binding = (
        EndpointFlow.objects.select_related("flow__published_version")
        .filter(endpoint_id=endpoint_id)
        .first()
    )
    if binding is None:
        return None
    return binding.flow.published_version
