"""Test set-up shared by the whole suite.

Which services the tests use comes from the environment (``dev.py test`` fills it in). Under
``CI=true`` the real PostgreSQL and Redis are required: a missing service stops the run with an
error instead of skipping tests.

Redis: a test uses this run's database (``REDIS_URL``) or one at a fixed offset from it
(:func:`tests.support.redis_db_url`), never a fixed database number, and deletes only the keys
it creates (:func:`tests.support.clear_broker`), never FLUSHDB: ``REDIS_URL`` may point at a
developer's Redis.

Timeouts: the global ``timeout = 300`` (pyproject.toml, pytest-timeout) is the ceiling for a
test that sets no deadline of its own. A test that waits longer on purpose (a subprocess
timeout, a polling deadline, a run sized for a benchmark) declares
``@pytest.mark.timeout(N)`` with ``N`` above its longest wait plus its set-up (Celery workers:
up to 120 s to answer, 20 s each to stop), so its own deadline and message come before
pytest-timeout's kill. Inside an unmarked test, the waits added up stay under 300 s.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf import settings

CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _redis_answers() -> str | None:
    if not settings.REDIS_URL:
        return "REDIS_URL is not set"
    import redis

    try:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2)
        client.ping()
        client.close()
    except Exception as exc:
        return f"Redis at {settings.REDIS_URL} does not answer: {exc}"
    return None


def pytest_configure(config: pytest.Config) -> None:
    # The test client builds the middleware chain again for every Client, and WhiteNoise then
    # listed and stat'ed every static file (about 190, admin's included) each time: ~40 ms per
    # Client, more than half of the authorization matrix's time. Looked up per request instead
    # (its development mode); the servers the tests start in subprocesses are unchanged.
    settings.WHITENOISE_AUTOREFRESH = True
    if not CI:
        return
    problems = []
    if not settings.IS_POSTGRES:
        problems.append("DATABASE_URL does not point at PostgreSQL")
    redis_problem = _redis_answers()
    if redis_problem:
        problems.append(redis_problem)
    if problems:
        pytest.exit("CI=true needs the real services: " + "; ".join(problems), returncode=3)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if CI:
        return  # everything runs; pytest_configure already checked the services
    skip_pg = pytest.mark.skip(reason="needs PostgreSQL (set DATABASE_URL or run under CI=true)")
    skip_redis = pytest.mark.skip(reason="needs Redis (set REDIS_URL or run under CI=true)")
    for item in items:
        if "postgres" in item.keywords and not settings.IS_POSTGRES:
            item.add_marker(skip_pg)
        if "redis" in item.keywords and not settings.REDIS_URL:
            item.add_marker(skip_redis)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """pytest-django's test database, and before it is dropped, the end of every other session
    still connected to it: connections opened by the threads that run a socket consumer's
    database work (Channels) outlive their test, and PostgreSQL refuses to drop a database in
    use ("is being accessed by other users"), which left the test database behind."""
    yield
    from django.db import connection

    with django_db_blocker.unblock():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )


@pytest.fixture(autouse=True)
def _site_language() -> Iterator[None]:
    """Each test starts in the site's language (French). A request made through Django's test
    client runs LocaleMiddleware in the test's own thread, which activates the request's
    language and leaves it active: a test asking for English pages switched every later test of
    the same process (an xdist worker) to English (14 failures in one CI run, by test order)."""
    from django.utils import translation

    translation.deactivate()  # no language active: LANGUAGE_CODE, as a new process has it
    yield
    translation.deactivate()


@pytest.fixture
def roles(db: Any) -> None:
    from kernel.roles import ensure_roles

    ensure_roles()


@pytest.fixture
def make_user(roles: None) -> Callable[..., Any]:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from agents.models import AgentProfile

    def make(username: str, role: str = "agent", *, profile: bool = True, **extra: Any) -> Any:
        user = get_user_model().objects.create_user(
            username, f"{username}@example.fr", "pw-Test-2026!", **extra
        )
        user.groups.add(Group.objects.get(name=role))
        if role != "agent":
            user.is_staff = True
            user.save(update_fields=["is_staff"])
        if profile:
            AgentProfile.objects.create(user=user, languages=["fr"])
        return user

    return make


@pytest.fixture
def api_client_for() -> Callable[[Any], Any]:
    from rest_framework.test import APIClient

    def make(user: Any) -> APIClient:
        client = APIClient()
        client.force_authenticate(user)
        return client

    return make
