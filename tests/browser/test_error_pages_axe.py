"""axe-core on the pages a person lands on when something went wrong (issue 15): the 404 and
403 pages in French and English, the 500 page as Django serves it (rendered without a request),
and the login page saying why a session ended (inactivity, a supervisor) — no violation of any
impact."""

from __future__ import annotations

from typing import Any

import pytest
from django.template.loader import render_to_string
from django.utils import translation

from .conftest import PASSWORD, LiveServer
from .test_console import centre

__all__ = ["centre"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
]


def _violations(page: Any) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
    ]


@pytest.mark.parametrize(("locale", "not_found", "refused"), [
    ("fr-FR", "Page introuvable", "Accès refusé"),
    ("en-GB", "Page not found", "Access refused"),
])  # fmt: skip
def test_error_and_session_end_pages_pass_axe(
    centre: dict[str, Any],
    browser: Any,
    live_server_asgi: LiveServer,
    locale: str,
    not_found: str,
    refused: str,
) -> None:
    url = live_server_asgi.url
    anonymous = browser.new_context(locale=locale).new_page()
    try:
        anonymous.goto(f"{url}/no-such-page/")
        assert not_found in anonymous.inner_text("main")
        assert _violations(anonymous) == [], "404"
        for query in ("?idle=1", "?ended=logged_out_by_supervisor"):
            anonymous.goto(f"{url}/accounts/login/{query}")
            anonymous.get_by_role("status").wait_for()
            assert _violations(anonymous) == [], f"login {query}"
        with translation.override(locale[:2]):
            anonymous.set_content(render_to_string("500.html"))
        assert _violations(anonymous) == [], "500"
    finally:
        anonymous.context.close()

    agent = browser.new_context(locale=locale).new_page()
    try:  # an agent logs in and opens the data-protection officer's pages
        agent.goto(f"{url}/accounts/login/?next=/privacy/")
        agent.fill("#id_username", "alice")
        agent.fill("#id_password", PASSWORD)
        with agent.expect_response(lambda r: r.url == f"{url}/privacy/") as answer:
            agent.click("form button[type=submit].primary")
        assert answer.value.status == 403
        assert refused in agent.inner_text("main")
        assert _violations(agent) == [], "403"
    finally:
        agent.context.close()
