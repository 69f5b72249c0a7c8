"""The access log on the embedded SQLite default: the same triggers as on PostgreSQL (written by
``privacy.triggers.install_sqlite`` after ``migrate``): configuration changes are logged,
``QuerySet.update()`` included, with the user of the request; the log refuses UPDATE and DELETE
except inside the retention purge.

The SQLite tests run when the suite runs on SQLite; on PostgreSQL (CI), the last test runs
them in a child pytest on a fresh SQLite database, so CI checks them too."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.db import IntegrityError, connection, transaction

from configuration.models import Queue, Skill
from privacy.models import AccessLog

on_sqlite = pytest.mark.skipif(settings.IS_POSTGRES, reason="the SQLite default's triggers")


def _org() -> Any:
    from organisations.models import Organisation

    return Organisation.objects.create(name="CAF", slug="caf")


@on_sqlite
@pytest.mark.django_db
def test_sqlite_configuration_changes_are_logged_with_their_user(roles: None) -> None:
    from privacy.middleware import set_actor
    from tests.integration.test_api_scope import _person

    org = _org()
    supervisor = _person("caf-sup", "supervisor", org, None, profile=False)
    queue = Queue.objects.create(code="accueil", name="Accueil", organisation=org)
    skill = Skill.objects.create(code="aides", name="Aides", organisation=org)
    before = AccessLog.objects.filter(action="config").count()
    Queue.objects.filter(pk=queue.pk).update(name="Accueil général")
    Queue.objects.filter(pk=queue.pk).update(name="Accueil général")  # no change: no line
    set_actor(supervisor.pk)
    try:
        Skill.objects.filter(pk=skill.pk).update(name="Aides au logement")
        supervisor.groups.add(Group.objects.get(name="administrator"))
    finally:
        set_actor(None)
    skill.delete()
    rows = list(AccessLog.objects.filter(action="config").order_by("id")[before:])
    assert [(r.object_type, r.details["op"], r.actor_name) for r in rows] == [
        ("routing_queue", "update", ""),
        ("routing_skill", "update", "caf-sup"),
        ("auth_user_groups", "insert", "caf-sup"),
        ("routing_skill", "delete", ""),
    ]
    assert rows[0].details["old"]["name"] == "Accueil"
    assert rows[0].details["new"]["name"] == "Accueil général"
    assert {r.organisation_id for r in rows} == {org.pk}


@on_sqlite
@pytest.mark.django_db
def test_sqlite_access_log_refuses_update_and_delete_except_in_the_purge() -> None:
    from privacy.retention import purge_transaction

    line = AccessLog.objects.create(action="view_thread")
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        AccessLog.objects.filter(pk=line.pk).update(action="export")
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        AccessLog.objects.filter(pk=line.pk).delete()
    with (
        connection.cursor() as cursor,
        pytest.raises(IntegrityError, match="append-only"),
        transaction.atomic(),
    ):
        cursor.execute("DELETE FROM privacy_accesslog")
    assert AccessLog.objects.filter(pk=line.pk, action="view_thread").exists()
    with purge_transaction():
        AccessLog.objects.filter(pk=line.pk).delete()
    assert not AccessLog.objects.filter(pk=line.pk).exists()
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        AccessLog.objects.create(action="search").delete()  # the purge's permission ended


@on_sqlite
def test_sqlite_flush_may_empty_the_log(transactional_db: None) -> None:
    """Django's flush (between transactional tests) is SQLite's TRUNCATE: it may empty the log
    (the teardown's flush fails otherwise)."""
    before = AccessLog.objects.count()
    AccessLog.objects.create(action="search")
    assert AccessLog.objects.count() == before + 1


@pytest.mark.timeout(900)
@pytest.mark.skipif(not settings.IS_POSTGRES, reason="runs the tests above directly")
def test_the_sqlite_default_is_checked_too(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "CI", "PYTEST_XDIST_WORKER", "PYTEST_ADDOPTS"}
    }
    env["DATA_DIR"] = str(tmp_path)
    child = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            __file__,
            "-p",
            "no:cacheprovider",
            "-q",
            "-n",
            "0",
        ],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=840,
    )
    assert child.returncode == 0, child.stdout[-4000:] + child.stderr[-2000:]
    assert "3 passed" in child.stdout
