"""The citizen-facing public pages in Chromium (issue 14): a citizen opens the link of their
acknowledgement e-mail and sees the state change once an agent has answered; the public quality
page passes axe-core with no violation at all and is usable with the keyboard alone."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, time, timedelta
from typing import Any

import pytest
from django.core import mail
from django.utils import timezone

from channels_inbound.email.actions import do_send_email_reply
from channels_inbound.email.inbound import do_ingest_email
from channels_inbound.models import Endpoint
from configuration.models import Queue
from interactions.actions import do_create_interaction, do_transition_interaction
from interactions.lifecycle import Status
from interactions.models import Interaction
from organisations.models import Membership, Organisation
from publicquality.figures import LAST_MONTH, public_periods
from publicquality.models import Commitment
from supervision.periods import PARIS
from tests.integration.channels.email_helpers import make_mail

from .conftest import LiveServer, tab_to
from .test_supervision import in_thread

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def citizen(browser: Any) -> Iterator[Any]:
    context = browser.new_context(locale="fr-FR", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def _axe_violations(page: Any) -> list[str]:
    """Every axe-core violation of the page, whatever its impact."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
    ]


def _organisation(slug: str) -> tuple[Organisation, Queue]:
    org = Organisation.objects.create(name="CAF de l'Ain", slug=slug)
    queue = Queue.objects.create(
        organisation=org, code="courriel", name="Courriel", sla_target_seconds=86400
    )
    return org, queue


def test_a_citizen_follows_the_request_from_the_acknowledgement_link(
    citizen: Any, live_server_asgi: LiveServer, settings: Any, make_user: Any
) -> None:
    settings.PUBLIC_BASE_URL = live_server_asgi.url
    org, queue = _organisation("caf-ain")
    Endpoint.objects.create(
        organisation=org,
        channel="email",
        address="contact@caf-ain.example.fr",
        name="CAF de l'Ain",
        queue=queue,
    )
    Commitment.objects.create(organisation=org, channel="email", answer_delay_seconds=2 * 86400)
    msg = make_mail(subject="Mon dossier APL", body="Bonjour, où en est mon dossier ?")
    msg.replace_header("To", "contact@caf-ain.example.fr")
    result = in_thread(
        lambda: do_ingest_email(msg.as_bytes(), recipients=["contact@caf-ain.example.fr"])
    )
    ack = mail.outbox[-1]
    found = re.search(re.escape(live_server_asgi.url) + r"/suivi/\S+/", str(ack.body))
    assert found, ack.body

    citizen.goto(found.group(0))
    assert citizen.get_attribute("#follow-state", "data-state") == "received"
    assert citizen.inner_text("#follow-state") == "Reçue"
    assert citizen.inner_text("#announced-delay") == "2 jours"
    assert citizen.inner_text("#last-answer") == "Pas encore de réponse"
    assert _axe_violations(citizen) == [], "follow page"

    agent = make_user("agent-ain", profile=False)
    Membership.objects.create(user=agent, organisation=org)
    interaction = Interaction.objects.get(pk=result.interaction_id)

    def answer() -> None:
        do_transition_interaction(interaction=interaction, to=Status.ASSIGNED, actor=agent)
        do_send_email_reply(
            interaction_id=interaction.pk, author_id=agent.pk, text="Votre dossier est validé."
        )

    in_thread(answer)
    citizen.click("text=Actualiser cette page")  # the page reads the state afresh each time
    citizen.wait_for_selector("#follow-state[data-state=answered]")
    assert citizen.inner_text("#follow-state") == "Répondue"
    assert citizen.inner_text("#last-answer") != "Pas encore de réponse"
    assert "validé" not in citizen.content()  # the state, never the answer itself
    assert citizen.locator("[aria-current=step]").inner_text().startswith("Répondue")


def _history(org: Organisation, queue: Queue) -> None:
    """A few interactions last month, so that the tables have figures."""
    last = public_periods(timezone.localdate())[LAST_MONTH]
    start = datetime.combine(last.first + timedelta(days=2), time(10), tzinfo=PARIS)
    for n, wait in enumerate((30, 90, None)):
        at = start + timedelta(hours=n)
        interaction = do_create_interaction(channel="voice", contact=None, queue=queue, now=at)
        if wait is None:
            do_transition_interaction(
                interaction=interaction, to=Status.ABANDONED, now=at + timedelta(seconds=40)
            )
        else:
            do_transition_interaction(
                interaction=interaction, to=Status.ASSIGNED, now=at + timedelta(seconds=wait)
            )


def test_the_public_quality_page_passes_axe_and_works_with_the_keyboard(
    citizen: Any, live_server_asgi: LiveServer
) -> None:
    org, queue = _organisation("caf-ain-qualite")
    in_thread(lambda: _history(org, queue))
    Commitment.objects.create(
        organisation=org, channel="voice", answer_delay_seconds=60, answer_rate_target=85
    )
    citizen.goto(f"{live_server_asgi.url}/qualite/{org.slug}/")
    assert citizen.get_attribute("html", "lang") == "fr"
    assert citizen.inner_text("h1") == "Qualité de service de CAF de l'Ain"
    voice = "#table-last_month tr[data-channel=voice]"
    assert citizen.inner_text(f"{voice} [data-field=contacts]") == "3"
    assert citizen.inner_text(f"{voice} [data-field=satisfaction]") == "non mesuré"
    assert _axe_violations(citizen) == [], "quality page (fr)"

    # Keyboard only: the skip link first, to the main content; the scrollable tables take the
    # focus; the open-data links and the English version are reachable and work with Enter.
    citizen.keyboard.press("Tab")
    assert citizen.evaluate("() => document.activeElement.classList.contains('skip-link')")
    citizen.keyboard.press("Enter")
    assert citizen.evaluate("() => document.activeElement.id") == "main"
    tab_to(citizen, "#main .table-wrap[role=region]")
    tab_to(citizen, "a[href$='donnees.json']")
    with citizen.expect_response(re.compile(r"donnees\.json$")) as data:
        citizen.keyboard.press("Enter")
    assert data.value.status == 200
    assert data.value.json()["licence"]["id"] == "etalab-2.0"

    citizen.goto(f"{live_server_asgi.url}/qualite/{org.slug}/")
    tab_to(citizen, "a[hreflang=en]")
    citizen.keyboard.press("Enter")
    citizen.wait_for_selector("html[lang=en]")
    assert citizen.inner_text("h1") == "Quality of service of CAF de l'Ain"
    assert _axe_violations(citizen) == [], "quality page (en)"
