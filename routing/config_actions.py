"""Writes on routing configuration: skills, queues with their skills and escalation steps.

Each takes the acting user and checks their scope through :mod:`organisations.authz` (raising
:class:`~organisations.authz.OutOfScope`): a record goes into the actor's organisation, every
row it links to (team, overflow queue, skill) is of that organisation and one the actor may
change or read, and a supervisor only creates or changes queues of the teams they supervise.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction

from configuration.models import EscalationStep, Queue, QueueSkill, Skill
from kernel.errors import SingleCodeError
from organisations import authz
from organisations.authz import OutOfScope

SKILL_FIELDS = frozenset({"code", "name", "description"})
QUEUE_FIELDS = frozenset(
    {
        "code",
        "name",
        "priority",
        "sla_target_seconds",
        "sla_target_percent",
        "language",
        "team",
        "overflow_queue",
        "active",
    }
)


class ConfigError(SingleCodeError, ValueError):
    """A configuration change breaks a rule (the message says which; 400)."""

    default_code = "invalid_configuration"


def _only(fields: dict[str, Any], allowed: frozenset[str]) -> None:
    unknown = set(fields) - allowed
    if unknown:
        raise ConfigError(f"unknown fields: {', '.join(sorted(unknown))}")


def _code_free(model: type[Skill] | type[Queue], org_id: int, code: str, pk: int | None) -> None:
    taken = model.objects.filter(organisation_id=org_id, code=code)
    if pk is not None:
        taken = taken.exclude(pk=pk)
    if taken.exists():
        raise ConfigError(f"the code {code!r} is already used in this organisation")


def do_create_skill(*, actor: Any, organisation_id: int | None = None, **fields: Any) -> Skill:
    _only(fields, SKILL_FIELDS)
    org_id = authz.organisation_for_new(actor, organisation_id)
    with transaction.atomic():
        _code_free(Skill, org_id, fields.get("code", ""), None)
        skill = Skill.objects.create(organisation_id=org_id, **fields)
        authz.check_change(actor, skill)  # e.g. a supervisor of no team: rolled back
    return skill


def do_update_skill(*, actor: Any, skill: Skill, changes: dict[str, Any]) -> Skill:
    """Rename or describe a skill. Codes are per organisation: renaming one changes nothing in
    another organisation's queues, agents or flows."""
    _only(changes, SKILL_FIELDS)
    with transaction.atomic():
        locked = Skill.objects.select_for_update().filter(pk=skill.pk).first()
        if locked is None:
            raise OutOfScope(f"no skill #{skill.pk}")
        authz.check_change(actor, locked)
        if "code" in changes:
            _code_free(Skill, locked.organisation_id, changes["code"], locked.pk)
        changed = sorted(k for k, v in changes.items() if getattr(locked, k) != v)
        for name in changed:
            setattr(locked, name, changes[name])
        if changed:
            locked.save(update_fields=changed)
    return locked


def _check_links(
    actor: Any,
    org_id: int,
    fields: dict[str, Any],
    skills: Iterable[dict[str, Any]] | None,
    steps: Iterable[dict[str, Any]] | None,
) -> None:
    team = fields.get("team")
    if team is not None and not authz.can_change(actor, team):
        raise OutOfScope(f"you may not give a queue to team #{team.pk}")
    linked = [fields.get("overflow_queue")]
    linked += [step.get("overflow_to") for step in steps or ()]
    for queue in linked:
        if queue is not None and (
            queue.organisation_id != org_id or not authz.can_view(actor, queue)
        ):
            raise OutOfScope(f"queue #{queue.pk} is outside your scope")
    for item in skills or ():
        if item["skill"].organisation_id != org_id:
            raise OutOfScope(f"skill {item['skill'].code!r} belongs to another organisation")


def _write_children(
    queue: Queue, skills: list[dict[str, Any]] | None, steps: list[dict[str, Any]] | None
) -> None:
    if skills is not None:
        queue.queue_skills.all().delete()
        QueueSkill.objects.bulk_create(QueueSkill(queue=queue, **item) for item in skills)
    if steps is not None:
        queue.escalation_steps.all().delete()
        EscalationStep.objects.bulk_create(EscalationStep(queue=queue, **s) for s in steps)


def do_create_queue(
    *,
    actor: Any,
    fields: dict[str, Any],
    skills: list[dict[str, Any]] | None = None,
    steps: list[dict[str, Any]] | None = None,
    organisation_id: int | None = None,
) -> Queue:
    """A new queue in the actor's organisation (a supervisor's must be one of their teams')."""
    _only(fields, QUEUE_FIELDS)
    team = fields.get("team")
    org_id = authz.organisation_for_new(
        actor,
        organisation_id if organisation_id is not None else getattr(team, "organisation_id", None),
    )
    _check_links(actor, org_id, fields, skills, steps)
    with transaction.atomic():
        _code_free(Queue, org_id, fields.get("code", ""), None)
        queue = Queue.objects.create(organisation_id=org_id, **fields)
        authz.check_change(actor, queue)  # a supervisor's queue must be their team's
        _write_children(queue, skills or [], steps or [])
    return queue


def do_update_queue(
    *,
    actor: Any,
    queue: Queue,
    changes: dict[str, Any],
    skills: list[dict[str, Any]] | None = None,
    steps: list[dict[str, Any]] | None = None,
) -> Queue:
    """Change a queue's settings; ``skills`` / ``steps`` (when given) replace the current ones."""
    _only(changes, QUEUE_FIELDS)
    with transaction.atomic():
        locked = Queue.objects.select_for_update().filter(pk=queue.pk).first()
        if locked is None:
            raise OutOfScope(f"no queue #{queue.pk}")
        authz.check_change(actor, locked)
        changed = sorted(k for k, v in changes.items() if getattr(locked, k) != v)
        _check_links(actor, locked.organisation_id, {k: changes[k] for k in changed}, skills, steps)
        if "code" in changed:
            _code_free(Queue, locked.organisation_id, changes["code"], locked.pk)
        for name in changed:
            setattr(locked, name, changes[name])
        if changed:
            locked.save(update_fields=changed)
            authz.check_change(actor, locked)  # still in the actor's scope after the change
        _write_children(locked, skills, steps)
    return locked
