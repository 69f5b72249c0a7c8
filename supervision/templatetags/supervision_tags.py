from __future__ import annotations

from django import template
from django.utils.formats import number_format

register = template.Library()


@register.filter
def percent(value: float | None, digits: int = 1) -> str:
    """0.8123 -> "81,2 %" (localised); None -> "—"."""
    if value is None:
        return "—"
    return f"{number_format(100 * value, decimal_pos=digits)} %"


@register.filter
def seconds(value: float | None) -> str:
    """A duration in seconds as "m:ss" (or "h:mm:ss"); None -> "—"."""
    if value is None:
        return "—"
    total = max(0, round(value))
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
