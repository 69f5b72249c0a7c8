"""Moving skills, teams and queues to the configuration app loses nothing of an installation.

The tables stay where they are, so the rows stay; the content types are renamed, so the
permissions granted on them (a role, a user) and the admin history follow the models.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def _migrate(targets: list[tuple[str, str | None]] | None = None) -> Any:
    """Migrate to ``targets`` (every app's latest when None); the models as they are then."""
    executor = MigrationExecutor(connection)
    executor.migrate(targets if targets is not None else executor.loader.graph.leaf_nodes())
    after = MigrationExecutor(connection)
    return after.loader.project_state(list(after.loader.applied_migrations)).apps


def test_rows_and_granted_permissions_survive_the_move() -> None:
    try:
        # Before the move (every migration of it undone, with what depends on them).
        old = _migrate([("configuration", None), ("agents", "0007_agentstatechange")])
        content_type = old.get_model("contenttypes", "ContentType")
        permission = old.get_model("auth", "Permission")
        group_model = old.get_model("auth", "Group")
        organisation = old.get_model("organisations", "Organisation").objects.create(
            name="CAF du Rhône", slug="caf-du-rhone-move"
        )
        queue = old.get_model("routing", "Queue").objects.create(
            organisation=organisation, code="prestations-move", name="Prestations"
        )
        team = old.get_model("agents", "Team").objects.create(
            organisation=organisation, name="Accueil (move)"
        )
        change_queue = permission.objects.get(
            content_type=content_type.objects.get(app_label="routing", model="queue"),
            codename="change_queue",
        )
        change_team = permission.objects.get(
            content_type=content_type.objects.get(app_label="agents", model="team"),
            codename="change_team",
        )
        group = group_model.objects.create(name="Superviseurs (move)")
        group.permissions.set([change_queue, change_team])

        apps = _migrate()

        assert apps.get_model("configuration", "Queue").objects.get(pk=queue.pk).code == (
            "prestations-move"
        )
        assert apps.get_model("configuration", "Team").objects.get(pk=team.pk).name == (
            "Accueil (move)"
        )
        granted = set(
            apps.get_model("auth", "Group")
            .objects.get(pk=group.pk)
            .permissions.values_list("content_type__app_label", "codename")
        )
        assert granted == {("configuration", "change_queue"), ("configuration", "change_team")}
        stale = apps.get_model("contenttypes", "ContentType").objects.filter(
            app_label__in=("routing", "agents"), model__in=("queue", "skill", "team")
        )
        assert not stale.exists()
    finally:
        call_command("migrate", verbosity=0)
