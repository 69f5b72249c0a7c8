"""The migration that brought organisations keeps every record and splits nothing real.

An installation from before organisations was one data controller: its data goes to one
organisation. The demo (a CAF, a mairie and a préfecture as teams) becomes three organisations,
and what two of them shared (a skill, a citizen) is copied so no link crosses bodies.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

BEFORE = [
    ("agents", "0003_agentpresence"),
    ("routing", "0002_offer_routingdecision_offer_offer_pending_idx_and_more"),
    ("contacts", "0002_identity_removal"),
    ("interactions", "0003_interaction_interaction_queued_order_idx"),
    ("channels_inbound", "0001_initial"),
    ("channels_chat", "0001_initial"),
    ("flows", "0001_initial"),
    ("console", "0001_initial"),
    ("organisations", None),
]
AFTER = "0002_assign_existing_data"


@pytest.fixture
def old_state() -> Iterator[Any]:
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    targets = [(app, name) for app, name in BEFORE if name is not None]
    yield MigrationExecutor(connection).loader.project_state(targets).apps
    call_command("migrate", verbosity=0)  # back to the latest for the next tests


def _migrate_forward() -> Any:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([("organisations", AFTER)])
    return MigrationExecutor(connection).loader.project_state(("organisations", AFTER)).apps


def _world(apps: Any, teams: list[str], skills: list[str]) -> dict[str, Any]:
    team_model = apps.get_model("agents", "Team")
    skill_model = apps.get_model("routing", "Skill")
    queue_model = apps.get_model("routing", "Queue")
    queue_skill = apps.get_model("routing", "QueueSkill")
    contact_model = apps.get_model("contacts", "Contact")
    identity_model = apps.get_model("contacts", "ContactIdentity")
    interaction_model = apps.get_model("interactions", "Interaction")
    created = {s: skill_model.objects.create(code=s, name=s) for s in skills}
    citizen = contact_model.objects.create(display_name="Marie Dupont")
    identity_model.objects.create(contact=citizen, kind="phone", value="+33612345678")
    queues = []
    for index, name in enumerate(teams):
        team = team_model.objects.create(name=name)
        queue = queue_model.objects.create(code=f"q{index}", name=name, team=team)
        queue_skill.objects.create(queue=queue, skill=created["accueil-general"], min_level=1)
        interaction_model.objects.create(channel="sms", contact=citizen, queue=queue)
        queues.append(queue)
    return {"citizen": citizen, "queues": queues}


def test_an_existing_installation_becomes_one_organisation(old_state: Any) -> None:
    _world(old_state, ["Accueil", "Back-office"], ["accueil-general", "rsa"])
    apps = _migrate_forward()
    orgs = apps.get_model("organisations", "Organisation").objects.all()
    assert [o.name for o in orgs] == ["Mon organisation"]
    interactions = apps.get_model("interactions", "Interaction").objects.all()
    assert interactions.count() == 2
    assert {i.organisation_id for i in interactions} == {orgs[0].pk}
    contacts = apps.get_model("contacts", "Contact").objects.all()
    assert contacts.count() == 1  # one citizen stays one record
    assert apps.get_model("routing", "Skill").objects.count() == 2


def test_the_demo_becomes_three_bodies_with_nothing_shared(old_state: Any) -> None:
    names = ["CAF du Rhône", "Mairie de Villeurbanne", "Préfecture du Rhône"]
    _world(old_state, names, ["accueil-general", "caf-allocations"])
    apps = _migrate_forward()
    org_model = apps.get_model("organisations", "Organisation")
    assert sorted(org_model.objects.values_list("name", flat=True)) == sorted(names)
    # the citizen who wrote to the three bodies is one record in each
    contacts = apps.get_model("contacts", "Contact").objects.all()
    assert contacts.count() == 3
    assert len({c.organisation_id for c in contacts}) == 3
    identities = apps.get_model("contacts", "ContactIdentity").objects.all()
    assert {(i.organisation_id, i.value) for i in identities} == {
        (c.organisation_id, "+33612345678") for c in contacts
    }
    for interaction in apps.get_model("interactions", "Interaction").objects.all():
        assert interaction.contact.organisation_id == interaction.organisation_id
        assert interaction.queue.organisation_id == interaction.organisation_id
    # the shared skill is copied into each body, and each queue needs its own copy
    shared = apps.get_model("routing", "Skill").objects.filter(code="accueil-general")
    assert shared.count() == 3
    for link in apps.get_model("routing", "QueueSkill").objects.select_related("skill", "queue"):
        assert link.skill.organisation_id == link.queue.organisation_id
