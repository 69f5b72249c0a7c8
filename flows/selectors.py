"""Reads on flows."""

from __future__ import annotations

from django.db.models import F

from .models import EndpointFlow, FlowVersion


def published_version_for_endpoint(endpoint_id: int) -> FlowVersion | None:
    binding = (
        EndpointFlow.objects.select_related("flow__published_version")
        # never another organisation's flow, whatever was bound (do_bind_flow refuses it)
        .filter(endpoint_id=endpoint_id, flow__organisation_id=F("endpoint__organisation_id"))
        .first()
    )
    if binding is None:
        return None
    return binding.flow.published_version
