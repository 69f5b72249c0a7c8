"""Supervision in Chromium: a raised skill wins the next interaction, the wallboard follows an
arrival and its answer live, a flow built in the editor and published is what the next call
follows, keyboard access, and axe-core on every supervision page."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone

from agents.models import AgentPresence, AgentProfile, AgentSkill, AgentState
from channels_inbound.models import Endpoint
from configuration.models import Queue, QueueSkill, Skill, Team
from flows.models import EndpointFlow, Flow
from interactions.lifecycle import Status
from interactions.models import Interaction
from routing.models import Offer, OfferStatus
from supervision.models import SkillChange

from .conftest import PASSWORD, LiveServer, tab_to

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
]


def in_thread(work: Callable[[], Any]) -> Any:
    """Run ORM work that publishes events in a thread of its own: Playwright's event loop runs
    in this one, and publishing after commit uses async_to_sync."""

    def run() -> Any:
        from django.db import connection

        try:
            return work()
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result(timeout=30)


def totp_now(user: Any) -> str:
    from django_otp.oath import totp
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.get(user=user, confirmed=True)
    code = totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits)
    return str(code).zfill(device.digits)


@pytest.fixture
def supervisor_page(
    browser: Any, live_server_asgi: LiveServer, make_user: Callable[..., Any]
) -> Iterator[Callable[..., Any]]:
    """Log a supervisor in (password, then the authenticator code) and open a page."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    contexts: list[Any] = []

    def open_page(path: str = "/supervision/", username: str = "sup") -> Any:
        user = make_user(username, role="supervisor", first_name="Sophie", last_name="Leroy")
        for team in Team.objects.all():  # a supervisor of no team would see nothing
            team.supervisors.add(user)
        TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
        context = browser.new_context(locale="fr-FR", viewport={"width": 1400, "height": 1000})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.goto(f"{live_server_asgi.url}/accounts/login/?next={path}")
        page.fill("#id_username", username)
        page.fill("#id_password", PASSWORD)
        page.click("form button[type=submit].primary")
        page.wait_for_selector("#id_token")
        page.fill("#id_token", totp_now(user))
        page.click("form button[type=submit].primary")
        page.wait_for_url(f"**{path}")
        return page

    yield open_page
    for context in contexts:
        context.close()


def _axe_serious(page: Any) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v.get("impact") in {"serious", "critical"}
    ]


def _available(agent: AgentProfile) -> None:
    """Logged in with a live console (the heartbeat is kept ahead for the test's length)."""
    now = timezone.now()
    AgentPresence.objects.filter(agent=agent).update(
        state=AgentState.AVAILABLE,
        state_since=now,
        idle_since=now,
        last_heartbeat_at=now + timedelta(hours=1),
    )


@pytest.fixture
def centre(make_user: Callable[..., Any]) -> dict[str, Any]:
    """Death declarations need "deces" level 2; Bob has 2, Carol 3, both available."""
    team = Team.objects.create(name="État civil")
    deces = Skill.objects.create(code="deces", name="Décès")
    civil = Queue.objects.create(code="etat-civil", name="État civil", team=team)
    QueueSkill.objects.create(queue=civil, skill=deces, min_level=2)
    bob = make_user("bob", first_name="Bob", last_name="Durand").agent_profile
    carol = make_user("carol", first_name="Carol", last_name="Petit").agent_profile
    for agent, level in ((bob, 2), (carol, 3)):
        agent.team = team
        agent.save(update_fields=["team"])
        AgentSkill.objects.create(agent=agent, skill=deces, level=level)
        _available(agent)
    return {"bob": bob, "carol": carol, "deces": deces, "queue": civil, "team": team}


def _arrive(queue: Queue, channel: str = "voice") -> Interaction:
    from interactions.actions import do_create_interaction

    pk = in_thread(lambda: do_create_interaction(channel=channel, contact=None, queue=queue).pk)
    return Interaction.objects.get(pk=pk)


def test_a_raised_skill_wins_the_next_interaction(
    centre: dict[str, Any], supervisor_page: Callable[..., Any]
) -> None:
    bob, carol, deces = centre["bob"], centre["carol"], centre["deces"]
    page = supervisor_page("/supervision/skills/")
    # the supervisor raises Bob from 2 to 5 in the matrix
    cell = f"#level_{bob.pk}_{deces.pk}"
    assert page.input_value(cell) == "2"
    page.select_option(cell, "5")
    page.fill("#matrix-note", "Formation décès terminée")
    page.click("#matrix-form button[type=submit]")
    page.wait_for_selector("main .message.success")
    assert page.input_value(cell) == "5"
    change = SkillChange.objects.get(agent=bob)
    assert (change.before, change.after) == (2, 5)
    assert change.changed_by is not None
    assert change.changed_by.username == "sup"
    # the very next death declaration goes to Bob, now the most competent
    call = _arrive(centre["queue"])
    offer = Offer.objects.get(interaction=call, status=OfferStatus.PENDING)
    assert offer.agent_id == bob.pk
    assert carol.pk != bob.pk
    # the change is listed in the page's history
    page.reload()
    assert "Formation décès terminée" in page.inner_text("main")


def test_the_wallboard_changes_live_on_arrival_and_answer(
    centre: dict[str, Any], supervisor_page: Callable[..., Any]
) -> None:
    from agents.presence import do_set_agent_state
    from routing.offers import do_accept_offer

    bob, carol, queue = centre["bob"], centre["carol"], centre["queue"]
    AgentPresence.objects.filter(agent__in=[bob, carol]).update(state=AgentState.PAUSED)
    page = supervisor_page("/supervision/")
    page.wait_for_selector("body[data-wallboard=live]")
    row = f"#wb-queues tr[data-queue='{queue.pk}']"
    assert _axe_serious(page) == [], "wallboard"
    # a chat arrives (a call would need a telephony bridge): nobody is available, it waits
    call = _arrive(queue, "chat")
    page.wait_for_selector(f"{row}[data-channel=chat] [data-field=waiting]:text-is('1')")
    assert "1" in page.inner_text("#wb-summary")
    # Carol comes back and answers it
    in_thread(lambda: do_set_agent_state(agent=carol, state=AgentState.AVAILABLE))
    _available(carol)
    offer = Offer.objects.get(interaction=call, status=OfferStatus.PENDING)
    in_thread(lambda: do_accept_offer(offer_id=offer.pk, agent=carol))
    page.wait_for_selector(f"{row}[data-channel=chat] [data-field=answered]:text-is('1')")
    page.wait_for_selector(f"{row}[data-channel=chat] [data-field=waiting]:text-is('0')")
    agent_row = page.locator(f"#wb-agents tr[data-agent='{carol.pk}']")
    assert f"#{call.pk}" in agent_row.inner_text()
    page.screenshot(path=str(Path(settings.DATA_DIR) / "wallboard.png"), full_page=True)
    assert _axe_serious(page) == [], "wallboard after updates"


def test_a_flow_built_in_the_editor_and_published_is_what_the_next_call_follows(
    centre: dict[str, Any], supervisor_page: Callable[..., Any]
) -> None:
    from channels_inbound.providers.base import InboundCall, SayText
    from channels_inbound.voice.actions import do_start_call

    queue = centre["queue"]
    endpoint = Endpoint.objects.create(
        channel="voice", address="+33198765432", name="Mairie", queue=queue
    )
    flow = Flow.objects.create(name="Accueil mairie")
    EndpointFlow.objects.create(endpoint=endpoint, flow=flow)
    page = supervisor_page(f"/supervision/flows/{flow.pk}/")
    # a message node: invalid until it has a text and a next node, shown on the node
    page.fill("#new-node-id", "accueil")
    page.select_option("#new-node-type", "message")
    page.click("#add-node")
    page.wait_for_selector("#node-list li[data-node=accueil].has-errors")
    page.fill("#f-text", "Bienvenue au service état civil.")
    page.fill("#new-node-id", "file")
    page.select_option("#new-node-type", "queue")
    page.click("#add-node")
    page.select_option("#f-queue", "etat-civil")
    page.click("#node-list li[data-node=accueil] button")
    page.select_option("#f-next", "file")
    page.wait_for_selector("#flow-errors [data-valid=true]")
    assert page.query_selector("#node-list li.has-errors") is None
    assert _axe_serious(page) == [], "flow editor"
    # a test run before publishing
    page.click("#run-test")
    page.wait_for_selector("#test-transcript li[data-kind=queue]")
    assert "Bienvenue au service état civil." in page.inner_text("#test-transcript")
    # save as a draft, then publish it
    page.fill("#version-note", "Premier accueil")
    page.click("#save-draft")
    page.wait_for_selector("#versions tr[data-version='1'][data-status=draft]")
    page.click("#versions tr[data-version='1'] button[type=submit]")
    page.wait_for_selector("#versions tr[data-version='1'][data-status=published]")
    page.screenshot(path=str(Path(settings.DATA_DIR) / "flow_editor.png"), full_page=True)
    flow.refresh_from_db()
    assert flow.published_version is not None
    # the next call hears the new greeting and is queued where the flow says
    inbound = InboundCall(
        sid="CA0001",
        account_sid="AC1",
        caller="+33612345678",
        called="+33198765432",
        status="ringing",
        direction="inbound",
    )
    instructions = in_thread(lambda: do_start_call(inbound=inbound, provider="twilio"))
    said = [i.text for i in instructions if isinstance(i, SayText)]
    assert said[0] == "Bienvenue au service état civil."
    call = Interaction.objects.get(external_ref="CA0001")
    assert (call.queue_id, call.status) == (queue.pk, Status.OFFERED)  # Carol or Bob: offered
    # rollback is offered for the archived versions once there are two
    assert _axe_serious(page) == [], "flow editor after publishing"


def test_supervision_pages_pass_axe_and_the_keyboard(
    centre: dict[str, Any], supervisor_page: Callable[..., Any], live_server_asgi: LiveServer
) -> None:
    queue, bob, deces = centre["queue"], centre["bob"], centre["deces"]
    _arrive(queue)
    page = supervisor_page("/supervision/skills/")
    assert _axe_serious(page) == [], "skills matrix"
    page.keyboard.press("Tab")
    tab_to(page, f"#level_{bob.pk}_{deces.pk}")
    page.keyboard.press("ArrowDown")
    for path in (
        "/supervision/agents/",
        "/supervision/interactions/",
        "/supervision/queues/",
        f"/supervision/queues/{queue.pk}/",
        "/supervision/reports/",
        "/supervision/staffing/",
        "/supervision/flows/",
        "/supervision/skills/history/",
    ):
        page.goto(f"{live_server_asgi.url}{path}")
        assert _axe_serious(page) == [], path
    page.screenshot(path=str(Path(settings.DATA_DIR) / "skills_history.png"), full_page=True)
    page.goto(f"{live_server_asgi.url}/supervision/what-if/")
    page.click("form button[type=submit].primary")
    page.wait_for_selector("#whatif-table")
    page.screenshot(path=str(Path(settings.DATA_DIR) / "whatif.png"), full_page=True)
    assert _axe_serious(page) == [], "what-if results"
    # queue settings with an error shown on its field
    page.goto(f"{live_server_asgi.url}/supervision/queues/{queue.pk}/")
    page.fill("#id_hours_mon", "18:00-09:00")
    page.click("form button[type=submit].primary")
    page.wait_for_selector(".errorlist")
    assert _axe_serious(page) == [], "queue settings with an error"
