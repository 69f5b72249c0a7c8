"""A session ended for the agent explains itself on the login page (issue 15): an agent whom a
supervisor logs out sees, from the open console, the login page saying so, in French."""

from __future__ import annotations

import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
]


def test_an_agent_logged_out_by_a_supervisor_is_told_on_the_login_page(
    make_user: Callable[..., Any], console_page: Callable[..., Any]
) -> None:
    alice = make_user("alice", first_name="Alice")
    supervisor = make_user("sup", role="administrator")
    page = console_page("alice")

    def log_out() -> None:
        from django.db import connection

        from supervision.access import scope_for
        from supervision.actions import do_log_agent_out

        try:
            scope = scope_for(supervisor)
            assert scope is not None
            do_log_agent_out(actor=supervisor, scope=scope, agent=alice.agent_profile)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(log_out).result(timeout=30)
    page.wait_for_url(re.compile(r"/accounts/login/\?ended=logged_out_by_supervisor$"))
    said = page.get_by_role("status").filter(has_text="Un superviseur a fermé votre session")
    said.wait_for()
    assert page.locator("#id_username").is_visible()
    # the session is over: the console sends back to the login form
    page.goto(page.url.split("/accounts/")[0] + "/console/")
    assert "/accounts/login/" in page.url
