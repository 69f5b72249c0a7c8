"""What every console POST costs before its view (issue 13), and that it still enforces what it
enforced: the middleware and ``agent_required`` read the session, the user, and the agent
profile with what the second factor needs (one statement); the second factor, the agent check
and the audit actor hold as before.

The views here are probes mounted under ``/console/`` (the same middleware as the console's
own endpoints): a no-op, and writes of an audited table (wrap-up codes) and of a table that is
not audited."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.test import Client
from django.urls import include, path
from django.views.decorators.http import require_POST

from console.models import WrapUpCode
from console.views import agent_required
from organisations.models import sole_organisation
from privacy.models import AccessLog

JSON = "application/json"


@agent_required
@require_POST
def _probe(request: HttpRequest) -> HttpResponse:
    agent = request.agent  # type: ignore[attr-defined]
    return JsonResponse({"agent": agent.pk, "user": agent.user.username, "remote": agent.remote})


@agent_required
@require_POST
def _add_codes(request: HttpRequest) -> HttpResponse:
    """An audited write after one undone with its savepoint (the undo must not lose the user),
    then one in the request's own autocommit."""
    org = sole_organisation()
    try:
        with transaction.atomic():
            WrapUpCode.objects.create(code="undone", label="Undone", organisation_id=org)
            raise RuntimeError
    except RuntimeError:
        pass
    with transaction.atomic():
        WrapUpCode.objects.create(code="kept", label="Kept", organisation_id=org)
    WrapUpCode.objects.create(code="after", label="After", organisation_id=org)
    return JsonResponse({"ok": True})


@agent_required
@require_POST
def _rename_code(request: HttpRequest) -> HttpResponse:
    """An audited write inside a data-modifying WITH, written by hand (lower case)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "with renamed as (update console_wrapupcode set label = %s where code = %s"
            " returning id) select count(*) from renamed",
            ["Renamed", "after"],
        )
    return JsonResponse({"ok": True})


@agent_required
@require_POST
def _touch_presence(request: HttpRequest) -> HttpResponse:
    from agents.models import AgentPresence

    AgentPresence.objects.filter(agent=request.agent).update(channels_enabled=["chat"])  # type: ignore[attr-defined]
    return JsonResponse({"ok": True})


urlpatterns = [
    path(
        "console/probe/",
        include(
            [
                path("noop/", _probe),
                path("codes/", _add_codes),
                path("rename/", _rename_code),
                path("presence/", _touch_presence),
            ]
        ),
    ),
    path("", include("contactcentre.urls")),
]

pytestmark = [pytest.mark.urls(__name__)]


def _agent_client(user: Any) -> Client:
    client = Client(HTTP_ACCEPT=JSON)
    client.force_login(user)
    # The first request records the agent's activity (a session write); the ones after, within
    # a few seconds, do not: those are the ones measured.
    assert client.post("/console/probe/noop/", secure=True).status_code == 200
    return client


@pytest.mark.django_db
def test_a_console_post_reaches_its_view_in_three_statements(
    make_user: Callable[..., Any], django_assert_max_num_queries: Any
) -> None:
    user = make_user("alice")
    client = _agent_client(user)
    with django_assert_max_num_queries(3):  # the session, the user, the agent and its roles
        response = client.post("/console/probe/noop/", secure=True)
    assert response.status_code == 200
    assert response.json() == {
        "agent": user.agent_profile.pk,
        "user": "alice",
        "remote": False,
    }


@pytest.mark.django_db
def test_a_user_who_is_no_agent_is_refused(make_user: Callable[..., Any]) -> None:
    user = make_user("bob", profile=False)
    client = Client(HTTP_ACCEPT=JSON)
    client.force_login(user)
    response = client.post("/console/probe/noop/", secure=True)
    assert response.status_code == 403
    assert "console/not_an_agent.html" in [t.name for t in response.templates]


@pytest.mark.django_db
def test_a_teleworker_or_a_user_with_a_device_must_pass_the_second_factor(
    make_user: Callable[..., Any],
) -> None:
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from tests.integration.test_admin_scope import verified

    remote = make_user("carol")
    type(remote.agent_profile).objects.filter(user=remote).update(remote=True)
    client = Client(HTTP_ACCEPT=JSON)
    client.force_login(remote)
    refused = client.post("/console/probe/noop/", secure=True)
    assert refused.status_code == 403
    assert "detail" in refused.json()
    page = Client()
    page.force_login(remote)
    assert "/accounts/otp/enrol/" in page.post("/console/probe/noop/", secure=True)["Location"]

    enrolled = make_user("dave")
    TOTPDevice.objects.create(user=enrolled, name="phone", confirmed=True)
    page = Client()
    page.force_login(enrolled)
    assert "/accounts/otp/?next=" in page.post("/console/probe/noop/", secure=True)["Location"]

    passed = verified(Client(HTTP_ACCEPT=JSON), remote)
    assert passed.post("/console/probe/noop/", secure=True).json()["remote"] is True


def _actor_setting() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('cc.actor_id', true)")
        return str(cursor.fetchone()[0] or "")


def _code_lines() -> list[tuple[str, str, Any]]:
    rows = AccessLog.objects.filter(action="config", object_type="console_wrapupcode")
    return sorted((r.details["new"]["code"], r.details["op"], r.actor_id) for r in rows)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_audited_changes_of_a_console_post_name_the_agent(
    make_user: Callable[..., Any], roles: None
) -> None:
    """Outside a test's transaction, as in production: the user is named before the first
    audited write, again after the rollback that undid it, and forgotten after the response
    (the undone row's line is undone with it)."""
    user = make_user("erin")
    client = _agent_client(user)
    assert client.post("/console/probe/codes/", secure=True).status_code == 200
    assert _code_lines() == [("after", "insert", user.pk), ("kept", "insert", user.pk)]
    assert _actor_setting() == ""
    other = make_user("erin-bis")
    assert _agent_client(other).post("/console/probe/rename/", secure=True).status_code == 200
    renamed = AccessLog.objects.filter(action="config", details__op="update").get()
    assert (renamed.details["new"]["label"], renamed.actor_id) == ("Renamed", other.pk)
    assert _actor_setting() == ""


@pytest.mark.postgres
@pytest.mark.django_db
def test_audited_changes_inside_a_transaction_name_the_agent(
    make_user: Callable[..., Any],
) -> None:
    user = make_user("frank")
    client = _agent_client(user)
    assert client.post("/console/probe/codes/", secure=True).status_code == 200
    assert _code_lines() == [("after", "insert", user.pk), ("kept", "insert", user.pk)]
    assert _actor_setting() == ""


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_console_post_that_changes_no_audited_table_names_nobody(
    make_user: Callable[..., Any], django_assert_max_num_queries: Any
) -> None:
    user = make_user("gina")
    client = _agent_client(user)
    with django_assert_max_num_queries(4):  # the three reads, the presence's update
        assert client.post("/console/probe/presence/", secure=True).status_code == 200
    assert _actor_setting() == ""
