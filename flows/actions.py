"""Writes on flows: new draft versions and publishing (validated, one published per flow).

A flow belongs to one organisation: the queue and skill codes it names are those of its
organisation (codes are unique per organisation only), and a user changes only the flows
``organisations.authz`` lets them change (``actor`` None: the system itself, e.g. the demo).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext as _

from configuration.models import Queue, Skill
from kernel.errors import ApplicationError, ErrorKind, SingleCodeError
from organisations import authz

from .models import EndpointFlow, Flow, FlowVersion
from .schema import Problem, find_problems


class FlowValidationError(ApplicationError, ValueError):
    """The graph has problems: ``errors``, their technical lines (the message, for the logs and
    API users), and ``problems``, which ``flows.problems.describe`` says in words."""

    def __init__(self, errors: list[str], problems: list[Problem] | None = None) -> None:
        self.errors = errors
        self.problems = problems or []
        super().__init__("invalid_flow", "; ".join(errors))


class FlowNotDraft(SingleCodeError, ValueError):
    """Only a draft version can be edited or published."""

    kind = ErrorKind.CONFLICT
    default_code = "not_draft"


def _user(actor: User | AnonymousUser | None) -> User | None:
    return actor if isinstance(actor, User) else None


def validation_problems(graph: Any, *, organisation_id: int | None = None) -> list[Problem]:
    """Schema, references, loops, and the queue and skill codes (the database part of
    validation) among those of the flow's organisation (None: of any organisation)."""
    queues = Queue.objects.all()
    skills = Skill.objects.all()
    if organisation_id is not None:
        queues = queues.filter(organisation_id=organisation_id)
        skills = skills.filter(organisation_id=organisation_id)
    return find_problems(
        graph,
        known_queues=queues.values_list("code", flat=True),
        known_skills=skills.values_list("code", flat=True),
    )


def validation_errors(graph: Any, *, organisation_id: int | None = None) -> list[str]:
    """:func:`validation_problems` as technical lines."""
    return [p.raw for p in validation_problems(graph, organisation_id=organisation_id)]


def _check_actor(actor: User | AnonymousUser | None, flow: Flow) -> None:
    """A person changes only the flows of their scope (raises ``authz.OutOfScope``)."""
    if actor is not None:
        authz.check_change(actor, flow)


def do_create_flow_version(
    *, flow: Flow, graph: dict[str, Any], note: str = "", actor: User | AnonymousUser | None = None
) -> FlowVersion:
    _check_actor(actor, flow)
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
    flow = Flow.objects.get(pk=version.flow_id)
    _check_actor(actor, flow)
    problems = validation_problems(version.graph, organisation_id=flow.organisation_id)
    if problems:
        raise FlowValidationError([p.raw for p in problems], problems)
    with transaction.atomic():
        flow = Flow.objects.select_for_update().get(pk=version.flow_id)
        locked = FlowVersion.objects.select_for_update().get(pk=version.pk)
        if locked.status != FlowVersion.Status.DRAFT:
            raise FlowNotDraft(
                _("Version %(n)s is not a draft: only a draft can be published.")
                % {"n": locked.number}
            )
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


def do_bind_flow(*, flow: Flow, endpoint: Any, actor: User | AnonymousUser | None = None) -> Any:
    """Answer ``endpoint`` with ``flow``: both of one organisation, both in the actor's scope."""
    from organisations.models import OrganisationMismatch

    _check_actor(actor, flow)
    if actor is not None:
        authz.check_change(actor, endpoint)
    if endpoint.organisation_id != flow.organisation_id:
        raise OrganisationMismatch("a flow answers only its own organisation's endpoints")
    binding, _created = EndpointFlow.objects.update_or_create(
        endpoint=endpoint, defaults={"flow": flow}
    )
    return binding


def do_unbind_flow(*, flow: Flow, endpoint: Any, actor: User | AnonymousUser | None = None) -> bool:
    """``endpoint`` no longer runs ``flow`` (its contacts go straight to its queue); False when
    it ran another flow or none (nothing changed)."""
    _check_actor(actor, flow)
    if actor is not None:
        authz.check_change(actor, endpoint)
    deleted, _rows = EndpointFlow.objects.filter(endpoint=endpoint, flow=flow).delete()
    return deleted > 0
