"""Flows in the database: versions, publishing with validation, and the admin for supervisors."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.db import IntegrityError
from django.test import Client

from configuration.models import Queue
from flows.actions import (
    FlowNotDraft,
    FlowValidationError,
    do_create_flow_version,
    do_publish_flow_version,
)
from flows.models import Flow, FlowVersion

GRAPH: dict[str, Any] = {
    "start": "accueil",
    "nodes": {
        "accueil": {"type": "message", "text": "Bonjour.", "next": "file"},
        "file": {"type": "queue", "queue": "caf"},
    },
}


@pytest.fixture
def flow(db: Any) -> Flow:
    Queue.objects.create(code="caf", name="CAF")
    return Flow.objects.create(name="Accueil CAF")


@pytest.mark.django_db
def test_publishing_archives_the_previous_version(flow: Flow) -> None:
    v1 = do_publish_flow_version(version=do_create_flow_version(flow=flow, graph=GRAPH))
    v2 = do_publish_flow_version(version=do_create_flow_version(flow=flow, graph=GRAPH))
    v1.refresh_from_db()
    flow.refresh_from_db()
    assert (v1.number, v1.status) == (1, FlowVersion.Status.ARCHIVED)
    assert (v2.number, v2.status) == (2, FlowVersion.Status.PUBLISHED)
    assert flow.published_version == v2
    with pytest.raises(FlowNotDraft):
        do_publish_flow_version(version=v1)


@pytest.mark.django_db
def test_an_invalid_version_is_not_published(flow: Flow) -> None:
    bad = {**GRAPH, "nodes": {**GRAPH["nodes"], "file": {"type": "queue", "queue": "cpam"}}}
    version = do_create_flow_version(flow=flow, graph=bad)
    with pytest.raises(FlowValidationError) as error:
        do_publish_flow_version(version=version)
    assert error.value.errors == ["nodes/file/queue: no queue with code 'cpam'"]
    version.refresh_from_db()
    assert version.status == FlowVersion.Status.DRAFT


@pytest.mark.django_db
def test_the_database_allows_one_published_version_per_flow(flow: Flow) -> None:
    do_publish_flow_version(version=do_create_flow_version(flow=flow, graph=GRAPH))
    with pytest.raises(IntegrityError):
        FlowVersion.objects.create(flow=flow, number=9, graph=GRAPH, status="published")


@pytest.mark.django_db
def test_a_supervisor_edits_and_publishes_in_the_admin(
    flow: Flow, make_user: Callable[..., Any], client: Client
) -> None:
    from django_otp.plugins.otp_totp.models import TOTPDevice

    supervisor = make_user("sup", role="supervisor", is_superuser=True)
    # supervisors pass a second factor: log in with a confirmed device, as after the code page
    device = TOTPDevice.objects.create(user=supervisor, name="test", confirmed=True)
    client.force_login(supervisor)
    session = client.session
    session["otp_device_id"] = device.persistent_id
    session.save()
    # when a draft with a mistake is created
    broken = {**GRAPH, "start": "nulle_part"}
    response = client.post(
        "/admin/flows/flowversion/add/",
        {"flow": flow.pk, "graph": json.dumps(broken), "note": "essai"},
    )
    assert response.status_code == 302
    version = FlowVersion.objects.get()
    assert version.created_by == supervisor
    # then its page lists the problem, and "Save and publish" refuses with the errors shown
    page = client.get(f"/admin/flows/flowversion/{version.pk}/change/")
    assert "start: no node named &#x27;nulle_part&#x27;" in page.content.decode()
    response = client.post(
        f"/admin/flows/flowversion/{version.pk}/change/",
        {"graph": json.dumps(broken), "note": "essai", "_publish": "1"},
        follow=True,
    )
    assert "nulle_part" in response.content.decode()
    version.refresh_from_db()
    assert version.status == FlowVersion.Status.DRAFT
    # when fixed and published
    response = client.post(
        f"/admin/flows/flowversion/{version.pk}/change/",
        {"graph": json.dumps(GRAPH), "note": "corrigé", "_publish": "1"},
        follow=True,
    )
    assert response.status_code == 200
    version.refresh_from_db()
    assert version.status == FlowVersion.Status.PUBLISHED
    # a published version can no longer be edited
    client.post(
        f"/admin/flows/flowversion/{version.pk}/change/",
        {"graph": json.dumps(broken), "note": "x"},
    )
    version.refresh_from_db()
    assert version.graph == GRAPH
