"""Every page under the Content-Security-Policy in Chromium: an agent's console taking a chat
from the demo page's widget, a supervisor's pages (wallboard, skills, queues, reports, what-if,
flow editor), the administration, the API docs and the browsable API, with no violation
reported.

Violations are collected twice: the ``securitypolicyviolation`` event (a listener installed in
every page before its own scripts, reporting to Python) and Chromium's console messages
("Refused to execute inline script because it violates the following Content Security Policy
directive…"). Permissions-Policy header errors ("Unrecognized feature") are collected too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from interactions.models import Interaction
from tests.integration.channels.chat_helpers import (
    fresh_rate_limits,  # noqa: F401 - autouse fixture
    make_widget,
)

from .conftest import PASSWORD, LiveServer

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
]

LISTENER = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolation({
    page: location.href,
    directive: event.effectiveDirective,
    blocked: event.blockedURI,
    source: event.sourceFile + ":" + event.lineNumber,
    sample: event.sample,
  });
});
"""
CONSOLE_MARKERS = ("Content Security Policy", "Content-Security-Policy", "Permissions-Policy")


class PolicyWatch:
    """Browser contexts whose pages report every CSP violation and policy error here."""

    def __init__(self, browser: Any) -> None:
        self.browser = browser
        self.contexts: list[Any] = []
        self.problems: list[str] = []

    def context(self) -> Any:
        context = self.browser.new_context(locale="fr-FR", viewport={"width": 1400, "height": 1000})
        context.expose_function("__cspViolation", lambda v: self.problems.append(f"violation {v}"))
        context.add_init_script(LISTENER)
        context.on("console", self._console)
        context.on("page", lambda page: page.set_default_timeout(15_000))
        self.contexts.append(context)
        return context

    def _console(self, message: Any) -> None:
        if any(marker in message.text for marker in CONSOLE_MARKERS):
            self.problems.append(f"console {message.type}: {message.text} ({message.location})")

    def settle(self) -> list[str]:
        """The problems, once every open page has run its queued tasks (violation events are
        dispatched asynchronously) and reported them."""
        for context in self.contexts:
            for page in context.pages:
                page.evaluate("() => new Promise((done) => setTimeout(done, 200))")
        return self.problems

    def close(self) -> None:
        for context in self.contexts:
            context.close()


@pytest.fixture
def watch(browser: Any) -> Iterator[PolicyWatch]:
    policy_watch = PolicyWatch(browser)
    yield policy_watch
    policy_watch.close()
    for problem in policy_watch.problems:  # shown with a failure (a violation, or a timeout)
        print(problem)


@pytest.fixture(scope="module")
def server(live_server_asgi: LiveServer) -> Iterator[LiveServer]:
    """A server of this module's own, on the same database, with /chat/demo/ switched on (off
    by default outside DEBUG)."""
    demo = LiveServer(live_server_asgi.env["DATABASE_URL"])
    demo.env["CHAT_DEMO_PAGE"] = "true"
    demo.start()
    yield demo
    demo.stop()


def totp_now(user: Any) -> str:
    from django_otp.oath import totp
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.get(user=user, confirmed=True)
    code = totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits)
    return str(code).zfill(device.digits)


def log_in(page: Any, base: str, username: str, next_path: str, *, otp_user: Any = None) -> None:
    page.goto(f"{base}/accounts/login/?next={next_path}")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("form button[type=submit].primary")
    if otp_user is not None:
        page.wait_for_selector("#id_token")
        page.fill("#id_token", totp_now(otp_user))
        page.click("form button[type=submit].primary")
    page.wait_for_url(f"**{next_path}")


def test_the_agent_console_takes_a_chat_from_the_demo_page_under_the_policy(
    watch: PolicyWatch, server: LiveServer, make_user: Callable[..., Any]
) -> None:
    from agents.models import AgentSkill
    from configuration.models import Skill
    from organisations.models import Membership

    make_widget()
    claire = make_user("claire", first_name="Claire", last_name="Martin")
    Membership.objects.get_or_create(user=claire)  # of the sole organisation
    AgentSkill.objects.create(
        agent=claire.agent_profile, skill=Skill.objects.get(code="etat-civil"), level=4
    )
    base = server.url

    # The agent: login page, console (live over its WebSocket), available.
    agent = watch.context().new_page()
    log_in(agent, base, "claire", "/console/")
    agent.wait_for_selector("#console[data-connected=true]")
    agent.select_option("#state-select", "available")
    agent.click("#state-form button[type=submit]")
    agent.wait_for_selector("#state-label.state-available")

    # A citizen on the demo page: the widget opens, the bot asks, a message goes out.
    citizen = watch.context().new_page()
    citizen.goto(f"{base}/chat/demo/")
    citizen.get_by_role("button", name="Discuter avec un conseiller").click()
    dialog = citizen.get_by_role("dialog", name="Mairie d'Exemple")
    dialog.wait_for()
    citizen.get_by_label("Votre nom").fill("Awa Diallo")
    citizen.get_by_label("Quel est l'objet de votre demande ?").select_option(label="État civil")
    dialog.get_by_role("button", name="Commencer la discussion").click()
    log = citizen.get_by_role("log", name="Conversation")
    log.get_by_text("Bonjour, je suis l'assistant de la mairie.").wait_for()
    choices = citizen.get_by_role("group", name="Choisissez une réponse")
    choices.get_by_role("button", name="Un acte de naissance").click()
    choices.get_by_role("button", name="Pour moi").click()
    log.get_by_text("Je vous mets en relation avec un conseiller.").wait_for()

    # The offer reaches the console; the agent takes it and they talk both ways.
    agent.wait_for_selector(".offer-card")
    agent.click("[data-accept]")
    interaction = Interaction.objects.get(channel="chat")
    composer = f"#panel-{interaction.pk} [data-composer]"
    agent.wait_for_selector(composer)
    agent.fill(composer, "Bonjour Madame Diallo.")
    agent.click(f"#panel-{interaction.pk} form[data-reply] button[type=submit]")
    log.get_by_text("Bonjour Madame Diallo.").wait_for()
    citizen.get_by_label("Votre message").fill("C'est pour mon fils.")
    citizen.get_by_role("button", name="Envoyer", exact=True).click()
    agent.locator(f"#thread-{interaction.pk} .msg-inbound", has_text="mon fils").wait_for()
    agent.goto(f"{base}/console/settings/")
    agent.wait_for_selector("main h1")
    agent.goto(f"{base}/api/v1/docs/")
    agent.wait_for_selector(".swagger-ui .information-container .title")

    assert watch.settle() == []


def test_supervisors_pages_the_administration_and_the_api_docs_under_the_policy(
    watch: PolicyWatch, server: LiveServer, make_user: Callable[..., Any]
) -> None:
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from agents.models import AgentSkill
    from configuration.models import Queue, QueueSkill, Skill, Team
    from flows.models import Flow
    from organisations.models import Membership

    team = Team.objects.create(name="État civil")
    deces = Skill.objects.create(code="deces", name="Décès")
    queue = Queue.objects.create(code="etat-civil", name="État civil", team=team)
    QueueSkill.objects.create(queue=queue, skill=deces, min_level=2)
    bob = make_user("bob", first_name="Bob", last_name="Durand")
    AgentSkill.objects.create(agent=bob.agent_profile, skill=deces, level=2)
    flow = Flow.objects.create(name="Accueil mairie")
    sophie = make_user("sophie", role="supervisor", first_name="Sophie", last_name="Leroy")
    Membership.objects.get_or_create(user=sophie)  # of the sole organisation
    team.supervisors.add(sophie)
    TOTPDevice.objects.create(user=sophie, name="phone", confirmed=True)
    base = server.url

    # Password then the second-factor page, to the live wallboard.
    page = watch.context().new_page()
    log_in(page, base, "sophie", "/supervision/", otp_user=sophie)
    page.wait_for_selector("body[data-wallboard=live]")

    for path in (
        "/supervision/agents/",
        "/supervision/interactions/",
        "/supervision/skills/",
        "/supervision/skills/history/",
        "/supervision/queues/",
        f"/supervision/queues/{queue.pk}/",
        "/supervision/reports/",
        "/supervision/staffing/",
        "/supervision/flows/",
    ):
        page.goto(f"{base}{path}")
        page.wait_for_selector("main h1")

    # What-if: the form runs a replay and shows its table.
    page.goto(f"{base}/supervision/what-if/")
    page.click("form button[type=submit].primary")
    page.wait_for_selector("#whatif-table")

    # The flow editor draws its nodes and diagram, validates and runs a test.
    page.goto(f"{base}/supervision/flows/{flow.pk}/")
    page.fill("#new-node-id", "accueil")
    page.select_option("#new-node-type", "message")
    page.click("#add-node")
    page.wait_for_selector("#node-list li[data-node=accueil].has-errors")
    page.fill("#f-text", "Bienvenue.")
    page.fill("#new-node-id", "file")
    page.select_option("#new-node-type", "queue")
    page.click("#add-node")
    page.select_option("#f-queue", "etat-civil")
    page.click("#node-list li[data-node=accueil] button")
    page.select_option("#f-next", "file")
    page.wait_for_selector("#flow-errors [data-valid=true]")
    page.wait_for_selector("#flow-graph rect.node")
    page.click("#run-test")
    page.wait_for_selector("#test-transcript li[data-kind=queue]")

    # The administration (its own scripts: sidebar, theme, related-object widgets).
    page.goto(f"{base}/admin/")
    page.wait_for_selector("#content h1")
    page.goto(f"{base}/admin/configuration/queue/")
    page.wait_for_selector("#result_list")
    page.goto(f"{base}/admin/configuration/queue/{queue.pk}/change/")
    page.wait_for_selector("#content-main form")
    page.goto(f"{base}/admin/configuration/queue/add/")
    page.wait_for_selector("#content-main form")

    # Swagger UI (an inline start-up script and style, under the nonce): an operation opened.
    page.goto(f"{base}/api/v1/docs/")
    page.wait_for_selector(".swagger-ui .information-container .title")
    page.locator(".opblock-summary").first.click()
    page.wait_for_selector(".opblock.is-open")

    # The REST framework's browsable pages (their style attributes cut out, a nonced style).
    for path in ("/api/v1/", f"/api/v1/queues/{queue.pk}/", "/api/v1/presence/"):
        page.goto(f"{base}{path}")
        page.wait_for_selector(".content-main h1")

    assert watch.settle() == []
