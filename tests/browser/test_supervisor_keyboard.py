"""A supervisor's day with the keyboard only, in Chromium: from the wallboard to the agents page
(a state changed), the interactions page (a waiting chat offered to a named agent), the skills
matrix (a level changed with a reason), a queue's settings (opening hours refused, then saved)
and the flow editor (a node added, its text written, a draft saved). Tab, Shift+Tab, Enter,
Space and the arrow keys only; text typed into the field the keyboard is on. At every page and
after every action: axe-core finds no serious or critical violation, the focused element shows
its focus ring, and after a form is sent the focus is on the answer (the message, or the field
refused)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from agents.models import AgentPresence, AgentSkill, AgentState
from configuration.models import Queue, QueueSkill, Skill
from flows.models import Flow, FlowVersion
from routing.models import Offer, OfferStatus
from supervision.models import QueueHours, SkillChange

from .test_supervision import _arrive, _axe_serious, centre, supervisor_page  # noqa: F401

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
]

LONG = 30_000  # ms: the machine running the tests may be loaded

FOCUS = """() => {
    const el = document.activeElement;
    if (!el || el === document.body) return null;
    const style = getComputedStyle(el);
    const box = el.getBoundingClientRect();
    return {
        what: el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + (el.getAttribute('href')
            ? '[href=' + el.getAttribute('href') + ']' : ''),
        ring: el.matches(':focus-visible'),
        outline: style.outlineStyle,
        width: parseFloat(style.outlineWidth),
        inView: box.bottom > 0 && box.top < window.innerHeight && box.width > 0,
    };
}"""


def _focus_shown(page: Any) -> str:
    """The focused element shows a focus ring (an outline of at least 2 px) and is in view."""
    focus = page.evaluate(FOCUS)
    assert focus is not None, "the focus is lost (on the page's body)"
    assert focus["ring"], f"{focus['what']} is focused without :focus-visible"
    assert focus["outline"] != "none", f"{focus['what']} has no focus outline"
    assert focus["width"] >= 2, f"{focus['what']}'s focus outline is thinner than 2 px"
    assert focus["inView"], f"{focus['what']} is focused out of view"
    return str(focus["what"])


def _focused(page: Any, selector: str) -> bool:
    return bool(
        page.evaluate(
            "(s) => !!document.activeElement && document.activeElement.matches(s)", selector
        )
    )


def _tab_to(page: Any, selector: str, *, limit: int = 150) -> None:
    """Tab (forwards) until ``selector`` has the focus, every stop on the way showing it."""
    for _ in range(limit):
        if _focused(page, selector):
            _focus_shown(page)
            return
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement !== document.body"):
            _focus_shown(page)
    raise AssertionError(f"{selector} is not reachable with the Tab key")


def _choose(page: Any, value: str) -> None:
    """Pick ``value`` in the focused (closed) list with the arrow keys."""
    values = page.evaluate("() => [...document.activeElement.options].map((o) => o.value)")
    assert value in values, f"{value!r} is not offered ({values})"
    current = page.evaluate("() => document.activeElement.selectedIndex")
    steps = values.index(value) - current
    for _ in range(abs(steps)):
        page.keyboard.press("ArrowDown" if steps > 0 else "ArrowUp")
    assert page.evaluate("() => document.activeElement.value") == value


def _type_over(page: Any, text: str) -> None:
    """Replace the focused field's text, typing it."""
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.keyboard.type(text)


def _follow(page: Any, selector: str, url: str) -> None:
    """Tab to a link and press Enter on it."""
    _tab_to(page, selector)
    with page.expect_navigation(url=url, timeout=LONG):
        page.keyboard.press("Enter")


def _clean(page: Any, where: str) -> None:
    assert _axe_serious(page) == [], where


def _answer_focused(page: Any) -> None:
    """After a form is sent, the focus is on the page's answer: its messages region."""
    page.wait_for_selector("main > [role=status]:focus", timeout=LONG)
    _focus_shown(page)


def test_a_supervisor_goes_through_the_day_with_the_keyboard_only(
    centre: dict[str, Any],  # noqa: F811
    supervisor_page: Callable[..., Any],  # noqa: F811
) -> None:
    bob, carol, deces, civil = centre["bob"], centre["carol"], centre["deces"], centre["queue"]
    # a chat for a skill nobody has yet: it waits until the supervisor hands it to someone
    nationality = Skill.objects.create(code="nationalite", name="Nationalité")
    naturalisation = Queue.objects.create(
        code="naturalisation", name="Naturalisation", team=centre["team"]
    )
    QueueSkill.objects.create(queue=naturalisation, skill=nationality, min_level=1)
    chat = _arrive(naturalisation, "chat")
    assert not Offer.objects.filter(interaction=chat).exists()
    flow = Flow.objects.create(name="Accueil mairie")

    page = supervisor_page("/supervision/")
    page.set_default_timeout(LONG)
    page.wait_for_selector("body[data-wallboard=live]")
    _clean(page, "wallboard")
    # the first Tab reaches the skip link, shown
    page.keyboard.press("Tab")
    assert _focus_shown(page).startswith("a")
    assert _focused(page, ".skip-link")

    # ---- agents: Carol goes on a training pause
    _follow(page, ".sup-nav a[href$='/supervision/agents/']", "**/supervision/agents/")
    _clean(page, "agents")
    _tab_to(page, f"#state-{carol.pk}")
    _choose(page, AgentState.PAUSED)
    page.keyboard.press("Tab")
    assert _focused(page, f"#reason-{carol.pk}")
    _choose(page, "training")
    page.keyboard.press("Tab")
    _focus_shown(page)
    page.keyboard.press("Enter")
    page.wait_for_selector("main .message.success")
    _answer_focused(page)
    assert "Carol" in page.inner_text("main .message.success")
    row = page.locator(f"tr:has(#state-{carol.pk})")
    assert "en pause (formation)" in row.inner_text()
    assert page.input_value(f"#state-{carol.pk}") == AgentState.PAUSED  # the real state shown
    presence = AgentPresence.objects.get(agent=carol)
    assert (presence.state, presence.pause_reason) == (AgentState.PAUSED, "training")
    _clean(page, "agents after a state change")

    # ---- interactions: the waiting chat is offered to Bob
    _follow(page, ".sup-nav a[href$='/supervision/interactions/']", "**/supervision/interactions/")
    _clean(page, "interactions")
    _tab_to(page, f"#agent-{chat.pk}")
    _choose(page, str(bob.pk))
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.textContent.trim()") == "Réattribuer"
    page.keyboard.press("Enter")
    page.wait_for_selector("main .message.success")
    _answer_focused(page)
    assert "Bob Durand" in page.inner_text("main .message.success")
    offer = Offer.objects.get(interaction=chat, status=OfferStatus.PENDING)
    assert offer.agent_id == bob.pk
    _clean(page, "interactions after a reassignment")

    # ---- skills matrix: Bob's death declarations from 2 to 4, with the reason
    _follow(page, ".sup-nav a[href$='/supervision/skills/']", "**/supervision/skills/")
    _clean(page, "skills matrix")
    cell = f"#level_{bob.pk}_{deces.pk}"
    _tab_to(page, cell)
    _choose(page, "4")
    _tab_to(page, "#matrix-note")
    page.keyboard.type("Formation décès terminée")
    # Shift+Tab goes back to the matrix, Tab returns to the reason
    page.keyboard.press("Shift+Tab")
    assert not _focused(page, "#matrix-note")
    _focus_shown(page)
    page.keyboard.press("Tab")
    assert _focused(page, "#matrix-note")
    _tab_to(page, "#matrix-form button[type=submit]")
    page.keyboard.press("Space")
    page.wait_for_selector("main .message.success")
    _answer_focused(page)
    assert page.input_value(cell) == "4"
    change = SkillChange.objects.get(agent=bob, skill=deces)
    assert (change.before, change.after) == (2, 4)
    assert AgentSkill.objects.get(agent=bob, skill=deces).level == 4
    assert "Formation décès terminée" in page.inner_text("main")
    _clean(page, "skills matrix after saving")

    # ---- queue settings: Monday's hours, first the wrong way round, then right
    _follow(page, ".sup-nav a[href$='/supervision/queues/']", "**/supervision/queues/")
    _clean(page, "queues")
    _follow(page, f"main a[href$='/supervision/queues/{civil.pk}/']", f"**/queues/{civil.pk}/")
    _clean(page, "queue settings")
    _tab_to(page, "#id_hours_mon")
    _type_over(page, "18:00-09:00")
    _tab_to(page, "main form button.primary")
    page.keyboard.press("Enter")
    page.wait_for_selector("#id_hours_mon_error")
    # the focus is on the field refused, its error next to it and read with it
    page.wait_for_selector("#id_hours_mon:focus")
    _focus_shown(page)
    assert page.get_attribute("#id_hours_mon", "aria-invalid") == "true"
    described = page.get_attribute("#id_hours_mon", "aria-describedby") or ""
    assert {"id_hours_mon_helptext", "id_hours_mon_error"} <= set(described.split())
    assert "La période se termine avant de commencer." in page.inner_text("#id_hours_mon_error")
    _clean(page, "queue settings with an error")
    _type_over(page, "08:30-12:00, 13:30-17:00")
    _tab_to(page, "main form button.primary")
    page.keyboard.press("Enter")
    page.wait_for_url("**/supervision/queues/")
    page.wait_for_selector("main .message.success")
    _answer_focused(page)
    weekly = QueueHours.objects.get(queue=civil).calendar["weekly"]
    assert weekly["mon"] == [["08:30", "12:00"], ["13:30", "17:00"]]
    _clean(page, "queues after saving settings")

    # ---- flow editor: a message node added, its text written, a draft saved
    _follow(page, ".sup-nav a[href$='/supervision/flows/']", "**/supervision/flows/")
    _clean(page, "flows")
    _follow(page, f"main a[href$='/supervision/flows/{flow.pk}/']", f"**/flows/{flow.pk}/")
    page.wait_for_selector("#new-node-type option", state="attached")
    _clean(page, "flow editor, empty")
    _tab_to(page, "#new-node-id")
    page.keyboard.type("accueil")
    page.keyboard.press("Tab")
    assert _focused(page, "#new-node-type")
    _choose(page, "message")
    _tab_to(page, "#add-node")
    page.keyboard.press("Enter")
    page.wait_for_selector("#node-list li[data-node=accueil]")
    # the focus goes to the new node's form
    page.wait_for_selector("#node-form-title:focus")
    _focus_shown(page)
    page.wait_for_selector("#node-list li[data-node=accueil].has-errors")
    _clean(page, "flow editor, new node with problems")
    _tab_to(page, "#f-text")
    page.keyboard.type("Bienvenue à la mairie.")
    page.wait_for_function(
        "() => !document.querySelector('#node-list li[data-node=accueil] .node-errors')"
        " || !document.querySelector('#node-list li[data-node=accueil] .node-errors')"
        ".textContent.includes('Texte')"
    )
    assert _focused(page, "#f-text")  # the live check does not take the focus away
    _clean(page, "flow editor, text written")
    _tab_to(page, "#version-note")
    page.keyboard.type("Accueil écrit au clavier")
    _tab_to(page, "#save-draft")
    page.keyboard.press("Enter")
    page.wait_for_selector("#versions tr[data-version='1'][data-status=draft]")
    page.wait_for_selector("main .message.success")
    _answer_focused(page)
    assert "version 1" in page.inner_text("main .message.success")
    version = FlowVersion.objects.get(flow=flow, number=1)
    assert version.graph["nodes"]["accueil"]["text"] == "Bienvenue à la mairie."
    assert version.note == "Accueil écrit au clavier"
    _clean(page, "flow editor after saving a draft")
