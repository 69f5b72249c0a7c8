"""Browser tests: Debian's Chromium driven by Playwright against a real ASGI server.

The server is uvicorn in a subprocess, on a free loopback port, serving the test database
(pytest-django's, so tests use ``transactional_db``: their writes are committed and seen by
the server) and the same Redis channel layer as the test process, so an event published by
the test (a new interaction routed here) reaches the consoles in the browser.

Under ``CI=true`` a missing Chromium fails the run; elsewhere these tests are skipped.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "pw-Test-2026!"  # the make_user fixture's password


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveServer:
    """uvicorn serving contactcentre.asgi on the test database; can be killed and restarted."""

    def __init__(self, database_url: str) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "contactcentre.settings_test",
            "DATABASE_URL": database_url,
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
            "TELEPHONY_BACKEND": "channels_inbound.providers.dev.ConsoleBackend",
            "CHAT_DEMO_PAGE": "true",  # off by default; test_csp.py opens /chat/demo/
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "contactcentre.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--lifespan",
                "off",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=self.env,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail("the ASGI server exited at start-up")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as response:  # noqa: S310
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        pytest.fail("the ASGI server did not answer within 60 s")

    def kill(self) -> None:
        """Kill the server abruptly (every console socket drops, as on a flaky network)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()


@pytest.fixture(scope="session")
def live_server_asgi(django_db_setup: Any, django_db_blocker: Any) -> Iterator[LiveServer]:
    if not settings.IS_POSTGRES or not settings.REDIS_URL:
        if CI:
            pytest.fail("browser tests need PostgreSQL and Redis")
        pytest.skip("browser tests need PostgreSQL and Redis (DATABASE_URL, REDIS_URL)")
    from django.db import connection

    db = connection.settings_dict
    url = "postgres://{user}@{host}:{port}/{name}".format(
        user=db.get("USER") or "postgres",
        host=db.get("HOST") or "127.0.0.1",
        port=db.get("PORT") or 5432,
        name=db["NAME"],
    )
    if db.get("PASSWORD"):
        url = url.replace("@", f":{db['PASSWORD']}@", 1)
    server = LiveServer(url)
    server.start()
    yield server
    server.stop()


# Module scope: Playwright's sync API keeps an event loop running in this thread while it is
# started; a session-wide browser made every async test collected after the browser tests fail
# ("Runner.run() cannot be called from a running event loop").
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        message = f"Chromium is missing at {CHROMIUM} (apt-get install chromium)"
        if CI:
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--autoplay-policy=no-user-gesture-required",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture(scope="module", autouse=True)
def _orm_beside_playwright() -> Iterator[None]:
    """Playwright's sync API keeps an event loop in this thread; the ORM calls the tests make
    between two browser steps (and pytest-django's flush after each test) are still plain
    synchronous code. Only for the browser test modules (module scope: the tests that run
    after them keep Django's async-safety checks)."""
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    yield
    if previous is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def console_page(browser: Any, live_server_asgi: LiveServer) -> Iterator[Callable[..., Any]]:
    contexts: list[Any] = []

    def open_console(username: str, *, available: bool = True, **options: Any) -> Any:
        """The console of ``username``, in a new browser context (``options``: Playwright's
        context options, e.g. another ``viewport``)."""
        options = {"viewport": {"width": 1400, "height": 1000}, **options}
        context = browser.new_context(locale="fr-FR", **options)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.goto(f"{live_server_asgi.url}/accounts/login/?next=/console/")
        page.fill("#id_username", username)
        page.fill("#id_password", PASSWORD)
        page.click("form button[type=submit].primary")
        page.wait_for_selector("#console[data-connected=true]")
        if available:
            page.select_option("#state-select", "available")
            page.click("#state-form button[type=submit]")
            page.wait_for_selector("#state-label.state-available")
        return page

    yield open_console
    for context in contexts:
        context.close()


def tab_to(page: Any, selector: str, *, limit: int = 120, backwards: bool = False) -> None:
    """Press Tab (Shift+Tab if ``backwards``) until the focused element matches ``selector``
    (keyboard only)."""
    for _ in range(limit):
        if page.evaluate(
            "(s) => document.activeElement && document.activeElement.matches(s)", selector
        ):
            return
        page.keyboard.press("Shift+Tab" if backwards else "Tab")
    raise AssertionError(f"{selector} is not reachable with the Tab key")


def open_action(page: Any, interaction_id: int, action: str) -> None:
    """Open a conversation's note, transfer or wrap-up dialog ("note", "transfer", "wrap")
    from its toolbar, as the agent does, and wait for it to show."""
    dialog = f"{action}-dialog-{interaction_id}"
    page.click(f"#panel-{interaction_id} [data-open-dialog='{dialog}']")
    page.wait_for_selector(f"#{dialog}[open]")
