"""The console's idle-timeout warning in Chromium (static/console/console.js, "idle timeout").

A server of its own with a 13 s idle timeout and a 4 s warning, so each test runs in seconds:
the dialog opens and is announced, focus moves to "Stay logged in", the countdown runs;
Enter or Escape extends the session on the server; Tab stays on the dialog's button; an agent
who does nothing lands on the login page with ``?idle=1`` and their session is over; activity
in another tab (a request with the same cookies) postpones the warning.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .conftest import PASSWORD, LiveServer

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
]
TIMEOUT = 13  # CONSOLE_IDLE_TIMEOUT_SECONDS of the server below
WARNING = 4  # CONSOLE_IDLE_WARNING_SECONDS
# The server also ends the session on its own clock (console/middleware.py): requests other
# than the console's passive ones count as activity, at most once every 5 s.
TOUCH_THROTTLE = 5
PING = "/console/session/ping/"


@pytest.fixture(scope="module")
def idle_server(live_server_asgi: LiveServer) -> Iterator[LiveServer]:
    """Same database and Redis as ``live_server_asgi``, short idle settings (read from the
    environment by contactcentre/settings.py, so the ``settings`` fixture cannot reach it)."""
    server = LiveServer(live_server_asgi.env["DATABASE_URL"])
    server.env["CONSOLE_IDLE_TIMEOUT_SECONDS"] = str(TIMEOUT)
    server.env["CONSOLE_IDLE_WARNING_SECONDS"] = str(WARNING)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def idle_page(
    browser: Any, idle_server: LiveServer, make_user: Callable[..., Any]
) -> Iterator[Any]:
    """Alice's console, just logged in; nothing touched since (no click, no key press)."""
    make_user("alice", first_name="Alice", last_name="Martin")
    context = browser.new_context(locale="fr-FR", viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(f"{idle_server.url}/accounts/login/?next=/console/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", PASSWORD)
    page.click("form button[type=submit].primary")
    page.wait_for_selector("#console[data-connected=true]")
    yield page
    context.close()


def _seconds_left(page: Any) -> int:
    """What the server says is left, asked the way the console checks (passive: no activity)."""
    csrf = page.input_value("#state-form [name=csrfmiddlewaretoken]")
    response = page.request.post(
        page.url.split("/console/")[0] + PING,
        headers={"X-CSRFToken": csrf, "X-Console-Passive": "1", "Accept": "application/json"},
    )
    assert response.status == 200, response.status
    return int(response.json()["seconds_left"])


def _countdown(page: Any) -> int:
    text = page.inner_text("#idle-left")
    found = re.search(r"(\d+)$", text.strip())
    assert found, f"no countdown in {text!r}"
    return int(found.group(1))


def _open_warning(page: Any) -> Any:
    from playwright.sync_api import expect

    dialog = page.get_by_role("alertdialog")
    expect(dialog).to_be_visible(timeout=(TIMEOUT - WARNING + 5) * 1000)
    return dialog


def test_warning_is_announced_counts_down_and_enter_extends(idle_page: Any) -> None:
    from playwright.sync_api import expect

    page = idle_page
    page.focus("#state-select")  # where the agent was (focus() sends no key press)
    dialog = _open_warning(page)
    first = _countdown(page)  # there from the start: announced with the dialog
    # announced: a modal alert dialog named by its title, described by its text
    expect(dialog).to_have_attribute("aria-modal", "true")
    expect(dialog).to_have_accessible_name(page.inner_text("#idle-title"))
    sentence = page.locator("#idle-text").evaluate("(p) => p.firstChild.textContent.trim()")
    assert sentence
    expect(dialog).to_have_accessible_description(re.compile(re.escape(sentence)))
    extend = page.locator("#idle-extend")
    expect(extend).to_be_focused()
    # the countdown runs
    assert 0 < first <= WARNING
    page.wait_for_function(
        "(n) => Number(document.getElementById('idle-left').textContent.match(/\\d+$/)[0]) < n",
        arg=first,
        timeout=3_000,
    )
    # Enter on "Stay logged in": the dialog closes, focus goes back where it was
    with page.expect_response(lambda r: PING in r.url) as extended:
        page.keyboard.press("Enter")
    assert extended.value.ok
    expect(dialog).to_be_hidden()
    expect(page.locator("#state-select")).to_be_focused()
    # ... the server's idle clock started again ...
    assert _seconds_left(page) >= TIMEOUT - 2
    # ... the dialog does not come straight back (it would on the next one-second tick) ...
    page.wait_for_timeout(1_500)
    expect(dialog).to_be_hidden()
    # ... and the console keeps working
    page.select_option("#state-select", "available")
    page.click("#state-form button[type=submit]")
    expect(page.locator("#state-label.state-available")).to_be_visible()


def test_escape_extends_and_tab_stays_on_the_button(idle_page: Any) -> None:
    from playwright.sync_api import expect

    page = idle_page
    dialog = _open_warning(page)
    extend = page.locator("#idle-extend")
    expect(extend).to_be_focused()
    page.keyboard.press("Tab")
    expect(extend).to_be_focused()
    page.keyboard.press("Shift+Tab")
    expect(extend).to_be_focused()
    expect(dialog).to_be_visible()
    with page.expect_response(lambda r: PING in r.url) as extended:
        page.keyboard.press("Escape")
    assert extended.value.ok
    expect(dialog).to_be_hidden()
    assert _seconds_left(page) >= TIMEOUT - 2
    page.wait_for_timeout(1_500)
    expect(dialog).to_be_hidden()
    assert page.url.endswith("/console/")


def test_no_answer_ends_the_session(idle_page: Any, idle_server: LiveServer) -> None:
    page = idle_page
    _open_warning(page)
    page.wait_for_url(re.compile(r"/accounts/login/\?idle=1$"), timeout=(WARNING + 5) * 1000)
    # the login page says why, where a screen reader reads it
    page.get_by_role("status").filter(has_text="après une période d’inactivité").wait_for()
    # the server ended the session too: the console sends back to the login page
    page.goto(f"{idle_server.url}/console/")
    assert re.search(r"/accounts/login/\?next=(/|%2F)console(/|%2F)$", page.url), page.url
    assert page.locator("#id_username").is_visible()


def test_activity_in_another_tab_postpones_the_warning(
    idle_page: Any, idle_server: LiveServer
) -> None:
    from playwright.sync_api import expect

    page = idle_page
    # wait for the server's throttle on activity to let the next request count
    while _seconds_left(page) > TIMEOUT - TOUCH_THROTTLE - 1:
        page.wait_for_timeout(250)
    # another tab opens a page with the same session: that is activity
    other = page.request.get(f"{idle_server.url}/console/settings/")
    assert other.ok
    touched = time.monotonic()
    assert _seconds_left(page) >= TIMEOUT - 1
    # when this console's own clock reaches the warning it asks the server first ...
    with page.expect_response(
        lambda r: PING in r.url and r.request.headers.get("x-console-passive") == "1",
        timeout=(TIMEOUT - WARNING + 3) * 1000,
    ) as check:
        pass
    assert check.value.json()["seconds_left"] > WARNING
    # ... and does not warn, since the session was used meanwhile
    page.wait_for_timeout(1_500)
    dialog = page.get_by_role("alertdialog")
    expect(dialog).to_be_hidden()
    # it warns later, on the server's clock
    _open_warning(page)
    assert time.monotonic() - touched >= TIMEOUT - WARNING - 1.5


def test_the_warning_closes_an_open_dialog_so_it_can_be_answered(idle_page: Any) -> None:
    """A note, transfer or wrap-up dialog left open is modal: the warning would be inert."""
    from playwright.sync_api import expect

    page = idle_page
    page.evaluate(
        """() => {
          const d = document.createElement("dialog");
          d.id = "left-open";
          d.textContent = "Note";
          document.getElementById("panels").appendChild(d);
          d.showModal();
        }"""
    )
    _open_warning(page)
    expect(page.locator("#left-open")).not_to_have_attribute("open", "")
    extend = page.locator("#idle-extend")
    expect(extend).to_be_focused()
    with page.expect_response(lambda r: PING in r.url) as extended:
        page.keyboard.press("Enter")
    assert extended.value.ok
