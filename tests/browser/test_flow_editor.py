"""The flow editor in plain French, in Chromium: opening hours as a form (days, time ranges,
public holidays, closed dates, exceptional openings) that round-trips through a saved draft,
validation problems in words on their node, node types and queues by their names, and the
flow attached to a number from the editor itself; axe-clean in each state."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from channels_inbound.models import Endpoint
from flows.models import EndpointFlow, Flow, FlowVersion

from .test_supervision import _axe_serious, centre, supervisor_page  # noqa: F401

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
]

NBSP = "\u00a0"


def _add_node(page: Any, node_id: str, kind: str) -> None:
    page.fill("#new-node-id", node_id)
    page.select_option("#new-node-type", kind)
    page.click("#add-node")
    page.wait_for_selector(f"#node-list li[data-node='{node_id}']")


def test_opening_hours_form_round_trips_and_problems_read_in_french(
    centre: dict[str, Any],  # noqa: F811
    supervisor_page: Callable[..., Any],  # noqa: F811
) -> None:
    flow = Flow.objects.create(name="Accueil mairie")
    page = supervisor_page(f"/supervision/flows/{flow.pk}/")

    # an empty name is refused in words, next to the field
    page.click("#add-node")
    assert "Le nom du nœud ne peut pas être vide." in page.inner_text("#new-node-feedback")
    # node types by their French names
    assert "Horaires d’ouverture" in page.inner_text("#new-node-type")

    _add_node(page, "accueil", "message")
    # a new message node: its problems in words, on the node
    page.wait_for_selector("#node-list li[data-node=accueil].has-errors")
    node_errors = page.inner_text("#node-list li[data-node=accueil] .node-errors")
    assert f"«{NBSP}Texte{NBSP}» ne peut pas être vide." in node_errors
    assert "is too short" not in page.inner_text("main")
    page.fill("#f-text", "Bienvenue à la mairie.")

    _add_node(page, "horaires", "business_hours")
    # the week as a form, Monday to Friday 08:30-17:00 by default
    assert page.input_value("#cal-mon") == "08:30-17:00"
    assert page.input_value("#cal-sat") == ""
    page.fill("#cal-mon", "8h30-12h00, 13h30-17h00")
    page.fill("#cal-fri", "")
    page.fill("#cal-sat", "09:00-12:00")
    # a range the wrong way round is refused in words, on its field, and not taken
    page.fill("#cal-tue", "18:00-09:00")
    assert "se termine avant de commencer" in page.inner_text("#cal-tue-err")
    assert page.get_attribute("#cal-tue", "aria-invalid") == "true"
    assert _axe_serious(page) == [], "flow editor: hours form with an error"
    page.fill("#cal-tue", "08:30-17:00")
    assert page.inner_text("#cal-tue-err") == ""
    page.check("#cal-holidays")
    page.select_option("#cal-subdiv", "57")
    page.fill("#cal-closed-new", "2026-12-24")
    page.click("#cal-closed-add")
    page.fill("#cal-open-new", "2026-12-26")
    page.click("#cal-open-add")
    page.fill("#cal-open-h-0", "10:00-12:00")

    _add_node(page, "ouvert", "queue")
    # queues by their names
    assert "État civil (etat-civil)" in page.inner_text("#f-queue")
    page.select_option("#f-queue", "etat-civil")
    _add_node(page, "ferme", "hangup")
    page.click("#node-list li[data-node=horaires] button")
    page.select_option("#f-open", "ouvert")
    page.select_option("#f-closed", "ferme")
    page.click("#node-list li[data-node=accueil] button")
    page.select_option("#f-next", "horaires")
    page.wait_for_selector("#flow-errors [data-valid=true]")
    assert _axe_serious(page) == [], "flow editor: valid flow"
    page.fill("#version-note", "Horaires d’hiver")
    page.click("#save-draft")
    page.wait_for_selector("#versions tr[data-version='1'][data-status=draft]")

    calendar = FlowVersion.objects.get(flow=flow, number=1).graph["nodes"]["horaires"]["calendar"]
    assert calendar["weekly"] == {
        "mon": [["08:30", "12:00"], ["13:30", "17:00"]],
        "tue": [["08:30", "17:00"]],
        "wed": [["08:30", "17:00"]],
        "thu": [["08:30", "17:00"]],
        "sat": [["09:00", "12:00"]],
    }
    assert calendar["holidays"] == {"country": "FR", "subdiv": "57"}
    assert calendar["closed_dates"] == ["2026-12-24"]
    assert calendar["open_dates"] == {"2026-12-26": [["10:00", "12:00"]]}

    # the saved draft opens with the same form values
    page.reload()
    page.click("#node-list li[data-node=horaires] button")
    assert page.input_value("#cal-mon") == "08:30-12:00, 13:30-17:00"
    assert page.input_value("#cal-fri") == ""
    assert page.is_checked("#cal-holidays")
    assert page.input_value("#cal-subdiv") == "57"
    assert "2026" in page.inner_text("#cal-closed .cal-date-list")
    assert page.input_value("#cal-open-h-0") == "10:00-12:00"
    page.screenshot(path=str(Path(settings.DATA_DIR) / "flow_editor_hours.png"), full_page=True)
    # a removed closed date is gone from the next draft
    page.click("#cal-closed .cal-date-list button")
    assert "Aucune date." in page.inner_text("#cal-closed .cal-date-list")


def test_the_flow_is_attached_to_a_number_from_the_editor(
    centre: dict[str, Any],  # noqa: F811
    supervisor_page: Callable[..., Any],  # noqa: F811
) -> None:
    queue = centre["queue"]
    number = Endpoint.objects.create(
        channel="voice", address="+33198765432", name="Standard mairie", queue=queue
    )
    Endpoint.objects.create(channel="sms", address="+33698765432", name="SMS mairie", queue=queue)
    flow = Flow.objects.create(name="Accueil mairie")
    page = supervisor_page(f"/supervision/flows/{flow.pk}/")
    table = page.inner_text("#bindings")
    assert "Standard mairie" in table
    assert "SMS mairie" not in table  # a flow answers calls and chats, not SMS
    page.click(f"#bindings tr[data-endpoint='{number.pk}'] button[type=submit]")
    page.wait_for_selector("main .message.success")
    assert EndpointFlow.objects.get(endpoint=number).flow_id == flow.pk
    # no version published yet: the page says the number goes straight to its queue meanwhile
    assert "dès qu’une version sera publiée" in page.inner_text("main")
    assert "ce flux" in page.inner_text(f"#bindings tr[data-endpoint='{number.pk}']")
    assert _axe_serious(page) == [], "flow editor after attaching"
    page.click(f"#bindings tr[data-endpoint='{number.pk}'] button[type=submit]")
    page.wait_for_selector("main .message.success")
    assert not EndpointFlow.objects.filter(endpoint=number).exists()
