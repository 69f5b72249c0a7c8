"""The flow editor's panels never overlap (issue 15): with the largest node form open (opening
hours), at the usual screen sizes and at 200 % zoom, each panel of the page has its own place
and the page does not scroll sideways."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from flows.models import Flow

from .test_flow_editor import _add_node
from .test_supervision import _axe_serious, centre, supervisor_page  # noqa: F401

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
]

# Every panel of the editor: the node list, the selected node's form, the diagram, and the
# save, test, attach and versions sections.
OVERLAPS = """() => {
    const panels = [...document.querySelectorAll('main .flow-layout > section, main #flow-graph, '
        + 'main > section, main .card')];
    const boxes = panels.map((el) => [el.id || el.getAttribute('aria-labelledby'),
                                      el.getBoundingClientRect()])
        .filter(([, r]) => r.width > 0 && r.height > 0);
    const found = [];
    for (let i = 0; i < boxes.length; i++) {
        for (let j = i + 1; j < boxes.length; j++) {
            const [a, r] = boxes[i], [b, s] = boxes[j];
            const inside = (r.left >= s.left && r.right <= s.right && r.top >= s.top
                && r.bottom <= s.bottom) || (s.left >= r.left && s.right <= r.right
                && s.top >= r.top && s.bottom <= r.bottom);
            const x = Math.min(r.right, s.right) - Math.max(r.left, s.left);
            const y = Math.min(r.bottom, s.bottom) - Math.max(r.top, s.top);
            if (!inside && x > 1 && y > 1) found.push(a + ' / ' + b);
        }
    }
    return {count: boxes.length, found: found,
            sideways: document.documentElement.scrollWidth > window.innerWidth + 1};
}"""


def test_the_flow_editors_panels_never_overlap(
    centre: dict[str, Any],  # noqa: F811
    supervisor_page: Callable[..., Any],  # noqa: F811
) -> None:
    flow = Flow.objects.create(name="Accueil mairie")
    page = supervisor_page(f"/supervision/flows/{flow.pk}/")
    _add_node(page, "accueil", "message")
    _add_node(page, "horaires", "business_hours")  # the largest form: the week, dates
    page.wait_for_selector("#cal-mon")
    for width, height in ((1920, 1080), (1366, 768), (1280, 720), (1024, 768), (640, 360)):
        page.set_viewport_size({"width": width, "height": height})
        layout = page.evaluate(OVERLAPS)
        assert layout["count"] >= 6, layout  # the panels were found
        assert layout["found"] == [], f"overlapping panels at {width}x{height}: {layout}"
        assert not layout["sideways"], f"sideways scrolling at {width}x{height}"
    assert _axe_serious(page) == []
