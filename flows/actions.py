"""Writes on flows: new draft versions and publishing (validated, one published per flow)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from routing.models import Queue

from .models import Flow, FlowVersion
from .schema import validate_graph


class FlowValidationError(ValueError):
    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__("; ".join(errors))


class FlowNotDraft(ValueError):
    """Only a draft version can be edited or published."""


def _user(actor: User | AnonymousUser | None) -> User | None:
    return actor if isinstance(actor, User) else None


def validation_errors(graph: Any) -> list[str]:
    """Schema, references, loops and queue codes (the database part of validation)."""
    return validate_graph(graph, known_queues=Queue.objects.values_list("code", flat=True))


def do_create_flow_version(
    *, flow: Flow, graph: dict[str, Any], note: str = "", actor: User | AnonymousUser | None = None
) -> FlowVersion:
    with transaction.atomic():
        Flow.objects.select_for_update().filter(pk=flow.pk).first()
        last = flow.versions.aggregate(m=Max("number"))["m"] or 0
        return FlowVersion.objects.create(
            flow=flow, number=last + 1, graph=graph, note=note, created_by=_user(actor)
        )


def do_publish_flow_version(
    *, version: FlowVersion, actor: User | AnonymousUser | None = None
) -> FlowVersion:
    """Validate ``version`` and make it the one its flow runs; the previous one is archived.

    Raises :class:`FlowValidationError` with every problem found."""
    errors = validation_errors(version.graph)
    if errors:
        raise FlowValidationError(errors)
    with transaction.atomic():
        flow = Flow.objects.select_for_update().get(pk=version.flow_id)
        locked = FlowVersion.objects.select_for_update().get(pk=version.pk)
        if locked.status != FlowVersion.Status.DRAFT:
            raise FlowNotDraft(f"version {locked.number} is {locked.status}, not a draft")
        FlowVersion.objects.filter(flow=flow, status=FlowVersion.Status.PUBLISHED).update(
            status=FlowVersion.Status.ARCHIVED
        )
        locked.status = FlowVersion.Status.PUBLISHED
        locked.published_at = timezone.now()
        locked.published_by = _user(actor)
        locked.save(update_fields=["status", "published_at", "published_by"])
        flow.published_version = locked
        flow.save(update_fields=["published_version", "updated_at"])
    version.refresh_from_db()
    return version
