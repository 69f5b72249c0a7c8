"""The skills matrix of a real centre (14 skills, 30 agents) at 1366 × 768, in Chromium: the page
never scrolls sideways (the matrix scrolls in its own box) and its header row and agents column
stay in view while the supervisor scrolls down and across; axe-clean."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from agents.models import AgentSkill
from configuration.models import Skill

from .test_supervision import _axe_serious, centre, supervisor_page  # noqa: F401

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
]

SKILLS = [
    "Allocations familiales",
    "Aide personnalisée au logement",
    "Revenu de solidarité active",
    "Prime d'activité",
    "Allocation aux adultes handicapés",
    "Complément de libre choix du mode de garde",
    "Allocation de rentrée scolaire",
    "Recouvrement des indus",
    "État civil – naissances",
    "État civil – décès",
    "Titres de séjour",
    "Cartes nationales d'identité",
    "Accueil en langue des signes",
    "Accueil en anglais",
]


def test_the_matrix_scrolls_in_its_box_with_its_headers_in_view(
    centre: dict[str, Any],  # noqa: F811
    supervisor_page: Callable[..., Any],  # noqa: F811
    make_user: Callable[..., Any],
) -> None:
    skills = [Skill.objects.create(code=f"s{n}", name=name) for n, name in enumerate(SKILLS)]
    for n in range(28):
        agent = make_user(f"agent{n:02}", first_name="Agent", last_name=f"N°{n:02}").agent_profile
        agent.team = centre["team"]
        agent.save(update_fields=["team"])
        AgentSkill.objects.create(agent=agent, skill=skills[n % len(skills)], level=1 + n % 5)
    page = supervisor_page("/supervision/skills/")
    page.set_viewport_size({"width": 1366, "height": 768})
    page.wait_for_selector("#matrix-wrap")
    # no sideways scroll of the page itself
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    box = page.locator("#matrix-wrap")
    assert box.evaluate("(el) => el.scrollWidth > el.clientWidth")  # the matrix is wider
    assert box.evaluate("(el) => el.scrollHeight > el.clientHeight")  # and taller
    # scrolled down and across: the skills row and the agents column are still in view
    box.evaluate("(el) => { el.scrollTop = 600; el.scrollLeft = 700; }")
    top = box.evaluate("(el) => el.getBoundingClientRect().top")
    left = box.evaluate("(el) => el.getBoundingClientRect().left")
    header = page.locator("table.matrix thead th").nth(5)
    assert abs(header.evaluate("(el) => el.getBoundingClientRect().top") - top) <= 2
    agent_cell = page.locator("table.matrix tbody th[scope=row]").nth(20)
    assert abs(agent_cell.evaluate("(el) => el.getBoundingClientRect().left") - left) <= 2
    # a header in view is on top of the cells scrolled under it (not hidden by them)
    assert page.evaluate(
        """() => {
        const box = document.getElementById('matrix-wrap').getBoundingClientRect();
        const corner = document.querySelector('table.matrix thead th').getBoundingClientRect();
        const th = [...document.querySelectorAll('table.matrix thead th')].find((h) => {
            const r = h.getBoundingClientRect();
            return r.left >= corner.right && r.right <= box.right;
        });
        const r = th.getBoundingClientRect();
        return th.contains(document.elementFromPoint(r.left + r.width / 2, r.top + 5));
    }"""
    )
    # the scrolling box is reachable with the keyboard and named
    assert box.get_attribute("tabindex") == "0"
    assert _axe_serious(page) == [], "skills matrix at 1366 px"
